"""The market-data streams (candles, public trades) against the sandbox over real HTTP.

The sandbox's world is the truth: after a sync, every candle and trade the world holds in the
range is in the lake exactly once; a second sync lands nothing and asks for nothing closed;
faults change nothing that lands; Bitvavo pacing holds under a scaled-down budget; a Bitstamp
rolling window that no longer reaches the last landed trade records a gap; a malformed row
fails the sync with a precise error and leaves the lake as it was.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal
from sandbox_clients import bitstamp_client, bitvavo_client
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import ClockedWorld, sandbox_runtime

from pipelines.datasets import CANDLES, GAPS, PUBLIC_TRADES
from pipelines.exchanges import frames
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.values import RowParseError
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window, final_cutoff
from pipelines.flows.public_trades import sync_public_trades
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.flows.sync import lost_data
from pipelines.http import Limiter, RequestBudget, WeightBudget
from pipelines.lake import Lake
from pipelines.sandbox.bitstamp_api import BitstampApp
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

SEED = 11
NOW = datetime(2024, 3, 31, tzinfo=UTC)
TWO_MONTHS = Window(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
TRADES_SINCE = NOW - timedelta(days=2)
SETTLE = timedelta(seconds=60)
DAY_MS = 86_400_000
SYMBOLS = {"bitstamp": "btceur", "bitvavo": "BTC-EUR"}
MARKET = "BTC-EUR"
STEP_S = {"1m": 60, "1h": 3600, "1d": 86400}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def make_runtime(
    sandbox: Sandbox, data_dir: Path, clock: Callable[[], datetime], **limiters: Limiter
) -> Runtime:
    """Settings from the sandbox's own config, our clock, fresh limiters (no shared state)."""
    chosen: dict[str, Limiter] = {
        "bitstamp": RequestBudget(*BITSTAMP_PACING),
        "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
    }
    return sandbox_runtime(
        sandbox, data_dir, now=clock, limiters={**chosen, **limiters}, data_dir=data_dir
    )


def sync_all(
    rt: Runtime,
    span: Window,
    trades_since: datetime,
    intervals: tuple[str, ...] = ("1m", "1h", "1d"),
) -> dict[str, StreamResult]:
    results = {}
    for exchange in ("bitstamp", "bitvavo"):
        for interval in intervals:
            results[f"candles {exchange} {interval}"] = sync_candles(
                rt, exchange, MARKET, interval, span
            )
        results[f"trades {exchange}"] = sync_public_trades(rt, exchange, MARKET, since=trades_since)
    return results


def candles(lake: Lake, exchange: str, interval: str) -> pl.DataFrame:
    return (
        lake.scan(CANDLES.dataset, exchange=exchange, market=MARKET, interval=interval)
        .collect()
        .sort("open_time")
    )


def trades(lake: Lake, exchange: str) -> pl.DataFrame:
    return (
        lake.scan(PUBLIC_TRADES.dataset, exchange=exchange, market=MARKET)
        .collect()
        .sort("traded_at", "trade_id")
    )


def lake_frames(lake: Lake) -> dict[str, pl.DataFrame]:
    """Every dataset's rows, sorted by key, without `fetched_at` (when they arrived)."""
    frames = {}
    for source in (CANDLES, PUBLIC_TRADES):
        dataset = source.dataset
        frames[dataset.name] = (
            lake.scan(dataset).collect().drop("fetched_at").sort(list(dataset.key))
        )
    return frames


def file_bytes(lake: Lake) -> dict[str, bytes]:
    return {str(p.relative_to(lake.root)): p.read_bytes() for p in lake.root.rglob("*.parquet")}


