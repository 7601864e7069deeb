"""Bitvavo public trades over a range of days: one backwards walk of requests capped at 24 h.

Over real HTTP against the sandbox, which refuses a public trades request over 24 h (errorCode
205) and reads `end` and `start` inclusively or exclusively (`bitvavo-trades-end`,
`bitvavo-trades-start`): the capped walk reads
every trade once across short and empty windows and at a window's very start, and the sync lands
a run of days as the day-by-day walk did (the same files, value by value) in fewer requests, and
resumes after a failure midway through a run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sandbox_clients import bitvavo_client as client
from sandbox_fixtures import fresh_sandboxes_fixture, served, world_fixture
from sandbox_runtime import sandbox_runtime

from pipelines.datasets import PUBLIC_TRADES
from pipelines.exchanges.bitvavo import (
    MAX_TRADE_SPAN,
    TRADE_LIMIT,
    BitvavoClient,
    trades_read_after,
)
from pipelines.exchanges.bitvavo_walk import Backwards, walk_backwards
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import PublicTrade
from pipelines.flows.chunks import SETTLE, land_plan, partition_files, read_files
from pipelines.flows.plan import ChunkPlan, Window, final_cutoff, plan_chunks
from pipelines.flows.public_trades import sync_public_trades, walk_order
from pipelines.flows.runtime import StreamResult
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

SEED = 13
NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
# how a request's `end` and `start` are read (open points): each value of each, crossed
READINGS = {
    "end inclusive, start exclusive": Variants(
        bitvavo_trades_end="inclusive", bitvavo_trades_start="exclusive"
    ),
    "end exclusive, start inclusive": Variants(
        bitvavo_trades_end="exclusive", bitvavo_trades_start="inclusive"
    ),
}
RATE_SCALE = 100.0  # walks in pages of two would otherwise wait for the budget's reset
GENESIS = datetime(2020, 2, 1, tzinfo=UTC)  # the tape's first day: days before it are empty

world = world_fixture(seed=SEED, days=14, now_ms=NOW_MS)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def at(ms_: int) -> datetime:
    return datetime.fromtimestamp(ms_ / 1000, UTC)


# a fresh sandbox (its own request counts and rate budget) per call, over the module's world
serve = fresh_sandboxes_fixture(rate_scale=RATE_SCALE)


class Recorded:
    """One page request of a walk as sent (times in ms) and what came back."""

    def __init__(self, start: datetime, end: datetime, id_to: str | None, page: Page[Any]):
        self.start, self.end, self.id_to = ms(start), ms(end), id_to
        self.received = page.received


def recording_walk(
    bitvavo: BitvavoClient,
    market: str,
    start: datetime,
    end: datetime,
    *,
    span: timedelta,
    limit: int,
    log: list[Recorded],
) -> Iterator[Page[PublicTrade]]:
    """`walk_backwards` over real `public_trades` requests, capped at `span`, each recorded."""

    def fetch(s: datetime, e: datetime, id_to: str | None) -> Page[PublicTrade]:
        page = bitvavo.public_trades(market, start=s, end=e, limit=limit, trade_id_to=id_to)
        log.append(Recorded(s, e, id_to, page))
        return page

    return walk_backwards(
        fetch,
        start,
        end,
        key=lambda t: t.trade_id,
        moment=lambda t: t.traded_at,
        trade_id=lambda t: t.trade_id,
        exchange="bitvavo",
        endpoint="public_trades",
        limit=limit,
        span=span,
    )


def truth(world: World, market: str, start: datetime, end: datetime) -> list[str]:
    tape = world.market("bitvavo", market)
    return sorted(tape.trade_uuid(t) for t in tape.trades(ms(start), ms(end)))


def param(page: Page[Any], name: str) -> int:
    """A time the page's request sent (epoch ms)."""
    value = page.params[name]
    assert isinstance(value, int)
    return value


def trade_ids(pages: Iterator[Page[PublicTrade]]) -> list[str]:
    return [t.trade_id for page in pages for t in page.records]


