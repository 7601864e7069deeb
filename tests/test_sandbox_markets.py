"""The sandbox serves only markets that exist: every market its emulators list is in a recorded
real market list of that exchange, GBP trades as Bitstamp's `gbpeur` (GBP/EUR, there is no
`eurgbp`), the config defaults name only real markets, the Bitvavo account has traded markets
that are delisted by now, and Bitstamp lists perpetual markets under `bitstamp-perps=on`.

Evidence of a market (read from ../shared/data/exchange-samples, never copied here):
- Bitstamp: the recorded `trading-pairs-info` list and the `markets` row ccxt documents;
- Bitvavo: the recorded `/v2/markets` lists and the real candle series recorded from Bitvavo's
  API (`market/bitvavo_{MARKET}_*.csv`: ETH-EUR is proven by its series only).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
import requests
from sandbox_fixtures import sandbox_fixture, world_fixture
from test_sandbox_ccxt import make_bitstamp

from pipelines.config import DEFAULTS
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / "recorded" / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def recorded_bitstamp(samples_dir: Path) -> dict[str, dict[str, Any]]:
    """url symbol → the recorded row (legacy pairs info, plus the newer markets row)."""
    rows = {
        r["url_symbol"]: r for r in load(samples_dir, "bitstamp_trading_pairs_info_legacy.json")
    }
    for row in load(samples_dir, "bitstamp_markets__ccxt_comment.json"):
        rows.setdefault(row["market_symbol"], row)
    return rows


@pytest.fixture(scope="module")
def recorded_bitvavo(samples_dir: Path) -> set[str]:
    found = {
        row["market"]
        for name in ("bitvavo_markets.json", "bitvavo_markets__sdk_readme_2019.json")
        for row in load(samples_dir, name)
    }
    series = {p.name.split("_")[1] for p in (samples_dir / "market").glob("bitvavo_*.csv")}
    assert "ETH-EUR" in series and "BTC-EUR" in found
    return found | series


world = world_fixture(seed=21, days=10, now_ms=NOW_MS)
sandbox = sandbox_fixture()
perps_sandbox = sandbox_fixture(variants=Variants(bitstamp_perps="on"))


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=10)


def bitstamp_markets(sandbox: Sandbox) -> list[dict[str, Any]]:
    reply = get(f"{sandbox.bitstamp.base_url}/api/v2/markets/")
    assert reply.status_code == 200
    rows: list[dict[str, Any]] = reply.json()
    return rows


def trading_fees(sandbox: Sandbox) -> list[dict[str, Any]]:
    client = make_bitstamp(sandbox)
    rows: list[dict[str, Any]] = client.privatePostFeesTrading()
    return rows


# --- listed markets --------------------------------------------------------------------------


def test_every_bitstamp_market_is_in_the_recorded_list(
    sandbox: Sandbox, recorded_bitstamp: dict[str, dict[str, Any]]
) -> None:
    served = bitstamp_markets(sandbox)
    assert served
    for row in served:
        symbol = row["market_symbol"]
        assert symbol in recorded_bitstamp, f"bitstamp lists no market {symbol!r}"
        assert row["name"] == recorded_bitstamp[symbol]["name"], symbol
    pairs = get(f"{sandbox.bitstamp.base_url}/api/v2/trading-pairs-info/").json()
    assert {r["url_symbol"] for r in pairs} == {r["market_symbol"] for r in served}


def test_every_bitvavo_market_is_in_the_recorded_lists(
    sandbox: Sandbox, recorded_bitvavo: set[str]
) -> None:
    served = {row["market"] for row in get(f"{sandbox.bitvavo.base_url}/markets").json()}
    assert served and served <= recorded_bitvavo, served - recorded_bitvavo


def test_gbp_is_bitstamps_gbpeur_with_its_recorded_decimals(
    sandbox: Sandbox, world: World, recorded_bitstamp: dict[str, dict[str, Any]]
) -> None:
    assert "eurgbp" not in recorded_bitstamp, "the premise: Bitstamp has no EUR/GBP market"
    recorded = recorded_bitstamp["gbpeur"]
    (row,) = [r for r in bitstamp_markets(sandbox) if r["market_symbol"] == "gbpeur"]
    assert (row["name"], row["base_currency"], row["counter_currency"]) == ("GBP/EUR", "GBP", "EUR")
    assert (row["base_decimals"], row["counter_decimals"]) == (
        recorded["base_decimals"],
        recorded["counter_decimals"],
    )
    base = sandbox.bitstamp.base_url
    missing = get(f"{base}/api/v2/ohlc/eurgbp/", step=3600, limit=10)
    assert missing.status_code == 404
    ohlc = get(f"{base}/api/v2/ohlc/gbpeur/", step=3600, limit=1000).json()["data"]
    assert ohlc["pair"] == "GBP/EUR"
    closes = [Decimal(c["close"]) for c in ohlc["ohlc"]]
    assert len(closes) == 1000
    assert all(Decimal("1.11") <= c <= Decimal("1.21") for c in closes)  # a pound is ~1.17 EUR
    exponents = [c.as_tuple().exponent for c in closes]
    assert all(isinstance(e, int) and -e == recorded["counter_decimals"] for e in exponents)


def test_config_defaults_name_only_recorded_markets(
    recorded_bitstamp: dict[str, dict[str, Any]], recorded_bitvavo: set[str]
) -> None:
    names = {row["name"].replace("/", "-") for row in recorded_bitstamp.values()}
    assert set(DEFAULTS["bitstamp"]["markets"]) <= names
    assert "GBP-EUR" in DEFAULTS["bitstamp"]["markets"]
    assert set(DEFAULTS["bitvavo"]["markets"]) <= recorded_bitvavo


# --- delisted markets --------------------------------------------------------------------------


def test_delisted_markets_were_real_and_are_served_only_as_account_history(
    sandbox: Sandbox, world: World, samples_dir: Path
) -> None:
    """PHA-EUR (real fills of it are recorded from /v2/trades) and NEO-EUR (NEO is in a recorded
    Bitvavo balance) are traded by the account and no longer listed: no market data, no fees."""
    real_fills = {row["market"] for row in load(samples_dir, "bitvavo_trades.json")}
    real_assets = {row["symbol"] for row in load(samples_dir, "bitvavo_balance.json")}
    delisted = {symbol for _, symbol in world.delisted}
    assert delisted == {"PHA-EUR", "NEO-EUR"}
    assert "PHA-EUR" in real_fills and "NEO" in real_assets
    base = sandbox.bitvavo.base_url
    listed = {row["market"] for row in get(f"{base}/markets").json()}
    assets = {row["symbol"] for row in get(f"{base}/assets").json()}
    assert not delisted & listed and not {"PHA", "NEO"} & assets
    for market in delisted:
        reply = get(f"{base}/{market}/candles", interval="1h", limit=5)
        assert (reply.status_code, reply.json()["errorCode"]) == (400, 205), market
    assert "PHA-EUR" in world.bitvavo.markets_traded
    assert "NEO-EUR" not in world.bitvavo.markets_traded  # its trades are history items only
    traded = [i for i in world.bitvavo.items if i.type in ("buy", "sell")]
    neo = [i for i in traded if "NEO" in i.traded_assets]
    assert [i.type for i in neo] == ["buy", "sell"]
    assert neo[0].received == neo[1].sent, "the position is closed"
    final = {r["symbol"]: Decimal(r["available"]) for r in world.bitvavo.balance(NOW_MS)}
    assert final["PHA"] == final["NEO"] == 0


# --- perpetuals --------------------------------------------------------------------------------


def test_perpetuals_are_listed_only_when_the_variant_is_on(
    sandbox: Sandbox, perps_sandbox: Sandbox
) -> None:
    assert all(r["market_type"] == "SPOT" for r in bitstamp_markets(sandbox))
    assert all("perp" not in r["market"] for r in trading_fees(sandbox))
    rows = bitstamp_markets(perps_sandbox)
    (perp,) = [r for r in rows if r["market_type"] != "SPOT"]
    assert (perp["market_symbol"], perp["name"], perp["market_type"]) == (
        "btcusd-perp",
        "BTC/USD-PERP",
        "PERPETUAL",
    )
    spot = [r for r in rows if r["market_type"] == "SPOT"]
    assert spot == bitstamp_markets(sandbox), "the spot rows do not change"
    fees = trading_fees(perps_sandbox)
    assert [r for r in fees if r["market"] == "btcusd-perp"]
    assert [r for r in fees if r["market"] != "btcusd-perp"] == trading_fees(sandbox)


def test_ccxt_reads_the_perpetual_as_a_swap_of_its_own(perps_sandbox: Sandbox) -> None:
    """An independent client sees what ccxt's bitstamp.py documents: a linear swap."""
    client = make_bitstamp(perps_sandbox)
    markets = client.load_markets()
    swap = markets["BTC/USD:USD"]
    assert (swap["id"], swap["type"], swap["swap"], swap["spot"]) == (
        "btcusd-perp",
        "swap",
        True,
        False,
    )
    assert markets["BTC/USD"]["id"] == "btcusd" and markets["BTC/USD"]["spot"]
    assert isinstance(client, ccxt.bitstamp)
