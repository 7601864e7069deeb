"""The sandbox's endpoints over real HTTP: shapes, paging rules and quirks of EXCHANGES.md.

Every expectation comes from the world (`sandbox.world`, the truth) or from the documented rule,
never from the server's own encoder. The world's clock is frozen at 2024-03-31T00:00:00Z.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from test_sandbox_helpers import (
    DAY_MS,
    HOUR_MS,
    NOW_MS,
    BitstampClient,
    BitvavoClient,
    clients,
    ledger_ms,
    loads,
    shared_world,
)

from pipelines.sandbox.server import (
    IDLE_CONNECTION_TIMEOUT_S,
    JOIN_TIMEOUT_S,
    Sandbox,
    start_sandbox,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # rate_scale 1000: budgets a thousand times larger, so no test here trips a limit
    with start_sandbox(now_ms=NOW_MS, rate_scale=1000.0, world=shared_world()) as running:
        yield running


@pytest.fixture(scope="module")
def bitstamp(sandbox: Sandbox) -> BitstampClient:
    return clients(sandbox)[0]


@pytest.fixture(scope="module")
def bitvavo(sandbox: Sandbox) -> BitvavoClient:
    return clients(sandbox)[1]


def bitstamp_market(sandbox: Sandbox, pair: str = "btceur") -> Any:
    return sandbox.world.markets[("bitstamp", pair)]


def bitvavo_market(sandbox: Sandbox, symbol: str = "BTC-EUR") -> Any:
    return sandbox.world.markets[("bitvavo", symbol)]


def ohlc(client: BitstampClient, pair: str = "btceur", **params: Any) -> list[dict[str, str]]:
    response = client.get(f"/api/v2/ohlc/{pair}/", params)
    assert response.status_code == 200, response.text
    body = loads(response.text)
    assert set(body) == {"data"}
    return body["data"]["ohlc"]


def assert_bitstamp_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = loads(response.text)
    assert body["status"] == "error"
    assert isinstance(body["reason"], str) and body["reason"]
    assert body.get("response_code", body.get("code")) == code


def assert_bitvavo_error(response: Any, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = loads(response.text)
    assert body["errorCode"] == code
    assert isinstance(body["error"], str) and body["error"]


# --- Bitstamp OHLC --------------------------------------------------------------------------


def test_ohlc_end_wins_over_start_and_is_inclusive(sandbox: Sandbox, bitstamp: BitstampClient):
    end = NOW_MS // 1000 - 7 * 3600  # aligned on the hour
    rows = ohlc(bitstamp, step=3600, limit=24, start=end - 40 * 86400, end=end)
    assert len(rows) == 24
    assert rows[-1]["timestamp"] == str(end)  # a candle opening at `end` is included
    assert rows[0]["timestamp"] == str(end - 23 * 3600)  # `start` ignored
    # an unaligned end: the last candle is the one whose open time is <= end
    rows = ohlc(bitstamp, step=3600, limit=3, end=end + 1799)
    assert [r["timestamp"] for r in rows] == [str(end - 7200), str(end - 3600), str(end)]


def test_ohlc_start_alone_works_forward(bitstamp: BitstampClient):
    start = NOW_MS // 1000 - 30 * 86400
    rows = ohlc(bitstamp, step=900, limit=10, start=start)
    assert [int(r["timestamp"]) for r in rows] == [start + i * 900 for i in range(10)]


def test_ohlc_rows_are_strings_oldest_first_and_match_the_tape(
    sandbox: Sandbox, bitstamp: BitstampClient
):
    end = NOW_MS // 1000 - 3 * 86400 + 3 * 3600
    rows = ohlc(bitstamp, step=60, limit=1000, end=end)
    assert len(rows) == 1000
    stamps = [int(r["timestamp"]) for r in rows]
    assert stamps == list(range(end - 999 * 60, end + 1, 60))  # filled: no gaps, oldest first
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert all(set(r) == {"timestamp", "open", "high", "low", "close", "volume"} for r in rows)

    truth = {
        c.open_ms // 1000: c
        for c in bitstamp_market(sandbox).candles(60, stamps[0] * 1000, (end + 60) * 1000)
    }
    fillers = 0
    previous_close = None
    for row in rows:
        ts = int(row["timestamp"])
        o, h, low, c, v = (Decimal(row[k]) for k in ("open", "high", "low", "close", "volume"))
        if ts in truth:
            candle = truth[ts]
            assert (o, h, low, c, v) == (
                candle.open,
                candle.high,
                candle.low,
                candle.close,
                candle.volume,
            )
        else:  # an empty minute: a zero-volume candle flat at the previous close
            fillers += 1
            assert v == 0
            assert o == h == low == c == previous_close
        previous_close = c
    assert fillers > 0, "the world has quiet minutes; the page should show filled candles"


def test_ohlc_filler_after_page_start_uses_the_close_before_the_page(
    sandbox: Sandbox, bitstamp: BitstampClient
):
    market = bitstamp_market(sandbox)
    start_ms = NOW_MS - 10 * DAY_MS
    minutes = {c.open_ms for c in market.candles(60, start_ms, start_ms + DAY_MS)}
    empty = next(t for t in range(start_ms + 60_000, start_ms + DAY_MS, 60_000) if t not in minutes)
    rows = ohlc(bitstamp, step=60, limit=1, end=empty // 1000)
    assert len(rows) == 1
    previous = market.candles(60, empty - DAY_MS, empty)[-1].close
    assert rows[0]["volume"].strip("0.") == ""
    assert Decimal(rows[0]["open"]) == Decimal(rows[0]["close"]) == previous


def test_ohlc_current_candle_and_exclude_current_candle(bitstamp: BitstampClient):
    now_s = NOW_MS // 1000
    rows = ohlc(bitstamp, step=3600, limit=5)
    assert rows[-1]["timestamp"] == str(now_s)  # the open candle holding `now`
    rows = ohlc(bitstamp, step=3600, limit=5, exclude_current_candle="true")
    assert rows[-1]["timestamp"] == str(now_s - 3600)
    rows = ohlc(bitstamp, step=3600, limit=5, end=now_s + 86400)  # never past now
    assert rows[-1]["timestamp"] == str(now_s)


def test_ohlc_never_before_genesis(sandbox: Sandbox, bitstamp: BitstampClient):
    genesis_s = bitstamp_market(sandbox).genesis_ms // 1000
    rows = ohlc(bitstamp, step=86400, limit=5, end=genesis_s + 2 * 86400)
    assert 0 < len(rows) <= 3
    assert int(rows[0]["timestamp"]) >= genesis_s
    assert ohlc(bitstamp, step=86400, limit=5, end=genesis_s - 86400) == []


def test_ohlc_parameter_validation(bitstamp: BitstampClient):
    for params in ({"step": 120, "limit": 10}, {"step": 604800, "limit": 10}, {"limit": 10}):
        response = bitstamp.get("/api/v2/ohlc/btceur/", params)
        assert_bitstamp_error(response, 400, "400.001")
    for limit in (0, 1001, "x"):
        response = bitstamp.get("/api/v2/ohlc/btceur/", {"step": 60, "limit": limit})
        assert_bitstamp_error(response, 400, "400.011")
    assert bitstamp.get("/api/v2/ohlc/btceur/", {"step": 60, "limit": 1000}).status_code == 200
    assert bitstamp.get("/api/v2/ohlc/nosuch/", {"step": 60, "limit": 1}).status_code == 404
    # the trailing slash is part of the path
    assert bitstamp.get("/api/v2/ohlc/btceur", {"step": 60, "limit": 1}).status_code == 404


def test_ohlc_duplicate_daily_timestamp_last_wins(sandbox: Sandbox, bitstamp: BitstampClient):
    rows = ohlc(bitstamp, step=86400, limit=1000)
    counts = Counter(r["timestamp"] for r in rows)
    doubled = [ts for ts, n in counts.items() if n > 1]
    assert len(doubled) == 1, "exactly one day is served twice"
    day = int(doubled[0])
    first, second = (r for r in rows if r["timestamp"] == doubled[0])
    assert first != second, "two different candles for one day"
    (truth,) = bitstamp_market(sandbox).candles(86400, day * 1000, day * 1000 + DAY_MS)
    assert Decimal(second["close"]) == truth.close  # dedupe on the key, last wins
    assert Decimal(second["volume"]) == truth.volume
    deduped = {r["timestamp"]: r for r in rows}
    stamps = sorted(int(ts) for ts in deduped)
    assert stamps == list(range(stamps[0], stamps[-1] + 1, 86400))


def test_ohlc_999_row_page_loses_nothing_when_paging_by_end(bitstamp: BitstampClient):
    end = NOW_MS // 1000 - 5 * 86400  # a UTC day boundary
    page = ohlc(bitstamp, step=60, limit=1000, end=end)
    assert len(page) == 999  # the short page
    assert page[-1]["timestamp"] == str(end)
    assert page[0]["timestamp"] == str(end - 998 * 60)  # the OLDEST row is the one missing
    older = ohlc(bitstamp, step=60, limit=1000, end=int(page[0]["timestamp"]) - 60)
    assert len(older) == 1000
    stamps = [int(r["timestamp"]) for r in older + page]
    assert stamps == list(range(stamps[0], end + 1, 60))  # nothing lost
    assert len(ohlc(bitstamp, step=60, limit=1000, end=end + 60)) == 1000  # unaligned: full


def test_ohlc_full_walk_by_end_covers_genesis_to_now(sandbox: Sandbox, bitstamp: BitstampClient):
    genesis_s = bitstamp_market(sandbox).genesis_ms // 1000
    seen: dict[str, dict[str, str]] = {}
    end = NOW_MS // 1000
    for _ in range(60):  # the tape reaches back to 2020: about 36 pages of hours
        page = ohlc(bitstamp, step=3600, limit=1000, end=end, exclude_current_candle="true")
        if not page:
            break
        seen.update({r["timestamp"]: r for r in page})
        end = int(page[0]["timestamp"]) - 3600
    stamps = sorted(int(ts) for ts in seen)
    assert stamps[0] == genesis_s
    assert stamps == list(range(genesis_s, NOW_MS // 1000, 3600))


# --- Bitstamp public trades, markets, eur_usd ------------------------------------------------


def test_transactions_window_newest_first_strings(sandbox: Sandbox, bitstamp: BitstampClient):
    market = bitstamp_market(sandbox)
    for window, seconds in (("minute", 60), (None, 3600), ("day", 86400)):
        params = {} if window is None else {"time": window}
        response = bitstamp.get("/api/v2/transactions/btceur/", params)
        assert response.status_code == 200
        rows = loads(response.text)
        truth = market.trades(NOW_MS - seconds * 1000, NOW_MS + 1)
        assert [r["tid"] for r in rows] == [str(t.seq) for t in reversed(truth)]
        assert all(isinstance(v, str) for r in rows for v in r.values())
        assert {r["type"] for r in rows} <= {"0", "1"}
        if rows:
            newest = truth[-1]
            assert rows[0]["date"] == str(newest.ts_ms // 1000)
            assert Decimal(rows[0]["price"]) == newest.price
            assert Decimal(rows[0]["amount"]) == newest.amount
            assert rows[0]["type"] == ("0" if newest.side == "buy" else "1")
    response = bitstamp.get("/api/v2/transactions/btceur/", {"time": "week"})
    assert_bitstamp_error(response, 400, "400.001")


def test_markets_and_pairs_info_list_the_worlds_markets(sandbox: Sandbox, bitstamp: BitstampClient):
    symbols = sorted(sym for ex, sym in sandbox.world.markets if ex == "bitstamp")
    markets = loads(bitstamp.get("/api/v2/markets/").text)
    assert [m["market_symbol"] for m in markets] == symbols
    btceur = next(m for m in markets if m["market_symbol"] == "btceur")
    assert (btceur["base_currency"], btceur["counter_currency"]) == ("BTC", "EUR")
    assert btceur["name"] == "BTC/EUR"
    pairs = loads(bitstamp.get("/api/v2/trading-pairs-info/").text)
    assert [p["url_symbol"] for p in pairs] == symbols
    rate = loads(bitstamp.get("/api/v2/eur_usd/").text)
    assert set(rate) == {"buy", "sell"}
    assert Decimal(rate["sell"]) < Decimal(rate["buy"])


# --- Bitstamp account ------------------------------------------------------------------------


def visible_ledger(sandbox: Sandbox) -> list[dict[str, Any]]:
    rows = sandbox.world.bitstamp.user_transactions
    return [r for r in rows if ledger_ms(r["datetime"]) <= NOW_MS]


def test_user_transactions_full_walk_by_since_id(sandbox: Sandbox, bitstamp: BitstampClient):
    truth = visible_ledger(sandbox)
    assert len(truth) > 200
    got: list[dict[str, Any]] = []
    since_id = 1
    while True:
        response = bitstamp.post(
            "/api/v2/user_transactions/", {"sort": "asc", "limit": 1000, "since_id": since_id}
        )
        assert response.status_code == 200, response.text
        page = loads(response.text)
        got.extend(page)
        if len(page) < 1000:
            break
        since_id = max(int(r["id"]) for r in page) + 1
    assert [r["id"] for r in got] == [r["id"] for r in truth]
    assert got == truth  # every field; numbers compared as exact Decimals


def test_user_transactions_offset_walk_in_small_pages(sandbox: Sandbox, bitstamp: BitstampClient):
    truth = visible_ledger(sandbox)
    got: list[dict[str, Any]] = []
    for offset in range(0, len(truth) + 100, 100):
        fields = {"sort": "asc", "limit": 100, "offset": offset}
        page = loads(bitstamp.post("/api/v2/user_transactions/", fields).text)
        assert len(page) == min(100, max(0, len(truth) - offset))
        got.extend(page)
    assert [canon(r) for r in got] == [canon(r) for r in truth]
    assert all(set(r) == set(t) for r, t in zip(got, truth, strict=True))  # same keys, quirks kept


def test_user_transactions_defaults_and_since_id(sandbox: Sandbox, bitstamp: BitstampClient):
    truth = visible_ledger(sandbox)
    page = loads(bitstamp.post("/api/v2/user_transactions/").text)
    assert len(page) == 100  # default limit
    assert [r["id"] for r in page] == [r["id"] for r in truth[::-1][:100]]  # default desc
    pivot = truth[10]["id"]
    page = loads(
        bitstamp.post(
            "/api/v2/user_transactions/", {"since_id": pivot, "limit": 5, "sort": "asc"}
        ).text
    )
    assert page[0]["id"] == pivot  # inclusive
    assert len(page) == min(1000, len(truth) - 10)  # since_id forces limit 1000
    page = loads(
        bitstamp.post("/api/v2/user_transactions/", {"offset": 3, "limit": 2, "sort": "asc"}).text
    )
    assert [r["id"] for r in page] == [truth[3]["id"], truth[4]["id"]]


def test_user_transactions_since_timestamp_reaches_30_days(
    sandbox: Sandbox, bitstamp: BitstampClient
):
    truth = visible_ledger(sandbox)
    since_s = (NOW_MS - 60 * DAY_MS) // 1000
    response = bitstamp.post(
        "/api/v2/user_transactions/", {"since_timestamp": since_s, "limit": 1000, "sort": "asc"}
    )
    page = loads(response.text)
    reach = NOW_MS - 30 * DAY_MS
    expected = [r["id"] for r in truth if ledger_ms(r["datetime"]) >= reach][:1000]
    assert [r["id"] for r in page] == expected
    older = [r for r in truth if since_s * 1000 <= ledger_ms(r["datetime"]) < reach]
    assert older, "the world has rows between 60 and 30 days back that must not come back"


def test_user_transactions_for_a_pair_lists_only_its_trades(
    sandbox: Sandbox, bitstamp: BitstampClient
):
    truth = [r["id"] for r in visible_ledger(sandbox) if str(r["type"]) == "2" and "btc_eur" in r]
    assert truth
    response = bitstamp.post(
        "/api/v2/user_transactions/btceur/", {"limit": 1000, "sort": "asc", "since_id": 0}
    )
    page = loads(response.text)
    assert [r["id"] for r in page] == truth[:1000]


def test_user_transactions_validation_and_unknown_fields(bitstamp: BitstampClient):
    path = "/api/v2/user_transactions/"
    assert_bitstamp_error(bitstamp.post(path, {"offset": 200_001}), 400, "400.010")
    assert bitstamp.post(path, {"offset": 200_000}).status_code == 200
    assert_bitstamp_error(bitstamp.post(path, {"limit": 1001}), 400, "400.011")
    assert_bitstamp_error(bitstamp.post(path, {"sort": "up"}), 400, "400.012")
    assert_bitstamp_error(bitstamp.post(path, {"since_timestamp": "yesterday"}), 400, "400.013")
    response = bitstamp.post(path, {"limit": 3, "colour": "blue"})
    assert response.status_code == 200 and len(loads(response.text)) == 3


def test_crypto_transactions_balances_and_fees(sandbox: Sandbox, bitstamp: BitstampClient):
    account = sandbox.world.bitstamp
    crypto = loads(bitstamp.post("/api/v2/crypto-transactions/", {"limit": 1000}).text)
    for key in ("deposits", "withdrawals"):
        rows = account.crypto_transactions.get(key, [])
        truth = [r for r in rows if int(r["datetime"]) <= NOW_MS // 1000]
        assert same_rows(crypto[key], truth[-1000:])
        assert [r["datetime"] for r in crypto[key]] == sorted(
            (r["datetime"] for r in crypto[key]), reverse=True
        )
    balances = loads(bitstamp.post("/api/v2/account_balances/").text)
    assert canon(balances) == canon(account.balances(NOW_MS))
    one = balances[0]
    single = loads(bitstamp.post(f"/api/v2/account_balances/{one['currency']}/").text)
    assert single == one
    trading = loads(bitstamp.post("/api/v2/fees/trading/").text)
    assert canon(trading) == canon(account.trading_fees)
    fees = loads(bitstamp.post("/api/v2/fees/withdrawal/").text)
    assert canon(fees) == canon(account.withdrawal_fees)


def canon(value: Any) -> Any:
    """A hashable form in which a JSON number equals the same number as a Decimal or int, but
    never the same digits as a string (so the wire's str/number distinction is checked)."""
    if isinstance(value, dict):
        return tuple(sorted((key, canon(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(canon(item) for item in value)
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return ("number", Decimal(value).normalize())
    return value


def same_rows(got: list[Any], truth: Any) -> bool:
    return Counter(map(canon, got)) == Counter(map(canon, list(truth)))


# --- Bitvavo public --------------------------------------------------------------------------


def candles(client: BitvavoClient, market: str = "BTC-EUR", **params: Any) -> list[list[Any]]:
    response = client.public(f"/{market}/candles", params)
    assert response.status_code == 200, response.text
    return loads(response.text)


def test_bitvavo_candles_newest_first_end_anchored(sandbox: Sandbox, bitvavo: BitvavoClient):
    market = bitvavo_market(sandbox)
    start = NOW_MS - 20 * DAY_MS
    rows = candles(bitvavo, interval="1h", limit=24, start=start)
    stamps = [r[0] for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert stamps[0] >= NOW_MS - 2 * HOUR_MS  # only start: the NEWEST candles, not those after it
    end = NOW_MS - 3 * DAY_MS
    rows = candles(bitvavo, interval="1h", limit=48, end=end)
    truth = market.candles(3600, end - 48 * HOUR_MS, end)
    assert rows[0][0] == truth[-1].open_ms  # the last candle is the one before `end`
    assert rows[0][0] < end
    assert [r[0] for r in rows] == [c.open_ms for c in reversed(truth)]
    for row, candle in zip(rows, reversed(truth), strict=True):
        assert isinstance(row[0], int) and all(isinstance(v, str) for v in row[1:])
        assert [Decimal(v) for v in row[1:]] == [
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
        ]


def test_bitvavo_candles_gaps_not_fillers_and_default_limit(
    sandbox: Sandbox, bitvavo: BitvavoClient
):
    rows = candles(bitvavo, interval="1m", end=NOW_MS - 2 * DAY_MS)
    assert 0 < len(rows) <= 1440  # default limit 1440
    assert all(Decimal(r[5]) > 0 for r in rows)  # no zero-volume fillers
    steps = [a[0] - b[0] for a, b in itertools.pairwise(rows)]
    assert max(steps) > 60_000, "quiet minutes are gaps"
    truth = bitvavo_market(sandbox).candles(60, rows[-1][0], NOW_MS - 2 * DAY_MS)
    assert [r[0] for r in rows] == [c.open_ms for c in reversed(truth)]


def test_bitvavo_candles_limit_plus_one(bitvavo: BitvavoClient):
    end = NOW_MS - 4 * DAY_MS
    rows = candles(bitvavo, interval="1h", limit=24, start=end - 24 * HOUR_MS, end=end)
    assert len(rows) == 25  # the documented "up to limit + 1"
    assert rows[0][0] == end and rows[-1][0] == end - 24 * HOUR_MS
    rows = candles(bitvavo, interval="1h", limit=24, start=end - 30 * HOUR_MS, end=end)
    assert len(rows) == 24 and rows[0][0] == end - HOUR_MS


def test_bitvavo_candles_validation(bitvavo: BitvavoClient):
    assert_bitvavo_error(bitvavo.public("/BTC-EUR/candles", {"limit": 5}), 400, 203)
    assert_bitvavo_error(bitvavo.public("/BTC-EUR/candles", {"interval": "2m"}), 400, 205)
    for limit in (0, 1441):
        response = bitvavo.public("/BTC-EUR/candles", {"interval": "1m", "limit": limit})
        assert_bitvavo_error(response, 400, 205)
    response = bitvavo.public("/BTC-EUR/candles", {"interval": "1m", "colour": "x"})
    assert_bitvavo_error(response, 400, 204)
    response = bitvavo.public("/NOPE-EUR/candles", {"interval": "1m"})
    assert_bitvavo_error(response, 400, 205)


def test_bitvavo_public_trades_paging_by_inclusive_end(sandbox: Sandbox, bitvavo: BitvavoClient):
    market = bitvavo_market(sandbox)
    start, end = NOW_MS - 6 * HOUR_MS, NOW_MS - 2 * HOUR_MS
    truth = market.trades(start, end + 1)
    assert len(truth) > 300
    seen: dict[str, dict[str, Any]] = {}
    cursor = end
    for _ in range(100):
        response = bitvavo.public("/BTC-EUR/trades", {"start": start, "end": cursor, "limit": 100})
        page = loads(response.text)
        stamps = [r["timestamp"] for r in page]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert all(start <= ts <= cursor for ts in stamps)
        seen.update({r["id"]: r for r in page})
        if len(page) < 100:
            break
        cursor = page[-1]["timestamp"]  # inclusive: the next page repeats this millisecond
    assert set(seen) == {market.trade_uuid(t) for t in truth}
    assert all(UUID.match(trade_id) for trade_id in seen)
    newest = truth[-1]
    row = seen[market.trade_uuid(newest)]
    assert row["timestamp"] == newest.ts_ms
    assert (Decimal(row["price"]), Decimal(row["amount"]), row["side"]) == (
        newest.price,
        newest.amount,
        newest.side,
    )


def test_bitvavo_public_trades_limits(bitvavo: BitvavoClient):
    assert len(loads(bitvavo.public("/BTC-EUR/trades").text)) == 500  # default limit
    assert len(loads(bitvavo.public("/BTC-EUR/trades", {"limit": 1000}).text)) == 1000
    assert_bitvavo_error(bitvavo.public("/BTC-EUR/trades", {"limit": 1001}), 400, 205)
    window = {"start": NOW_MS - DAY_MS - 1, "end": NOW_MS}
    assert_bitvavo_error(bitvavo.public("/BTC-EUR/trades", window), 400, 205)
    window = {"start": NOW_MS - DAY_MS, "end": NOW_MS}
    assert bitvavo.public("/BTC-EUR/trades", window).status_code == 200


def test_bitvavo_markets_assets_time(sandbox: Sandbox, bitvavo: BitvavoClient):
    symbols = sorted(sym for ex, sym in sandbox.world.markets if ex == "bitvavo")
    markets = loads(bitvavo.public("/markets").text)
    assert [m["market"] for m in markets] == symbols
    one = loads(bitvavo.public("/markets", {"market": symbols[0]}).text)
    assert one == markets[0]
    assets = {a["symbol"] for a in loads(bitvavo.public("/assets").text)}
    assert {m["base"] for m in markets} | {m["quote"] for m in markets} == assets
    response = bitvavo.public("/time")
    server_ms = loads(response.text)["time"]
    assert isinstance(server_ms, int)
    import time

    assert abs(server_ms - time.time() * 1000) < 5000  # the auth clock: wall time


# --- Bitvavo account -------------------------------------------------------------------------


def test_bitvavo_account_trades_per_market(sandbox: Sandbox, bitvavo: BitvavoClient):
    account = sandbox.world.bitvavo
    assert_bitvavo_error(bitvavo.get("/trades"), 400, 203)
    for market in account.markets_traded:
        truth = account.trades(market, NOW_MS)
        got: dict[str, dict[str, Any]] = {}
        end = None
        while True:
            params: dict[str, Any] = {"market": market, "limit": 100}
            if end is not None:
                params["end"] = end
            page = loads(bitvavo.get("/trades", params).text)
            stamps = [r["timestamp"] for r in page]
            assert stamps == sorted(stamps, reverse=True)
            fresh = [r for r in page if r["id"] not in got]
            got.update({r["id"]: r for r in page})
            if len(page) < 100 or not fresh:
                break
            end = page[-1]["timestamp"]  # inclusive end, dedupe on id
        assert same_rows(list(got.values()), truth)
        assert all(r["market"] == market for r in got.values())


def test_bitvavo_account_history_pages(sandbox: Sandbox, bitvavo: BitvavoClient):
    truth = list(sandbox.world.bitvavo.history(NOW_MS))
    first = loads(bitvavo.get("/account/history", {"maxItems": 100, "toDate": NOW_MS}).text)
    assert first["currentPage"] == 1 and first["maxItems"] == 100
    assert first["totalPages"] == -(-len(truth) // 100)
    items = list(first["items"])
    for page in range(2, first["totalPages"] + 1):
        body = loads(
            bitvavo.get("/account/history", {"maxItems": 100, "toDate": NOW_MS, "page": page}).text
        )
        assert body["currentPage"] == page
        items.extend(body["items"])
    assert same_rows(items, truth)
    stamps = [i["executedAt"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert_bitvavo_error(bitvavo.get("/account/history", {"maxItems": 101}), 400, 205)


def test_bitvavo_deposits_withdrawals_balance_fees(sandbox: Sandbox, bitvavo: BitvavoClient):
    account = sandbox.world.bitvavo
    for path, rows in (
        ("/depositHistory", account.deposits(NOW_MS)),
        ("/withdrawalHistory", account.withdrawals(NOW_MS)),
    ):
        got = loads(bitvavo.get(path, {"limit": 1000}).text)
        assert same_rows(got, rows)
        assert [r["timestamp"] for r in got] == sorted((r["timestamp"] for r in got), reverse=True)
        assert_bitvavo_error(bitvavo.get(path, {"limit": 1001}), 400, 205)
        if len(got) > 2:
            cut = got[1]["timestamp"]
            older = loads(bitvavo.get(path, {"end": cut}).text)
            assert all(r["timestamp"] <= cut for r in older) and got[1] in older
    assert canon(loads(bitvavo.get("/balance").text)) == canon(account.balance(NOW_MS))
    market = account.markets_traded[0]
    fees = loads(bitvavo.get("/account/fees", {"market": market}).text)
    assert canon(fees) == canon(account.fees(market))


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_and_clock_give_byte_identical_bodies(sandbox: Sandbox):
    paths_bitstamp = [
        "/api/v2/ohlc/btceur/?step=3600&limit=1000&end=1711000000",
        "/api/v2/ohlc/etheur/?step=86400&limit=200",
        "/api/v2/transactions/btcusd/?time=hour",
        "/api/v2/markets/",
    ]
    paths_bitvavo = ["/BTC-EUR/candles?interval=5m&limit=500", "/ETH-EUR/trades?limit=300"]
    with start_sandbox(now_ms=NOW_MS, rate_scale=1000.0) as twin:  # a second, fresh World
        for one, other in ((sandbox, twin), (twin, sandbox)):
            a_stamp, a_vavo = clients(one)
            b_stamp, b_vavo = clients(other)
            for path in paths_bitstamp:
                assert a_stamp.get(path).content == b_stamp.get(path).content
            for path in paths_bitvavo:
                assert a_vavo.public(path).content == b_vavo.public(path).content
            signed = [
                ("/api/v2/user_transactions/", {"limit": 1000, "sort": "asc"}),
                ("/api/v2/account_balances/", {}),
            ]
            for path, fields in signed:
                assert a_stamp.post(path, fields).content == b_stamp.post(path, fields).content
            for path in ("/balance", "/depositHistory"):
                assert a_vavo.get(path, {}).content == b_vavo.get(path, {}).content


def test_stats_count_requests_weight_and_statuses(sandbox: Sandbox, bitvavo: BitvavoClient):
    before = loads(bitvavo.session.get(sandbox.bitvavo.stats_url).text)
    bitvavo.public("/BTC-EUR/trades", {"limit": 1})
    bitvavo.public("/BTC-EUR/candles", {"interval": "1d", "limit": 1})
    bitvavo.public("/BTC-EUR/candles", {"interval": "1d", "limit": 0})
    after = loads(bitvavo.session.get(sandbox.bitvavo.stats_url).text)

    def endpoint(stats: dict[str, Any], name: str) -> dict[str, int]:
        return stats["endpoints"].get(name, {"requests": 0, "weight": 0})

    trades = endpoint(after, "{market}/trades")
    old = endpoint(before, "{market}/trades")
    assert (trades["requests"] - old["requests"], trades["weight"] - old["weight"]) == (1, 5)
    assert (
        endpoint(after, "{market}/candles")["weight"]
        - endpoint(before, "{market}/candles")["weight"]
        == 2
    )
    assert after["responses"].get("400", 0) - before["responses"].get("400", 0) == 1
    assert after["requests"] - before["requests"] == 3  # the stats call itself is not counted


def test_stop_ends_keepalive_connections_and_frees_the_ports():
    import threading

    import requests

    others = set(threading.enumerate())
    running = start_sandbox(now_ms=NOW_MS, world=shared_world())
    bitstamp, bitvavo = clients(running)
    assert bitstamp.get("/api/v2/markets/").status_code == 200  # leaves a keep-alive socket
    assert bitvavo.public("/time").status_code == 200
    serving = set(threading.enumerate()) - others
    assert len(serving) >= 4  # each exchange's server thread and its keep-alive connection's
    running.stop()
    # Ended, not waited out: an idle keep-alive connection's thread would block for
    # IDLE_CONNECTION_TIMEOUT_S and outlive stop()'s join (JOIN_TIMEOUT_S is shorter).
    assert IDLE_CONNECTION_TIMEOUT_S > JOIN_TIMEOUT_S
    assert [thread.name for thread in serving if thread.is_alive()] == []
    for client in (bitstamp.session, bitvavo.session):
        client.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{running.bitstamp.base_url}/api/v2/markets/", timeout=2)
    running.stop()  # idempotent
