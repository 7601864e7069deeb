"""ccxt, an independent client, against the sandbox: its four read calls work on both emulated
exchanges and what it reads is exactly the world (the truth), so the sandbox's wire shapes are
the ones real clients expect, not only our own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pytest
from sandbox_fixtures import sandbox_fixture, world_fixture

from benchmarks.ccxt_backfill import HttpsSignedBitstamp
from pipelines.sandbox.server import LOOPBACK, Sandbox
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
MINUTE_MS = 60_000


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def dec(value: object) -> Decimal:
    """ccxt's numbers (str with `number = str`; floats where the wire had bare numbers)."""
    return Decimal(str(value))


class LoopbackOnly:
    """Records every URL ccxt fetches and refuses any host but the sandbox's."""

    fetched: list[str]

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if urlsplit(url).hostname != LOOPBACK:
            raise AssertionError(f"ccxt tried to leave loopback: {url}")
        self.fetched.append(f"{method} {urlsplit(url).path}")
        return super().fetch(url, method, headers, body)  # type: ignore[misc]


class Bitstamp(LoopbackOnly, HttpsSignedBitstamp):
    pass


class Bitvavo(LoopbackOnly, ccxt.bitvavo):
    pass


world = world_fixture(seed=5, days=60, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def make_bitstamp(sandbox: Sandbox) -> Bitstamp:
    exchange = Bitstamp({"apiKey": sandbox.bitstamp.key, "secret": sandbox.bitstamp.secret})
    api = sandbox.bitstamp.root_url.replace("http://", "https://", 1) + "/api"
    exchange.urls["api"] = {"public": api, "private": api}
    exchange.number = str  # keep ccxt's numbers as the exact strings it parsed
    exchange.fetched = []
    return exchange


def make_bitvavo(sandbox: Sandbox) -> Bitvavo:
    exchange = Bitvavo({"apiKey": sandbox.bitvavo.key, "secret": sandbox.bitvavo.secret})
    exchange.urls["api"] = {"public": sandbox.bitvavo.root_url, "private": sandbox.bitvavo.root_url}
    exchange.number = str
    exchange.fetched = []
    return exchange


@pytest.fixture(scope="module")
def bitstamp(sandbox: Sandbox) -> Bitstamp:
    return make_bitstamp(sandbox)


@pytest.fixture(scope="module")
def bitvavo(sandbox: Sandbox) -> Bitvavo:
    return make_bitvavo(sandbox)


def test_loading_markets_reads_only_reference_endpoints(sandbox: Sandbox) -> None:
    bitstamp, bitvavo = make_bitstamp(sandbox), make_bitvavo(sandbox)
    assert set(bitstamp.load_markets()) == {
        "BTC/EUR",
        "BTC/USD",
        "ETH/EUR",
        "ETH/USD",
        "EUR/USD",
        "GBP/EUR",
        "LTC/EUR",  # listed late, but listed by now
    }
    assert set(bitvavo.load_markets()) == {"ADA/EUR", "BTC/EUR", "ETH/EUR"}
    assert bitstamp.fetched == ["GET /api/v2/markets/"]
    assert sorted(bitvavo.fetched) == ["GET /v2/assets", "GET /v2/markets"]
    assert bitstamp.markets["BTC/EUR"]["id"] == "btceur"
    assert bitvavo.markets["ADA/EUR"]["id"] == "ADA-EUR"


# --- Bitstamp -------------------------------------------------------------------------------


def test_bitstamp_ohlcv_is_the_tape_with_filled_minutes(bitstamp: Bitstamp, world: World) -> None:
    until = NOW - timedelta(days=2) + timedelta(hours=7)  # not a midnight: a full 1000-row page
    candles = bitstamp.fetch_ohlcv("BTC/EUR", "1m", limit=1000, params={"until": ms(until)})
    first = ms(until) - 999 * MINUTE_MS
    assert [c[0] for c in candles] == list(range(first, ms(until) + 1, MINUTE_MS))
    market = world.market("bitstamp", "btceur")
    tape = {c.open_ms: c for c in market.candles(60, first, ms(until) + MINUTE_MS)}
    previous = market.last_trade_before(first)
    assert previous is not None
    close = previous.price
    fillers = 0
    for open_ms, *values in candles:
        o, h, low, c, v = (dec(x) for x in values)
        truth = tape.get(open_ms)
        if truth is None:  # a quiet minute: flat at the last close, zero volume
            fillers += 1
            assert (o, h, low, c, v) == (close, close, close, close, 0)
        else:
            assert (o, h, low, c, v) == (
                truth.open,
                truth.high,
                truth.low,
                truth.close,
                truth.volume,
            )
        close = c
    assert fillers > 0


def test_bitstamp_public_trades_are_the_last_hour_of_the_tape(
    bitstamp: Bitstamp, world: World
) -> None:
    trades = bitstamp.fetch_trades("BTC/EUR")
    truth = world.market("bitstamp", "btceur").trades(NOW_MS - 3_600_000, NOW_MS + 1)
    assert len(truth) > 10
    got = sorted(trades, key=lambda t: int(t["id"]))
    assert [t["id"] for t in got] == [str(t.seq) for t in truth]
    assert [(t["timestamp"], dec(t["price"]), dec(t["amount"]), t["side"]) for t in got] == [
        (t.ts_ms // 1000 * 1000, t.price, t.amount, t.side) for t in truth
    ]


def test_bitstamp_balance_totals_are_the_world_balances(bitstamp: Bitstamp, world: World) -> None:
    balance = bitstamp.fetch_balance()
    truth = world.bitstamp.balances(NOW_MS)
    assert any(Decimal(row["total"]) > 0 for row in truth)
    assert {code: dec(total) for code, total in balance["total"].items()} == {
        row["currency"].upper(): Decimal(row["total"]) for row in truth
    }
    assert {code: dec(free) for code, free in balance["free"].items()} == {
        row["currency"].upper(): Decimal(row["available"]) for row in truth
    }


def test_bitstamp_my_trades_are_the_world_fills(bitstamp: Bitstamp, world: World) -> None:
    trades = bitstamp.fetch_my_trades("BTC/EUR", limit=1000)
    fills = [
        row
        for row in world.bitstamp.user_transactions
        if str(row["type"]) == "2" and "btc_eur" in row
    ]
    # ccxt keeps rows whose type is the string "2": the ledger's pre-2021 int-typed trades
    # (EXCHANGES.md: `type` was an int before mid-2021) fall through its filter.
    expected = {str(row["id"]): row for row in fills if row["type"] == "2"}
    assert len(expected) > 20 and len(expected) < len(fills)
    got = {t["id"]: t for t in trades}
    assert set(got) == set(expected)
    for trade_id, row in expected.items():
        trade = got[trade_id]
        base = Decimal(row["btc"])
        assert trade["side"] == ("buy" if base > 0 else "sell")
        assert dec(trade["amount"]) == abs(base)
        assert dec(trade["price"]) == Decimal(row["btc_eur"])
        assert dec(trade["cost"]) == abs(Decimal(row["eur"]))
        assert (dec(trade["fee"]["cost"]), trade["fee"]["currency"]) == (Decimal(row["fee"]), "EUR")
        assert trade["order"] == str(row["order_id"])
        executed = datetime.fromisoformat(row["datetime"]).replace(tzinfo=UTC)
        assert trade["timestamp"] == ms(executed)


# --- Bitvavo --------------------------------------------------------------------------------


def test_bitvavo_ohlcv_is_the_tape(bitvavo: Bitvavo, world: World) -> None:
    until = ms(NOW - timedelta(days=1))
    candles = bitvavo.fetch_ohlcv("ADA/EUR", "1m", limit=1000, params={"until": until})
    truth = world.market("bitvavo", "ADA-EUR").candles(60, until - 1000 * MINUTE_MS, until)
    assert 0 < len(truth) < 1000, "ADA-EUR has quiet minutes: Bitvavo sends no row for them"
    assert [[c[0], *(dec(x) for x in c[1:])] for c in candles] == [
        [t.open_ms, t.open, t.high, t.low, t.close, t.volume] for t in truth
    ]


def test_bitvavo_public_trades_are_the_newest_of_the_tape(bitvavo: Bitvavo, world: World) -> None:
    trades = bitvavo.fetch_trades("BTC/EUR", limit=300)
    market = world.market("bitvavo", "BTC-EUR")
    truth = market.latest_trades(NOW_MS + 1, 300)
    assert len(truth) == 300
    assert {t["id"] for t in trades} == {market.trade_uuid(t) for t in truth}
    assert sorted(
        (t["timestamp"], dec(t["price"]), dec(t["amount"]), t["side"]) for t in trades
    ) == (sorted((t.ts_ms, t.price, t.amount, t.side) for t in truth))


def test_bitvavo_balance_totals_are_the_world_balances(bitvavo: Bitvavo, world: World) -> None:
    balance = bitvavo.fetch_balance()
    truth = world.bitvavo.balance(NOW_MS)
    assert any(Decimal(row["inOrder"]) > 0 for row in truth), "some funds should be in orders"
    assert {code: dec(total) for code, total in balance["total"].items()} == {
        row["symbol"]: Decimal(row["available"]) + Decimal(row["inOrder"]) for row in truth
    }
    assert {code: dec(used) for code, used in balance["used"].items()} == {
        row["symbol"]: Decimal(row["inOrder"]) for row in truth
    }


def test_bitvavo_my_trades_are_the_world_fills(bitvavo: Bitvavo, world: World) -> None:
    trades = bitvavo.fetch_my_trades("BTC/EUR", limit=1000)
    fills = world.bitvavo.trades("BTC-EUR", NOW_MS)
    assert len(fills) > 20
    assert sorted(t["id"] for t in trades) == sorted(row["id"] for row in fills)
    got = {t["id"]: t for t in trades}
    unsettled = 0
    for row in fills:
        trade = got[row["id"]]
        assert (trade["order"], trade["timestamp"], trade["side"]) == (
            row["orderId"],
            row["timestamp"],
            row["side"],
        )
        assert (dec(trade["amount"]), dec(trade["price"])) == (
            Decimal(row["amount"]),
            Decimal(row["price"]),
        )
        assert trade["takerOrMaker"] == ("taker" if row["taker"] else "maker")
        if "fee" in row:
            assert (dec(trade["fee"]["cost"]), trade["fee"]["currency"]) == (
                Decimal(row["fee"]),
                row["feeCurrency"],
            )
        else:  # not settled yet: no fee on the wire, none in ccxt
            unsettled += 1
            assert (trade["fee"] or {}).get("cost") is None
    assert unsettled > 0