# --- the walk, capped -------------------------------------------------------------------------


def crowded_hour(world: World) -> tuple[datetime, datetime]:
    """An hour of BTC-EUR around a millisecond with three or more trades (more than a page of
    two), from a trade's millisecond to a later trade's."""
    tape = world.market("bitvavo", "BTC-EUR")
    trades = tape.trades(NOW_MS - 6 * 3_600_000, NOW_MS)
    per_ms = Counter(t.ts_ms for t in trades)
    crowded = next(stamp for stamp, n in sorted(per_ms.items()) if n >= 3)
    index = next(i for i, t in enumerate(trades) if t.ts_ms == crowded)
    return at(trades[index - 90].ts_ms), at(trades[index + 90].ts_ms)


@pytest.mark.parametrize("reading", READINGS)
def test_capped_windows_short_or_empty_go_on_to_the_walks_start(
    reading: str, serve: Callable[[Variants], Sandbox], world: World
) -> None:
    sandbox = serve(READINGS[reading])
    start, stop = crowded_hour(world)
    span = timedelta(seconds=20)  # a few trades a minute: many windows short, many empty
    log: list[Recorded] = []
    pages = recording_walk(client(sandbox), "BTC-EUR", start, stop, span=span, limit=2, log=log)
    got = trade_ids(pages)
    assert len(got) == len(set(got))
    assert sorted(got) == truth(world, "BTC-EUR", start, stop)
    assert all(r.end - r.start <= span / timedelta(milliseconds=1) for r in log)
    by_time = [r for r in log if r.id_to is None]
    capped = [r for r in by_time[:-1] if r.start >= ms(start)]  # (the last one ends the walk)
    assert any(r.received == 0 for r in capped), "no empty window the walk went on below"
    assert any(0 < r.received < 2 for r in capped), "no short window the walk went on below"
    assert any(r.received == 2 for r in capped), "no full page in a capped window"
    assert any(r.id_to is not None for r in log), "the crowded path was not walked"
    # the last window starts 1 ms before the walk's start: its rows at the start either way
    assert by_time[-1].start == ms(start) - 1 and by_time[-1].received < 2
    assert served(sandbox)["responses"].get("400", 0) == 0


@pytest.mark.parametrize("reading", READINGS)
def test_trades_at_exactly_a_windows_start_are_read(
    reading: str, serve: Callable[[Variants], Sandbox], world: World
) -> None:
    tape = world.market("bitvavo", "BTC-EUR")
    trades = tape.trades(NOW_MS - 6 * 3_600_000, NOW_MS)
    per_ms = Counter(t.ts_ms for t in trades)
    edge = next(stamp for stamp, n in sorted(per_ms.items()) if n >= 2)  # two trades at it
    span = timedelta(minutes=10)
    start, stop = at(edge) - timedelta(hours=1), at(edge) + span  # a window starts at `edge`
    sandbox = serve(READINGS[reading])
    log: list[Recorded] = []
    got = trade_ids(
        recording_walk(client(sandbox), "BTC-EUR", start, stop, span=span, limit=1000, log=log)
    )
    assert log[0].start == edge and log[0].received < 1000  # the window at `edge`, short
    assert log[1].end == edge + 1 and log[1].start == edge + 1 - 600_000  # on, `edge` again
    assert sorted(got) == truth(world, "BTC-EUR", start, stop)
    assert len(got) == len(set(got))
    at_edge = {tape.trade_uuid(t) for t in trades if t.ts_ms == edge}
    assert len(at_edge) >= 2 and at_edge <= set(got)


