"""The read-only clients against the sandbox over real HTTP: every paging walk returns exactly
what the simulated exchange holds (the world is the truth), through faults and rate limits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import requests
from sandbox_clients import bitstamp_client as bitstamp
from sandbox_clients import bitvavo_client as bitvavo
from sandbox_fixtures import sandbox_fixture, world_fixture

from pipelines.exchanges.bitstamp_parse import replay_balances
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.records import dedupe_candles
from pipelines.http import WeightBudget
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


world = world_fixture(seed=7, days=60, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def test_bitvavo_candles_window_is_exactly_the_tape(sandbox: Sandbox, world: World) -> None:
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    pages = list(bitvavo(sandbox).candles_window("ADA-EUR", "1m", start, end))
    got = [c for page in pages for c in page.records]
    truth = world.market("bitvavo", "ADA-EUR").candles(60, ms(start), ms(end))
    assert len(truth) < 2 * 1440, "ADA-EUR should have quiet minutes (gaps) in this window"
    assert sorted((ms(c.open_time), c.open, c.high, c.low, c.close, c.volume) for c in got) == [
        (t.open_ms, t.open, t.high, t.low, t.close, t.volume) for t in truth
    ]
    assert len(pages) <= 3


def test_bitstamp_ohlc_window_walks_by_end_through_short_pages(
    sandbox: Sandbox, world: World
) -> None:
    # The first page ends (inclusively) at a midnight, where the sandbox serves 999 rows.
    end = NOW - timedelta(days=1) + timedelta(minutes=1)
    start = end - timedelta(days=3)
    pages = list(bitstamp(sandbox).ohlc_window("BTC-EUR", "1m", start, end))
    got = [c for page in pages for c in page.records]
    opens = [c.open_time for c in got]
    assert len(opens) == len(set(opens)) == 3 * 1440
    assert any(page.received == 999 for page in pages), "the 999-row quirk did not occur"
    traded = {
        t.open_ms: t for t in world.market("bitstamp", "btceur").candles(60, ms(start), ms(end))
    }
    for candle in got:
        truth = traded.get(ms(candle.open_time))
        if truth is None:  # a filled interval: zero volume, flat price
            assert candle.volume == 0 and candle.open == candle.high == candle.low == candle.close
        else:
            assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
                truth.open,
                truth.high,
                truth.low,
                truth.close,
                truth.volume,
            )


def test_bitstamp_daily_duplicate_is_resolved_last_wins(sandbox: Sandbox, world: World) -> None:
    start = datetime.fromtimestamp(world.genesis_ms / 1000, UTC)
    pages = list(bitstamp(sandbox).ohlc_window("BTC-EUR", "1d", start, NOW))
    raw = [c for page in pages for c in page.records]
    deduped = dedupe_candles(raw)
    assert len(raw) > len(deduped), "the duplicated daily candle did not occur"
    traded = {
        t.open_ms: t for t in world.market("bitstamp", "btceur").candles(86400, ms(start), ms(NOW))
    }
    for candle in deduped:
        truth = traded[ms(candle.open_time)]
        assert (candle.close, candle.volume) == (truth.close, truth.volume)


def test_bitvavo_public_trades_none_lost_at_shared_milliseconds(
    sandbox: Sandbox, world: World
) -> None:
    start, end = NOW - timedelta(days=2), NOW - timedelta(days=1)
    pages = list(bitvavo(sandbox).public_trades_window("BTC-EUR", start, end))
    ids = [t.trade_id for page in pages for t in page.records]
    market = world.market("bitvavo", "BTC-EUR")
    truth = market.trades(ms(start), ms(end))
    assert len(ids) == len(set(ids)) == len(truth)
    assert set(ids) == {market.trade_uuid(t) for t in truth}
    per_ms = Counter(t.ts_ms for t in truth)
    assert max(per_ms.values()) > 1, "no shared millisecond in the window: test proves nothing"
    assert len(pages) > 1, "a single page: paging was not exercised"


def test_bitstamp_ledger_is_complete_and_replays_to_reported_balances(
    sandbox: Sandbox, world: World
) -> None:
    client = bitstamp(sandbox)
    entries = [e for page in client.ledger_since(1) for e in page.records]
    assert [e.entry_id for e in entries] == [int(r["id"]) for r in world.bitstamp.user_transactions]
    replayed = replay_balances(entries)
    reported = {b.asset: b.total for b in client.balances()}
    for asset, total in reported.items():
        assert replayed.get(asset, Decimal(0)) == total, asset


def test_bitvavo_account_streams_are_complete(sandbox: Sandbox, world: World) -> None:
    client = bitvavo(sandbox)
    start = datetime.fromtimestamp(world.genesis_ms / 1000, UTC)
    for market in world.bitvavo.markets_traded:
        fills = [f for page in client.trades_window(market, start, NOW) for f in page.records]
        truth = world.bitvavo.trades(market, NOW_MS)
        assert sorted(f.fill_id for f in fills) == sorted(str(r["id"]) for r in truth), market
    history = [i for page in client.account_history_window(start, NOW) for i in page.records]
    assert len(history) == len(world.bitvavo.history(NOW_MS))
    deposits = [t for page in client.deposit_history(start=start, end=NOW) for t in page.records]
    withdrawals = [
        t for page in client.withdrawal_history(start=start, end=NOW) for t in page.records
    ]
    assert len(deposits) == len(world.bitvavo.deposits(NOW_MS))
    assert len(withdrawals) == len(world.bitvavo.withdrawals(NOW_MS))
    assert {b.asset for b in client.balance()} >= {"EUR"}


def test_faults_change_nothing_that_lands(world: World) -> None:
    start, end = NOW - timedelta(days=2), NOW - timedelta(days=1)
    with start_sandbox(seed=7, now_ms=NOW_MS, world=world, faults=0.5, slow_seconds=0.2) as faulty:
        bv = bitvavo(faulty, timeout=(2.0, 1.0))
        bs = bitstamp(faulty, timeout=(2.0, 1.0))
        trades = {
            t.trade_id for p in bv.public_trades_window("BTC-EUR", start, end) for t in p.records
        }
        three_days = bs.ohlc_window("BTC-EUR", "1m", end - timedelta(days=3), end)
        candles = [c for p in three_days for c in p.records]
        ledger = [e.entry_id for p in bs.ledger_since(1) for e in p.records]
        ada = [c for p in bv.candles_window("ADA-EUR", "1m", start, end) for c in p.records]
        injected = {
            name: sum(requests.get(side.stats_url, timeout=5).json()["faults"].values())
            for name, side in (("bitvavo", faulty.bitvavo), ("bitstamp", faulty.bitstamp))
        }
    market = world.market("bitvavo", "BTC-EUR")
    assert trades == {market.trade_uuid(t) for t in market.trades(ms(start), ms(end))}
    assert len({c.open_time for c in candles}) == len(candles) == 3 * 1440
    ada_truth = world.market("bitvavo", "ADA-EUR").candles(60, ms(start), ms(end))
    assert sorted(ms(c.open_time) for c in ada) == [t.open_ms for t in ada_truth]
    assert ledger == [int(r["id"]) for r in world.bitstamp.user_transactions]
    assert injected["bitstamp"] > 0 and injected["bitvavo"] > 0, injected
    assert bv.http.stats.retries + bs.http.stats.retries > 0


def test_bitvavo_pacing_never_trips_the_limit(world: World) -> None:
    """With the budget scaled to 50 weight per 3 s, a long walk is paced, never refused."""
    with start_sandbox(seed=7, now_ms=NOW_MS, world=world, rate_scale=0.05) as tight:
        client = bitvavo(
            tight,
            limiter=WeightBudget(headers=WEIGHT_HEADERS, limit=50, window_seconds=3.0, reserve=3),
        )
        start = NOW - timedelta(days=1)
        trades = [t for p in client.public_trades_window("ETH-EUR", start, NOW) for t in p.records]
        for hour in range(90):
            client.candles("BTC-EUR", "1m", start=start + timedelta(hours=hour % 24), end=NOW)
        stats = requests.get(tight.bitvavo.stats_url, timeout=5).json()
    assert client.http.stats.weight > 2 * 50, "the walk fitted one window: pacing untested"
    assert trades
    assert stats["responses"].get("429", 0) == 0
    assert stats["rate_limited"] == 0 and stats["bans"] == 0
