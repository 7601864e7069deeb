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

Every key, its type, default, meaning and allowed values is declared once, in
`pipelines.config_schema` (the README's table lists them; `tally config` shows the effective
values). `load_settings` reports every problem of a file at once as a `ConfigError` (exit 2), one
line each naming the file, the key and what is allowed; an unknown key or section is refused
with the nearest valid name.

`rate_budget_dir` is where every sync keeps the rate budget it shares with the other processes
using the same key; point several data directories that use one key at one directory (on one
machine) so that they share it too; `rate_budget_url` (a `postgresql://` URL, its password
better in `PGPASSWORD` or `~/.pgpass`) keeps the budgets in that database instead, shared by the
syncs on every machine that names it. `now` makes every sync treat that moment as the present: for
a sandbox whose clock is frozen (`tally sandbox --now …` writes it). `candles_reread_minutes` is
how long after its close a candle may still change: every sync reads again the candles it read
less than this long after they closed (Bitvavo's newest candles come back incomplete for a
while; three hours is far more than the minute users report).

Secrets come from `BITSTAMP_API_KEY`, `BITSTAMP_API_SECRET`, `BITVAVO_API_KEY` and
`BITVAVO_API_SECRET`; a config file may also carry `api_key`/`api_secret` (the sandbox's own
throw-away keys are written that way), and the environment wins over the file. Half a pair is an
error naming the missing variable.

Or a section names two Prefect Secret blocks, `api_key_block` and `api_secret_block`: then the
pair comes from them alone, read when a client of that exchange is first needed
(`ExchangeSettings.load_credentials`; `load_settings` never asks Prefect), so that a worker on
another machine needs no environment. Such a pair comes from one place: a block named while the
environment variable or the file's value of either half is set is an error naming both (neither
wins silently: a forgotten variable on a worker would otherwise sync another account's key).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from pipelines.config_schema import (
    SECRET_BLOCK_KEYS,
    SECRET_KEYS,
    SECTIONS,
    TOP_LEVEL_KEYS,
    ConfigFile,
    TopLevel,
    ValidationError,
    api_text,
    key_name,
    problem_lines,
)
from pipelines.credentials import Credentials, CredentialsRef, env_name
from pipelines.database_url import DatabaseUrl
from pipelines.exchanges.ingestion import NoOptions, Options
from pipelines.exchanges.registry import EXCHANGES
from pipelines.exit_codes import OperatorError
from pipelines.s3_settings import S3Settings
from pipelines.secret_refs import PrefectSecretBlock
from pipelines.tables import render

DEFAULT_CONFIG_FILE = Path("tally.toml")
EXCHANGE_NAMES = tuple(SECTIONS)  # every exchange's section, in the registry's order
# The built-in values of every key (`ConfigFile`'s defaults): the one place they are written.
_BUILT_IN = ConfigFile()

DEFAULT_SOURCE = "default"


class ConfigError(OperatorError, ValueError):
    """The configuration file or environment is invalid: one line per problem (exit 2)."""


OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass(frozen=True, init=False)
class ExchangeSettings(Generic[OptionsT]):
    """One exchange's section: the keys every exchange has, and `options`, the keys of its own,
    in the typed shape its adapter declares (`Exchange.ingestion.config.shape`, a NamedTuple;
    validated by `load_settings`): `settings.options.access_window_ms`. Options may be given by
    name instead (`access_window_ms=…`); one not given has its default. Hashable and picklable.

    `credentials` is None when no key pair is configured, else the pair at hand or where it is
    kept (`CredentialsRef`): `load_credentials()` gives the pair itself.
    """

    name: str
    base_url: str
    markets: tuple[str, ...]
    intervals: tuple[str, ...]
    credentials: Credentials | CredentialsRef | None
    options: OptionsT

    def __init__(
        self: ExchangeSettings[Any],  # which shape is the adapter's to say, not the caller's
        name: str,
        base_url: str,
        markets: tuple[str, ...],
        intervals: tuple[str, ...],
        credentials: Credentials | CredentialsRef | None = None,
        options: Options | None = None,
        **given: Any,
    ) -> None:
        if options is None:
            adapter = EXCHANGES.get(name)
            shape = adapter.ingestion.config.shape if adapter is not None else NoOptions
            options = shape(**given)
        elif given:
            raise TypeError(f"[{name}]: options given both as `options` and by name")
        for field_name, value in (
            ("name", name),
            ("base_url", base_url),
            ("markets", markets),
            ("intervals", intervals),
            ("credentials", credentials),
            ("options", options),
        ):
            object.__setattr__(self, field_name, value)

    def load_credentials(self) -> Credentials | None:
        """The key pair, read now when it is kept elsewhere (once per process): raises
        `pipelines.secret_refs.SecretUnavailable` naming the block that cannot be read."""
        return None if self.credentials is None else self.credentials.resolve()


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    reporting_currency: str = _BUILT_IN.reporting_currency
    exchanges: Mapping[str, ExchangeSettings] = field(default_factory=dict)
    now: datetime | None = None  # a frozen present (sandbox); None: the wall clock
    public_trades_days: int = _BUILT_IN.public_trades_days
    rate_budget_dir: Path | None = None  # None: `<data_dir>/.ratelimit`
    # The budgets in PostgreSQL instead of `budget_dir` (shared across machines); password masked.
    rate_budget_url: DatabaseUrl | None = None
    candles_reread_minutes: int = _BUILT_IN.candles_reread_minutes
    warehouse_memory_limit: str = _BUILT_IN.warehouse_memory_limit
    # `s3://bucket/prefix`: the lake on object storage (`s3` says how to reach it); None:
    # `<data_dir>/lake`
    lake_url: str | None = None
    s3: S3Settings | None = field(default=None, compare=False)
    config_file: Path | None = None  # the file read, None: built-in defaults only
    # where each value came from, by key (`data_dir`, `[bitvavo] api_key`): "file tally.toml",
    # "environment BITVAVO_API_KEY", "argument"; a key not listed has its default
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def lake_location(self) -> str:
        """Where the lake is: `lake_url`, else the absolute directory `<data_dir>/lake`."""
        return self.lake_url or str(self.lake_dir)

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


# base_url, markets and intervals of each exchange (and its pacing), as built in.
DEFAULTS: dict[str, dict[str, Any]] = {
    name: getattr(_BUILT_IN, name).model_dump(exclude={*SECRET_KEYS, *SECRET_BLOCK_KEYS})
    for name in EXCHANGE_NAMES
}


def load_settings(
    config_file: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
) -> Settings:
    """Read `config_file` (default `./tally.toml` if present) and the environment.

    Raises `ConfigError` with every problem of the file and of the key pairs at once.
    """
    environ = os.environ if environ is None else environ
    path = Path(config_file) if config_file is not None else DEFAULT_CONFIG_FILE
    raw = _read(path, required=config_file is not None)
    found = path.is_file()
    origin = f"file {path}"
    problems: list[str] = []
    parsed: TopLevel | None = None
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as error:
        problems.extend(problem_lines(str(path), error))
    sources = {name: origin for name in TOP_LEVEL_KEYS if name in raw}
    credentials: dict[str, Credentials | CredentialsRef | None] = {}
    for name in EXCHANGE_NAMES:
        table = raw.get(name, {})
        table = table if isinstance(table, Mapping) else {}
        sources.update({key_name(name, key): origin for key in table if key not in SECRET_KEYS})
        blocks = _blocks(name, table, environ, str(path), sources)
        if isinstance(blocks, list):
            problems.extend(blocks)
            credentials[name] = None
        elif blocks is not None:
            credentials[name] = blocks
        else:
            credentials[name], pair_problem = _credentials(name, table, environ, str(path), sources)
            if pair_problem:
                problems.append(pair_problem)
    if problems or parsed is None:
        raise ConfigError(*problems)

    base_dir = path.resolve().parent if found else Path.cwd()
    if data_dir is not None:
        chosen_dir = Path(data_dir)
        chosen_dir = chosen_dir if chosen_dir.is_absolute() else Path.cwd() / chosen_dir
        sources["data_dir"] = "argument"
    else:
        chosen_dir = base_dir / parsed.data_dir
    budget_dir = None
    if parsed.rate_budget_dir is not None:
        budget_dir = (base_dir / parsed.rate_budget_dir).resolve()
    return Settings(
        data_dir=chosen_dir.resolve(),
        reporting_currency=parsed.reporting_currency,
        exchanges={
            name: _exchange_settings(name, parsed, credentials[name]) for name in EXCHANGE_NAMES
        },
        now=parsed.now,
        public_trades_days=parsed.public_trades_days,
        rate_budget_dir=budget_dir,
        rate_budget_url=DatabaseUrl(parsed.rate_budget_url) if parsed.rate_budget_url else None,
        candles_reread_minutes=parsed.candles_reread_minutes,
        warehouse_memory_limit=parsed.warehouse_memory_limit,
        lake_url=parsed.lake_url,
        s3=S3Settings.from_environment(environ) if parsed.lake_url else None,
        config_file=path.resolve() if found else None,
        sources=sources,
    )