def candle_values(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    """(open time in epoch ms, open, high, low, close, volume) of each row, in order."""
    opened = pl.col("open_time").dt.epoch("ms")
    return frame.select(opened, "open", "high", "low", "close", "volume").rows()


def assert_candles_match_world(
    lake: Lake, world: World, exchange: str, interval: str, span: Window, now: datetime
) -> int:
    """The lake holds exactly the world's candles of `span` closed by `now`; returns how many."""
    cutoff = min(span.end, final_cutoff(now, interval, SETTLE))
    frame = candles(lake, exchange, interval)
    assert frame["open_time"].n_unique() == frame.height, "a candle landed twice"
    step = STEP_S[interval]
    tape = world.market(exchange, SYMBOLS[exchange]).candles(step, ms(span.start), ms(cutoff))
    truth = [(t.open_ms, t.open, t.high, t.low, t.close, t.volume) for t in tape]
    if exchange == "bitvavo":
        assert candle_values(frame) == truth
        return frame.height
    # Bitstamp fills intervals without trades with flat zero-volume candles: one row per interval
    # from the span's start (or the market's first trade), and the traded ones equal the tape.
    market = world.market(exchange, SYMBOLS[exchange])
    traded_before = market.trades(ms(span.start) - DAY_MS, ms(span.start))
    first = ms(span.start) if traded_before else tape[0].open_ms
    expected_opens = list(range(first, ms(cutoff), step * 1000))
    got = candle_values(frame)
    assert [row[0] for row in got] == expected_opens
    traded = {row[0]: row for row in truth}
    fillers = [row for row in got if row[0] not in traded]
    assert [row for row in got if row[0] in traded] == truth
    assert all(r[5] == 0 and r[1] == r[2] == r[3] == r[4] for r in fillers)
    return frame.height


def assert_trades_match_world(
    lake: Lake, world: World, exchange: str, start: datetime, end: datetime
) -> None:
    """The lake holds exactly the world's trades with start <= ts < end (ms), once each."""
    frame = trades(lake, exchange)
    assert frame["trade_id"].n_unique() == frame.height, "a trade landed twice"
    market = world.market(exchange, SYMBOLS[exchange])
    tape = market.trades(ms(start), ms(end))
    if exchange == "bitvavo":
        truth = {(market.trade_uuid(t), t.ts_ms, t.price, t.amount, t.side) for t in tape}
    else:  # Bitstamp: tid = the tape's sequence number, date in whole seconds
        truth = {(str(t.seq), t.ts_ms // 1000 * 1000, t.price, t.amount, t.side) for t in tape}
    got = {
        (r["trade_id"], ms(r["traded_at"]), r["price"], r["amount"], r["side"])
        for r in frame.iter_rows(named=True)
    }
    assert got == truth
    assert len(truth) > 100, "too few trades to prove anything"


# -- a two-month sync shared by the completeness tests ----------------------------------------


world = world_fixture(seed=SEED, days=30, now_ms=ms(NOW))
sandbox = sandbox_fixture()


@pytest.fixture(scope="module")
def synced(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Runtime, dict[str, StreamResult]]:
    rt = make_runtime(sandbox, tmp_path_factory.mktemp("synced"), lambda: NOW)
    return rt, sync_all(rt, TWO_MONTHS, TRADES_SINCE)


@pytest.mark.parametrize("exchange", ["bitstamp", "bitvavo"])
@pytest.mark.parametrize("interval", ["1m", "1h", "1d"])
def test_candles_are_complete_and_landed_once(
    synced: tuple[Runtime, dict[str, StreamResult]],
    world: World,
    sandbox: Sandbox,
    exchange: str,
    interval: str,
) -> None:
    rt, results = synced
    if exchange == "bitstamp" and interval == "1d":  # the day served twice, stale copy first
        server = sandbox.app("bitstamp")
        assert isinstance(server, BitstampApp)
        twice = server.duplicate_day_ms(world.market("bitstamp", "btceur"), ms(NOW))
        assert twice is not None
        assert TWO_MONTHS.start <= datetime.fromtimestamp(twice / 1000, UTC) < NOW
    held = assert_candles_match_world(rt.lake, world, exchange, interval, TWO_MONTHS, NOW)
    result = results[f"candles {exchange} {interval}"]
    assert result.rows == {"candles": held}
    assert result.requests > 0 and result.weight >= result.requests
    tape = world.market(exchange, SYMBOLS[exchange]).candles(
        STEP_S[interval], ms(TWO_MONTHS.start), ms(NOW)
    )
    assert result.first is not None and result.last is not None
    assert ms(result.first) == tape[0].open_ms
    last_final = final_cutoff(NOW, interval, SETTLE) - timedelta(seconds=STEP_S[interval])
    if exchange == "bitstamp":  # a filled candle when the last interval had no trade
        assert result.last == last_final
    else:
        assert ms(result.last) == max(t.open_ms for t in tape if t.open_ms <= ms(last_final))


@pytest.mark.parametrize("exchange", ["bitstamp", "bitvavo"])
def test_public_trades_are_complete_and_landed_once(
    synced: tuple[Runtime, dict[str, StreamResult]], world: World, exchange: str
) -> None:
    rt, results = synced
    if exchange == "bitvavo":  # from `since` to the last final minute
        assert_trades_match_world(rt.lake, world, exchange, TRADES_SINCE, NOW - SETTLE)
    else:  # Bitstamp's longest rolling window: the last day, `now` included
        start = NOW - timedelta(days=1)
        assert_trades_match_world(rt.lake, world, exchange, start, NOW + timedelta(milliseconds=1))
    result = results[f"trades {exchange}"]
    assert result.rows["public_trades"] == trades(rt.lake, exchange).height
    assert result.gaps == ()


def test_one_file_per_chunk_not_per_page(synced: tuple[Runtime, dict[str, StreamResult]]) -> None:
    rt, results = synced
    cutoff = final_cutoff(NOW, "1m", SETTLE)
    for exchange in ("bitstamp", "bitvavo"):
        minute = rt.lake.stems(CANDLES.dataset, exchange=exchange, market=MARKET, interval="1m")
        assert minute == {
            Window(TWO_MONTHS.start, datetime(2024, 3, 1, tzinfo=UTC)).stem,
            Window(datetime(2024, 3, 1, tzinfo=UTC), cutoff).stem,
        }
        assert results[f"candles {exchange} 1m"].requests > 2 * len(minute)
        for interval in ("1h", "1d"):
            longer = rt.lake.stems(
                CANDLES.dataset, exchange=exchange, market=MARKET, interval=interval
            )
            assert longer == {Window(TWO_MONTHS.start, final_cutoff(NOW, interval, SETTLE)).stem}
    days = rt.lake.stems(PUBLIC_TRADES.dataset, exchange="bitvavo", market=MARKET)
    assert days == {
        "20240329T000000-20240330T000000",
        "20240330T000000-20240330T235900",
    }


def test_second_sync_with_the_same_clock_lands_and_asks_nothing(
    synced: tuple[Runtime, dict[str, StreamResult]],
) -> None:
    rt, _ = synced
    before = file_bytes(rt.lake)
    again = sync_all(rt, TWO_MONTHS, TRADES_SINCE)
    for name, result in again.items():
        assert sum(result.rows.values()) == 0, name
        assert result.windows == 0, name
        # Bitstamp's rolling window is always read (once); closed windows never are.
        assert result.requests == (1 if name == "trades bitstamp" else 0), name
    assert file_bytes(rt.lake) == before


# -- a moving clock -----------------------------------------------------------------------------


def test_a_minute_later_each_stream_asks_once_for_the_new_final_rows(tmp_path: Path) -> None:
    world = ClockedWorld(seed=SEED + 1, days=3, now=NOW)
    span = Window(NOW - timedelta(days=2), NOW + timedelta(days=1))
    since = NOW - timedelta(hours=6)
    with start_sandbox(seed=SEED + 1, world=world) as running:
        rt = make_runtime(running, tmp_path, world.now)
        sync_all(rt, span, since)
        held = {
            (exchange, interval): candles(rt.lake, exchange, interval).height
            for exchange in ("bitstamp", "bitvavo")
            for interval in ("1m", "1h", "1d")
        }
        held_trades = {e: trades(rt.lake, e).height for e in ("bitstamp", "bitvavo")}
        later = world.move(timedelta(seconds=60))
        results = sync_all(rt, span, since)
    for (exchange, interval), count in held.items():
        result = results[f"candles {exchange} {interval}"]
        assert result.requests <= 1
        now_held = assert_candles_match_world(rt.lake, world, exchange, interval, span, later)
        old_cut, new_cut = (final_cutoff(t, interval, SETTLE) for t in (NOW, later))
        new = world.market(exchange, SYMBOLS[exchange]).candles(
            STEP_S[interval], ms(old_cut), ms(new_cut)
        )
        # Bitstamp fills an interval without trades; Bitvavo has no candle for it.
        expected = (new_cut - old_cut) // timedelta(seconds=STEP_S[interval])
        if exchange == "bitvavo":
            expected = len(new)
        assert now_held - count == expected == result.rows["candles"], (exchange, interval)
    assert_trades_match_world(rt.lake, world, "bitvavo", since, later - SETTLE)
    new_bitvavo = world.market("bitvavo", "BTC-EUR").trades(ms(NOW - SETTLE), ms(later - SETTLE))
    assert trades(rt.lake, "bitvavo").height - held_trades["bitvavo"] == len(new_bitvavo)
    assert results["trades bitvavo"].requests == 1
    new_bitstamp = world.market("bitstamp", "btceur").trades(ms(NOW) + 1, ms(later) + 1)
    assert trades(rt.lake, "bitstamp").height - held_trades["bitstamp"] == len(new_bitstamp)
    assert results["trades bitstamp"].requests == 1


def test_bitstamp_rolling_window_is_chosen_by_reach_and_a_lost_stretch_is_a_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = ClockedWorld(seed=SEED + 2, days=3, now=NOW)
    market = world.market("bitstamp", "btceur")
    caplog.set_level(logging.DEBUG, logger="pipelines.http")

    def windows_asked() -> list[str]:
        asked = [
            r.getMessage().split("?time=")[1].split()[0]
            for r in caplog.records
            if "/transactions/" in r.getMessage() and "attempt" in r.getMessage()
        ]
        caplog.clear()
        return asked

    with start_sandbox(seed=SEED + 2, world=world) as running:
        rt = make_runtime(running, tmp_path, world.now)
        first = sync_public_trades(rt, "bitstamp", MARKET, since=None)
        assert windows_asked() == ["day"]
        soon = world.move(timedelta(seconds=20))
        sync_public_trades(rt, "bitstamp", MARKET, since=None)
        assert windows_asked() == ["minute"]
        half_hour = world.move(timedelta(minutes=30))
        no_gap = sync_public_trades(rt, "bitstamp", MARKET, since=None)
        assert windows_asked() == ["hour"]
        assert no_gap.gaps == () and rt.lake.files(GAPS) == []
        assert_trades_match_world(rt.lake, world, "bitstamp", NOW - timedelta(days=1), half_hour)
        assert soon < half_hour

        last_landed = trades(rt.lake, "bitstamp")["traded_at"].max()
        assert isinstance(last_landed, datetime)
        much_later = world.move(timedelta(days=1, hours=2))
        with_gap = sync_public_trades(rt, "bitstamp", MARKET, since=None)
        assert windows_asked() == ["day"]
        again = sync_public_trades(rt, "bitstamp", MARKET, since=None)
        assert windows_asked() == ["minute"]
    assert first.gaps == () and again.gaps == ()
    assert len(with_gap.gaps) == 1
    # `tally sync` exits 1 (a data problem) for exactly this gap: trades lost for good
    runs = [dataclasses.asdict(result) for result in (first, no_gap, with_gap, again)]
    assert lost_data(runs) == list(with_gap.gaps)
    gaps = rt.lake.scan(GAPS).collect()
    returned = market.trades(ms(much_later) - DAY_MS, ms(much_later) + 1)
    oldest_returned = datetime.fromtimestamp(returned[0].ts_ms // 1000, UTC)
    assert gaps.drop("reason").to_dicts() == [
        {
            "exchange": "bitstamp",
            "stream": "public_trades",
            "market": MARKET,
            "gap_start": last_landed,
            "gap_end": oldest_returned,
            "detected_at": much_later,
        }
    ]
    assert "no longer reaches the last landed trade" in gaps["reason"][0]
    assert last_landed < much_later - timedelta(days=1) <= oldest_returned
    # What the later window returned landed too, each trade once.
    landed = set(trades(rt.lake, "bitstamp")["trade_id"])
    assert {str(t.seq) for t in returned} <= landed
    assert len(landed) == trades(rt.lake, "bitstamp").height


# -- faults, pacing, bad rows -------------------------------------------------------------------


def sandbox_stats(sandbox: Sandbox) -> dict[str, dict[str, object]]:
    return {
        name: requests.get(side.stats_url, timeout=5).json()
        for name, side in (("bitstamp", sandbox.bitstamp), ("bitvavo", sandbox.bitvavo))
    }


def test_faults_change_nothing_that_lands(world: World, sandbox: Sandbox, tmp_path: Path) -> None:
    span = Window(NOW - timedelta(days=8), NOW)
    since = NOW - timedelta(days=2)
    clean = make_runtime(sandbox, tmp_path / "clean", lambda: NOW)
    sync_all(clean, span, since)
    with start_sandbox(seed=SEED, world=world, faults=0.2, slow_seconds=0.1) as faulty:
        rt = make_runtime(faulty, tmp_path / "faulty", lambda: NOW)
        results = sync_all(rt, span, since)
        stats = sandbox_stats(faulty)
    for name, frame in lake_frames(clean.lake).items():
        assert frame.height > 0
        assert_frame_equal(lake_frames(rt.lake)[name], frame)
    assert {p.relative_to(rt.lake.root) for p in rt.lake.root.rglob("*.parquet")} == {
        p.relative_to(clean.lake.root) for p in clean.lake.root.rglob("*.parquet")
    }
    assert sum(r.retries for r in results.values()) > 0
    for exchange, served in stats.items():
        faults = served["faults"]
        assert isinstance(faults, dict) and sum(faults.values()) > 0, exchange
        assert served["rate_limited"] == 0 and served["bans"] == 0, exchange
        # Every 429 served was an injected one, none a real refusal.
        responses = served["responses"]
        assert isinstance(responses, dict)
        assert responses.get("429", 0) <= faults.get("rate_limited", 0), exchange


def test_bitvavo_sync_is_paced_under_a_scaled_down_budget(world: World, tmp_path: Path) -> None:
    """Budget 50 weight per 3 s (sandbox and client alike): the sync is paced, never refused."""
    since = NOW - timedelta(days=5)
    with start_sandbox(seed=SEED, world=world, rate_scale=0.05) as tight:
        limiter = WeightBudget(headers=WEIGHT_HEADERS, limit=50, window_seconds=3.0, reserve=3)
        rt = make_runtime(tight, tmp_path, lambda: NOW, bitvavo=limiter)
        span = Window(NOW - timedelta(days=30), NOW)
        candle_result = sync_candles(rt, "bitvavo", MARKET, "1m", span)
        trade_result = sync_public_trades(rt, "bitvavo", MARKET, since=since)
        served = sandbox_stats(tight)["bitvavo"]
    assert candle_result.weight + trade_result.weight > 2 * 50, "fitted one window: untested"
    responses = served["responses"]
    assert isinstance(responses, dict) and responses.get("429", 0) == 0
    assert served["rate_limited"] == 0 and served["bans"] == 0
    assert_trades_match_world(rt.lake, world, "bitvavo", since, NOW - SETTLE)
    assert_candles_match_world(rt.lake, world, "bitvavo", "1m", span, NOW)


def test_a_malformed_row_fails_the_sync_and_leaves_the_lake_as_it_was(tmp_path: Path) -> None:
    noon = NOW - timedelta(hours=12)  # mid-chunk: the next fetch of every stream has rows
    world = ClockedWorld(seed=SEED + 3, days=3, now=noon)
    span = Window(noon - timedelta(days=2), noon + timedelta(days=1))
    since = noon - timedelta(hours=6)
    with start_sandbox(seed=SEED + 3, world=world) as clean:
        rt = make_runtime(clean, tmp_path, world.now)
        sync_all(rt, span, since, intervals=("1m",))
    before = file_bytes(rt.lake)
    world.move(timedelta(hours=1))
    streams: list[tuple[str, str, Callable[[Runtime], StreamResult]]] = [
        ("bitstamp", "ohlc", lambda rt: sync_candles(rt, "bitstamp", MARKET, "1m", span)),
        ("bitvavo", "candles", lambda rt: sync_candles(rt, "bitvavo", MARKET, "1m", span)),
        (
            "bitvavo",
            "market/trades",
            lambda rt: sync_public_trades(rt, "bitvavo", MARKET, since=since),
        ),
        (
            "bitstamp",
            "transactions",
            lambda rt: sync_public_trades(rt, "bitstamp", MARKET, since=None),
        ),
    ]
    with start_sandbox(
        seed=SEED + 3, world=world, faults=1.0, fault_kinds="malformed_row"
    ) as broken:
        rt = make_runtime(broken, tmp_path, world.now)
        for exchange, endpoint, sync in streams:
            with pytest.raises(RowParseError) as failure:
                sync(rt)
            message = str(failure.value)
            assert message.startswith(f"{exchange} {endpoint}: row "), message
            assert failure.value.row_index is not None
    assert before and file_bytes(rt.lake) == before
    assert rt.lake.files(GAPS) == []


def test_a_chunk_boundary_costs_no_half_empty_page(
    synced: tuple[Runtime, dict[str, StreamResult]],
) -> None:
    """Bitstamp serves a page of 1000 minutes whatever the chunk: February's walk is stretched
    into March to whole pages and March's begins where it ended, so the two months' 1m candles
    cost the fewest pages that hold them (each chunk walked alone: one page more)."""
    rt, results = synced
    held = candles(rt.lake, "bitstamp", "1m").height
    assert results["candles bitstamp 1m"].requests == -(-held // 1000)


@pytest.mark.parametrize("exchange", ["bitstamp", "bitvavo"])
def test_a_span_off_the_minute_across_a_chunk_boundary_lands_every_candle(
    world: World, sandbox: Sandbox, exchange: str, tmp_path: Path
) -> None:
    """A span that starts between two open times (a backfill's own start) puts the walks' ends
    off the grid too: the candle each end falls in is still read, once."""
    span = Window(datetime(2024, 2, 28, 3, 17, 30, tzinfo=UTC), NOW)
    rt = make_runtime(sandbox, tmp_path, lambda: NOW)
    sync_candles(rt, exchange, MARKET, "1m", span)
    cutoff = final_cutoff(NOW, "1m", SETTLE)
    first_open = datetime(2024, 2, 28, 3, 18, tzinfo=UTC)
    tape = world.market(exchange, SYMBOLS[exchange]).candles(60, ms(first_open), ms(cutoff))
    frame = candles(rt.lake, exchange, "1m")
    opens = [ms(t) for t in frame["open_time"]]
    assert len(opens) == len(set(opens))
    if exchange == "bitvavo":  # a minute without trades has no candle
        assert opens == [t.open_ms for t in tape]
    else:  # Bitstamp fills them: every minute
        assert opens == list(range(ms(first_open), ms(cutoff), 60_000))
    assert ms(datetime(2024, 3, 1, tzinfo=UTC)) - 60_000 in opens  # the last of February


def test_the_bitvavo_trades_walk_reads_pages_from_their_body_and_makes_no_record(
    world: World, sandbox: Sandbox
) -> None:
    """Each sandbox page of public trades is read from its body (`read_public_trades`), and
    the walk pages, deduplicates and cuts it by its columns: no record is made for any row,
    and the trades walked are exactly the world's."""
    client = bitvavo_client(sandbox)
    start, end = NOW - timedelta(hours=30), NOW - timedelta(hours=6)
    pages = list(client.public_trades_window("BTC-EUR", start, end))
    assert len(pages) > 2
    walked = []
    for page in pages:
        rows = page.records
        assert isinstance(rows, frames.FrameRows) and rows.complete is not None
        walked += frames.values(rows, "trade_id")
        assert rows._records is None  # (nothing asked for a record)
    market = world.market("bitvavo", SYMBOLS["bitvavo"])
    assert sorted(walked) == sorted(market.trade_uuid(t) for t in market.trades(ms(start), ms(end)))


def test_bitstamps_rolling_window_is_read_from_its_body(world: World, sandbox: Sandbox) -> None:
    """The sandbox's rolling window of Bitstamp trades is read from its body
    (`read_transactions`), and lands the world's trades of the last hour."""
    page = bitstamp_client(sandbox).public_trades("BTC-EUR", window="hour")
    rows = page.records
    assert isinstance(rows, frames.FrameRows) and rows.complete is not None
    frame = PUBLIC_TRADES.frame(rows, fetched_at=page.fetched_at)
    market = world.market("bitstamp", SYMBOLS["bitstamp"])
    now = world.now_ms()
    tape = market.trades(now - 3_600_000, now + 1)
    assert sorted(frame["trade_id"].to_list()) == sorted(str(t.seq) for t in tape)
    assert len(tape) > 10