@pytest.mark.parametrize("reading", READINGS)
def test_a_range_of_days_is_one_walk_of_24h_requests(
    reading: str, serve: Callable[[Variants], Sandbox], world: World
) -> None:
    sandbox = serve(READINGS[reading])
    stop = NOW.replace(hour=0, minute=0)
    start = stop - timedelta(days=3, hours=5)
    pages = list(client(sandbox).public_trades_range("BTC-EUR", start, stop))
    got = trade_ids(iter(pages))
    expected = truth(world, "BTC-EUR", start, stop)
    assert len(got) == len(set(got)) and sorted(got) == expected
    spans = [param(p, "end") - param(p, "start") for p in pages]
    assert max(spans) == MAX_TRADE_SPAN / timedelta(milliseconds=1)  # capped, never over
    assert served(sandbox)["responses"].get("400", 0) == 0  # no 205: none over 24 h
    # pages run on across the days: full but for the last
    assert len(pages) == math.ceil(len(expected) / TRADE_LIMIT)
    assert served(sandbox)["endpoints"]["{market}/trades"]["requests"] == len(pages)


def test_a_long_walk_holds_the_keys_of_a_page_or_two_only(
    serve: Callable[[Variants], Sandbox], world: World
) -> None:
    """The walk forgets the keys (and millisecond counts) of pages later than any request it
    can still send: a walk of days holds what a walk of a day did, not every key it read."""
    sandbox = serve(Variants())
    bitvavo = client(sandbox)
    stop = NOW.replace(hour=0, minute=0)
    start = stop - timedelta(days=3)
    run: Backwards[PublicTrade] = Backwards(
        start,
        stop,
        key=lambda t: t.trade_id,
        moment=lambda t: t.traded_at,
        limit=TRADE_LIMIT,
        trade_id=lambda t: t.trade_id,
        exchange="bitvavo",
        endpoint="public_trades",
        span=MAX_TRADE_SPAN,
    )
    got: list[str] = []
    held: list[int] = []
    request = run.init_request()
    while request is not None:
        page = bitvavo.public_trades(
            "BTC-EUR", start=request.start, end=request.end, trade_id_to=request.trade_id_to
        )
        yielded = run.update_state(page)
        assert yielded is not None
        got += [t.trade_id for t in yielded.records]
        held.append(max(len(run._seen), sum(len(page[2]) for page in run._recent)))
        request = run.next_request()
    assert sorted(got) == truth(world, "BTC-EUR", start, stop)
    assert len(got) > 8 * TRADE_LIMIT and len(held) > 8
    assert max(held) <= 2 * TRADE_LIMIT


def test_a_range_before_and_into_the_tapes_start_reads_its_empty_days_through(
    serve: Callable[[Variants], Sandbox], world: World
) -> None:
    sandbox = serve(Variants())
    start, stop = GENESIS - timedelta(days=3), GENESIS + timedelta(days=1, hours=7)
    pages = list(client(sandbox).public_trades_range("ADA-EUR", start, stop))
    got = trade_ids(iter(pages))
    assert sorted(got) == truth(world, "ADA-EUR", start, stop) and got
    assert min(param(p, "start") for p in pages) == ms(start) - 1  # on to the walk's start
    assert sum(not p.records for p in pages) >= 3  # the days before the tape, empty


def test_a_span_of_a_millisecond_or_less_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed 1 ms"):
        Backwards(
            NOW - timedelta(hours=1),
            NOW,
            key=lambda row: row,
            moment=lambda row: row,
            limit=2,
            trade_id=None,
            exchange="bitvavo",
            endpoint="public_trades",
            span=timedelta(milliseconds=1),
        )


def test_a_page_by_trade_id_to_tells_nothing_of_what_is_read() -> None:
    trade = PublicTrade(
        exchange="bitvavo",
        market="BTC-EUR",
        trade_id="a",
        traded_at=NOW,
        price=Decimal(1),
        amount=Decimal(1),
        side="buy",
    )
    by_time = Page([trade], "public_trades", {"end": ms(NOW) + 1}, NOW)
    by_id = Page([trade], "public_trades", {"end": ms(NOW) + 1, "tradeIdTo": "b"}, NOW)
    assert trades_read_after(by_time) == NOW
    assert trades_read_after(by_id) is None
    assert trades_read_after(Page([], "public_trades", {}, NOW)) is None


# --- the sync -----------------------------------------------------------------------------------