def _read(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:  # its text ends "(at line L, column C)"
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from None


def _credentials(
    exchange: str,
    table: Mapping[str, Any],
    environ: Mapping[str, str],
    file: str,
    sources: dict[str, str],
) -> tuple[Credentials | None, str | None]:
    """The key pair of `exchange` (the environment wins over the file, half by half), or the
    line saying which half is missing."""
    found: dict[str, tuple[str, str]] = {}  # api_key/api_secret → (value, source)
    for half in SECRET_KEYS:
        variable = env_name(exchange, half)
        in_file = table.get(half)
        if environ.get(variable):
            found[half] = (environ[variable], f"environment {variable}")
        elif isinstance(in_file, str) and in_file:
            found[half] = (in_file, f"file {file}")
    for half, (_, source) in found.items():
        sources[key_name(exchange, half)] = source
    if not found or any(not api_text(table.get(half, "")) for half in SECRET_KEYS):
        return None, None  # none, or a half that is not one word of text: told as a bad value
    if len(found) == 2:
        return Credentials.from_strings(found["api_key"][0], found["api_secret"][0]), None
    [(present, (_, source))] = found.items()
    [missing] = [half for half in SECRET_KEYS if half not in found]
    variable = env_name(exchange, missing)
    if source.startswith("file"):
        return None, (
            f"{file}: {key_name(exchange, present)} is set but {missing} is not: set the "
            f"environment variable {variable} (or {missing} in [{exchange}])"
        )
    return None, (
        f"environment: {env_name(exchange, present)} is set but {variable} is not: set "
        f"it too (or {missing} in [{exchange}] of {file})"
    )


def _blocks(
    exchange: str,
    table: Mapping[str, Any],
    environ: Mapping[str, str],
    file: str,
    sources: dict[str, str],
) -> CredentialsRef | list[str] | None:
    """The pair kept in the Prefect Secret blocks `table` names (not read here), the lines
    saying why it cannot be (half a pair named, or a half also set in the environment or the
    file), or None when no block is named."""
    named = {
        half: name
        for half, block_key in zip(SECRET_KEYS, SECRET_BLOCK_KEYS, strict=True)
        if isinstance(name := table.get(block_key), str) and name
    }
    if not named:
        return None
    problems = []
    if len(named) == 1:
        [(half, _)] = named.items()
        [missing] = [other for other in SECRET_KEYS if other != half]
        problems.append(
            f"{file}: {key_name(exchange, f'{half}_block')} is set but {missing}_block is not: "
            "name the Prefect Secret blocks of both halves"
        )
    blocks = ", ".join(f"{half}_block = {name!r}" for half, name in named.items())
    for half in SECRET_KEYS:
        variable = env_name(exchange, half)
        if environ.get(variable):
            problems.append(
                f"environment: {variable} is set and [{exchange}] of {file} names Prefect "
                f"Secret blocks ({blocks}): a key pair comes from one place: unset {variable} "
                "or remove the block names"
            )
        if table.get(half) is not None:
            problems.append(
                f"{file}: {key_name(exchange, half)} is set and [{exchange}] names Prefect "
                f"Secret blocks ({blocks}): a key pair comes from one place: remove {half} or "
                "the block names"
            )
    if problems:
        return problems
    refs = CredentialsRef(
        PrefectSecretBlock(named["api_key"]), PrefectSecretBlock(named["api_secret"])
    )
    for half, ref in zip(SECRET_KEYS, (refs.key, refs.secret), strict=True):
        sources[key_name(exchange, half)] = ref.where
    return refs


def _exchange_settings(
    name: str, parsed: TopLevel, credentials: Credentials | CredentialsRef | None
) -> ExchangeSettings:
    section = getattr(parsed, name)
    tuning = {
        key: value
        for key, value in section.model_dump().items()
        if key not in ("base_url", "markets", "intervals", *SECRET_KEYS, *SECRET_BLOCK_KEYS)
    }
    return ExchangeSettings(
        name,
        section.base_url,
        tuple(section.markets),
        tuple(section.intervals),
        credentials,
        **tuning,
    )


def kept_in_blocks(settings: Settings) -> list[str]:
    """The exchanges whose key pair is kept in Prefect Secret blocks (read when needed)."""
    return [
        name
        for name, exchange in settings.exchanges.items()
        if isinstance(exchange.credentials, CredentialsRef)
    ]


# --- what `tally config` (and `tally doctor`) show ---------------------------------------------


class SettingRow(NamedTuple):
    """One key's effective value and where it came from. `value` is plain JSON (text, numbers,
    lists, None); a secret shows only whether it is set (and the key's non-secret id)."""

    key: str
    value: Any
    source: str


def describe_settings(settings: Settings) -> list[SettingRow]:
    """Every key with its effective value and its source, secrets masked."""
    rows = []
    for name in TOP_LEVEL_KEYS:
        value = settings.budget_dir if name == "rate_budget_dir" else getattr(settings, name)
        rows.append(SettingRow(name, _plain(value), settings.sources.get(name, DEFAULT_SOURCE)))
    for exchange in EXCHANGE_NAMES:
        if exchange not in settings.exchanges:
            continue
        current = settings.exchanges[exchange]
        blocks = current.credentials if isinstance(current.credentials, CredentialsRef) else None
        values = {
            "base_url": current.base_url,
            "markets": current.markets,
            "intervals": current.intervals,
            "api_key_block": getattr(blocks.key, "name", None) if blocks else None,
            "api_secret_block": getattr(blocks.secret, "name", None) if blocks else None,
            **current.options._asdict(),
        }
        for name in SECTIONS[exchange].model_fields:
            key = key_name(exchange, name)
            source = settings.sources.get(key, DEFAULT_SOURCE)
            if name in SECRET_KEYS:
                value = _masked(exchange, current.credentials, name)
            else:
                value = _plain(values[name])
            rows.append(SettingRow(key, value, source))
    return rows


def _masked(exchange: str, credentials: Credentials | CredentialsRef | None, half: str) -> str:
    if credentials is None:
        return f"not set ({env_name(exchange, half)})"
    if isinstance(credentials, CredentialsRef):  # not read here: a sync reads it
        return "in its Prefect Secret block, read when a client needs it"
    return f"set, id {credentials.key_id}" if half == "api_key" else "set"


def _plain(value: object) -> Any:
    if isinstance(value, Path | DatabaseUrl):
        return str(value)  # a URL's password masked
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return list(value)
    return value


def setting_text(value: Any) -> str:
    """A `SettingRow` value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    return str(value)


def format_settings(rows: Sequence[SettingRow]) -> str:
    """The rows as an aligned table: key, value, source."""
    table = [("key", "value", "source"), *((r.key, setting_text(r.value), r.source) for r in rows)]
    return "\n".join(render(table, strip=True))
