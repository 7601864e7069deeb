"""Settings: `tally.toml` (or built-in defaults) plus secrets from the environment.

Example `tally.toml`::

    data_dir = "data"
    reporting_currency = "EUR"

    [bitstamp]
    base_url = "https://www.bitstamp.net"
    markets = ["BTC-EUR", "BTC-USD", "ETH-EUR", "EUR-USD"]
    intervals = ["1h", "1d"]

    [bitvavo]
    base_url = "https://api.bitvavo.com/v2"
    markets = ["BTC-EUR", "ETH-EUR"]
    intervals = ["1h", "1d"]

`rate_budget_dir = "…"` (optional, default `<data_dir>/.ratelimit`) is where every sync keeps
the rate budget it shares with the other processes using the same key; point several data
directories that use one key at one directory (on one machine) so that they share it too.

`now = "2024-03-31T00:00:00Z"` (optional) makes every sync treat that moment as the present:
for a sandbox whose clock is frozen (`tally sandbox --now …` writes it).

`candles_reread_minutes = 180` (the default) is how long after its close a candle may still
change: every sync reads again the candles it read less than this long after they closed, and a
candle is final once a read came at least this long after its close (Bitvavo's newest candles
come back incomplete for a while; three hours is far more than the minute users report).

Secrets come from `BITSTAMP_API_KEY`, `BITSTAMP_API_SECRET`, `BITVAVO_API_KEY` and
`BITVAVO_API_SECRET`; a config file may also carry `api_key`/`api_secret` (the sandbox's own
throw-away keys are written that way), and the environment wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.credentials import Credentials

DEFAULT_CONFIG_FILE = Path("tally.toml")
EXCHANGES = ("bitstamp", "bitvavo")


class ConfigError(ValueError):
    """The configuration file or environment is invalid."""


@dataclass(frozen=True)
class ExchangeSettings:
    name: str
    base_url: str
    markets: tuple[str, ...]
    intervals: tuple[str, ...]
    credentials: Credentials | None = None
    # Bitstamp pacing: requests per window and per second (ignored for Bitvavo, which is paced
    # from its own rate-limit headers).
    requests_per_window: int = 8000
    window_seconds: float = 600.0
    max_requests_per_second: float = 400.0
    # Bitvavo: Bitvavo-Access-Window in ms.
    access_window_ms: int = 10_000


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    reporting_currency: str = "EUR"
    exchanges: Mapping[str, ExchangeSettings] = field(default_factory=dict)
    now: datetime | None = None  # a frozen present (sandbox); None: the wall clock
    public_trades_days: int = 1  # how far back a first Bitvavo public-trades sync reaches
    rate_budget_dir: Path | None = None  # None: `<data_dir>/.ratelimit`
    candles_reread_minutes: int = 180  # a candle read sooner after its close is read again

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / ".prefect"

    @property
    def budget_dir(self) -> Path:
        """Where the rate budgets shared by processes using one key live."""
        return self.rate_budget_dir or self.data_dir / ".ratelimit"

    def exchange(self, name: str) -> ExchangeSettings:
        try:
            return self.exchanges[name]
        except KeyError:
            raise ConfigError(f"exchange {name!r} is not configured") from None


# Every default market exists on its exchange (tests/test_sandbox_markets.py checks them against
# the recorded market lists): Bitstamp lists GBP/EUR as `gbpeur`, there is no `eurgbp`.
DEFAULTS: dict[str, dict[str, Any]] = {
    "bitstamp": {
        "base_url": "https://www.bitstamp.net",
        "markets": ["BTC-EUR", "BTC-USD", "ETH-EUR", "ETH-USD", "EUR-USD", "GBP-EUR"],
        "intervals": ["1h", "1d"],
    },
    "bitvavo": {
        "base_url": "https://api.bitvavo.com/v2",
        "markets": ["BTC-EUR", "ETH-EUR", "ADA-EUR"],
        "intervals": ["1h", "1d"],
    },
}


def load_settings(
    config_file: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
) -> Settings:
    """Read `config_file` (default `./tally.toml` if present) and the environment."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = Path(config_file) if config_file is not None else DEFAULT_CONFIG_FILE
    if path.exists():
        with path.open("rb") as handle:
            try:
                raw = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: {exc}") from None
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")

    base_dir = path.resolve().parent if path.exists() else Path.cwd()
    chosen_dir = Path(data_dir) if data_dir is not None else Path(raw.get("data_dir", "data"))
    if not chosen_dir.is_absolute():
        chosen_dir = base_dir / chosen_dir if data_dir is None else Path.cwd() / chosen_dir

    budget_dir: Path | None = None
    if "rate_budget_dir" in raw:
        budget_dir = (base_dir / str(raw["rate_budget_dir"])).resolve()

    exchanges = {name: _exchange_settings(name, raw.get(name, {}), environ) for name in EXCHANGES}
    return Settings(
        data_dir=chosen_dir.resolve(),
        reporting_currency=str(raw.get("reporting_currency", "EUR")).upper(),
        exchanges=exchanges,
        now=_frozen_now(raw.get("now")),
        public_trades_days=int(raw.get("public_trades_days", 1)),
        rate_budget_dir=budget_dir,
        candles_reread_minutes=_minutes(raw.get("candles_reread_minutes", 180)),
    )


def _minutes(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"candles_reread_minutes = {value!r}: whole minutes, 0 or more")
    return value


def _frozen_now(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"now = {value!r} is not an ISO time") from None
    if moment.tzinfo is None:
        raise ConfigError("now must carry a time zone (e.g. 2024-03-31T00:00:00Z)")
    return moment.astimezone(UTC)


def _exchange_settings(
    name: str, section: Mapping[str, Any], environ: Mapping[str, str]
) -> ExchangeSettings:
    if not isinstance(section, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    merged = {**DEFAULTS[name], **section}
    key = environ.get(f"{name.upper()}_API_KEY") or merged.pop("api_key", None)
    secret = environ.get(f"{name.upper()}_API_SECRET") or merged.pop("api_secret", None)
    merged.pop("api_key", None)
    merged.pop("api_secret", None)
    credentials = Credentials.from_strings(str(key), str(secret)) if key and secret else None
    known = {
        "base_url",
        "markets",
        "intervals",
        "requests_per_window",
        "window_seconds",
        "max_requests_per_second",
        "access_window_ms",
    }
    unknown = set(merged) - known
    if unknown:
        raise ConfigError(f"[{name}] has unknown settings: {', '.join(sorted(unknown))}")
    return ExchangeSettings(
        name=name,
        base_url=str(merged["base_url"]).rstrip("/"),
        markets=tuple(str(m).upper() for m in merged["markets"]),
        intervals=tuple(str(i) for i in merged["intervals"]),
        credentials=credentials,
        requests_per_window=int(merged.get("requests_per_window", 8000)),
        window_seconds=float(merged.get("window_seconds", 600)),
        max_requests_per_second=float(merged.get("max_requests_per_second", 400)),
        access_window_ms=int(merged.get("access_window_ms", 10_000)),
    )