def day_by_day(
    sandbox: Sandbox, directory: Path, market: str, since: datetime, now: datetime
) -> tuple[Lake, int]:
    """The lake the sync landed before runs were walked whole: each day's missing range walked
    alone (`public_trades_window`) and landed; and the requests that took."""
    lake = Lake(directory)
    bitvavo = client(sandbox)
    partition = {"exchange": "bitvavo", "market": market}
    span = Window(since, final_cutoff(now, "1m", SETTLE))
    for plan in plan_chunks(span, "day", []):
        pages = bitvavo.public_trades_window(market, plan.missing.start, plan.missing.end)
        land_plan(lake, PUBLIC_TRADES, plan, pages, partition)
    return lake, bitvavo.http.stats.usage().requests


def lake_days(lake: Lake, market: str) -> dict[str, pl.DataFrame]:
    """Each landed file of `market` by stem, without its fetch times, in the order it holds."""
    dataset = PUBLIC_TRADES.dataset
    partition = {"exchange": "bitvavo", "market": market}
    files = partition_files(lake, dataset, partition)
    return {
        stem: frame.drop("fetched_at")
        for stem, frame in zip(files, read_files(dataset, files.values(), partition), strict=True)
    }


def assert_same_files(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert sorted(got) == sorted(want)
    for stem, frame in want.items():
        assert got[stem].schema == frame.schema, stem
        assert got[stem].rows() == frame.rows(), stem  # value by value, Decimals as Decimals


def synced(
    sandbox: Sandbox, data: Path, market: str, since: datetime, now: datetime
) -> tuple[StreamResult, dict[str, pl.DataFrame]]:
    """A public-trades sync of `market` from `since` at `now` into `data`: its result and the
    files it landed (`lake_days`)."""
    rt = sandbox_runtime(sandbox, data, now=now)
    try:
        return sync_public_trades(rt, "bitvavo", market, since=since), lake_days(rt.lake, market)
    finally:
        rt.close()


def test_a_month_lands_the_day_by_day_files_in_fewer_requests(
    serve: Callable[[Variants], Sandbox], world: World, tmp_path: Path
) -> None:
    since = NOW - timedelta(days=30)
    sandbox = serve(Variants())
    result, got = synced(sandbox, tmp_path / "sync", "BTC-EUR", since, NOW)
    reference, day_requests = day_by_day(sandbox, tmp_path / "ref", "BTC-EUR", since, NOW)
    want = lake_days(reference, "BTC-EUR")
    assert len(want) == 31
    assert_same_files(got, want)
    trades = sum(frame.height for frame in want.values())
    assert trades == len(truth(world, "BTC-EUR", since, final_cutoff(NOW, "1m", SETTLE)))
    pages = math.ceil(trades / TRADE_LIMIT)
    print(f"{trades} trades: {result.requests} requests, day by day {day_requests}")
    # the oldest day walked alone ends on a short page; the run after it once more
    assert result.requests <= pages + 2
    assert result.requests < day_requests
    assert result.windows == 31


SPARSE_DAY = datetime(2024, 2, 29, tzinfo=UTC)  # 932 trades of ADA-EUR: under a page
SPARSE = {
    # the days before the tape (empty), its first day (942 trades) and the days after it
    "tape start": (GENESIS - timedelta(days=3, hours=2), GENESIS + timedelta(days=4, hours=9)),
    # a run whose newest day is read by one short 24 h request, its older days after it
    "sparse day": (SPARSE_DAY - timedelta(days=2), SPARSE_DAY + timedelta(days=1, minutes=1)),
}


@pytest.mark.parametrize("case", SPARSE)
@pytest.mark.parametrize("reading", READINGS)
def test_sparse_and_empty_days_land_as_day_by_day(
    reading: str, case: str, serve: Callable[[Variants], Sandbox], world: World, tmp_path: Path
) -> None:
    since, now = SPARSE[case]
    sandbox = serve(READINGS[reading])
    result, got = synced(sandbox, tmp_path / "sync", "ADA-EUR", since, now)
    reference, day_requests = day_by_day(sandbox, tmp_path / "ref", "ADA-EUR", since, now)
    want = lake_days(reference, "ADA-EUR")
    heights = [frame.height for frame in want.values()]
    if case == "tape start":
        assert len(heights) == 9 and heights[:4] == [0, 0, 0, 0] and 0 < heights[4] < TRADE_LIMIT
    else:
        assert len(heights) == 3 and 0 < heights[-1] < TRADE_LIMIT and min(heights[:2]) > 0
    assert_same_files(got, want)
    assert result.requests <= day_requests


def breaking_walk(pages: int, walks: list[str]) -> Callable[..., Iterator[Page[PublicTrade]]]:
    """`BitvavoClient.public_trades_range` that fails after `pages` pages (of all its walks, the
    last one midway); each walk's range is noted in `walks`."""
    original = BitvavoClient.public_trades_range
    left = [pages]

    def walk(
        bitvavo: BitvavoClient, market: str, start: datetime, end: datetime
    ) -> Iterator[Page[PublicTrade]]:
        walks.append(Window(start, end).stem)
        for page in original(bitvavo, market, start, end):
            if left[0] == 0:
                raise ConnectionError("the network went away midway through a walk")
            left[0] -= 1
            yield page

    return walk


def test_a_sync_broken_midway_through_a_run_is_resumed_by_the_next(
    serve: Callable[[Variants], Sandbox], world: World, tmp_path: Path, monkeypatch: Any
) -> None:
    since = (NOW - timedelta(days=8)).replace(hour=0, minute=0)
    sandbox = serve(Variants())
    whole = sandbox_runtime(sandbox, tmp_path / "whole", now=NOW)
    try:
        sync_public_trades(whole, "bitvavo", "BTC-EUR", since=since)
        want = lake_days(whole.lake, "BTC-EUR")
    finally:
        whole.close()
    stems = sorted(want)
    assert len(stems) == 9
    pages_of = [math.ceil(want[stem].height / TRADE_LIMIT) for stem in stems]

    rt = sandbox_runtime(sandbox, tmp_path / "broken", now=NOW)
    walks: list[str] = []
    # the oldest day's pages, then the run's pages that read its newest two days and a bit more
    monkeypatch.setattr(
        BitvavoClient, "public_trades_range", breaking_walk(pages_of[0] + sum(pages_of[-2:]), walks)
    )
    try:
        with pytest.raises(ConnectionError, match="midway"):
            sync_public_trades(rt, "bitvavo", "BTC-EUR", since=since)
        monkeypatch.undo()
        assert walks == [stems[0], f"{stems[1][:15]}-{stems[-1][16:]}"]  # oldest, then the run
        broken = lake_days(rt.lake, "BTC-EUR")
        assert sorted(broken) == [stems[0], stems[-2], stems[-1]]  # newest days of the run
        assert_same_files(broken, {stem: want[stem] for stem in broken})
        sync_public_trades(rt, "bitvavo", "BTC-EUR", since=None)
        assert_same_files(lake_days(rt.lake, "BTC-EUR"), want)
    finally:
        rt.close()


def plan(day: int, start_hour: int = 0, end_hour: int = 24) -> ChunkPlan:
    chunk = Window(GENESIS + timedelta(days=day), GENESIS + timedelta(days=day + 1))
    missing = Window(
        chunk.start + timedelta(hours=start_hour), chunk.start + timedelta(hours=end_hour)
    )
    return ChunkPlan(chunk, Window(chunk.start, missing.end), missing, ())


def test_the_oldest_plan_is_walked_alone_then_runs_of_joined_ranges() -> None:
    plans = [plan(0, 5), plan(1), plan(2), plan(4), plan(5, 0, 9), plan(6, 3), plan(7)]
    assert walk_order(plans) == [
        [plans[0]],
        [plans[1], plans[2]],
        [plans[3], plans[4]],
        [plans[5], plans[6]],
    ]
    assert walk_order(plans[:1]) == [plans[:1]]
    assert walk_order([]) == []
