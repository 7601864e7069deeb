"""The public-trades stream of one market: every trade, once, in one file per UTC day.

    sync_public_trades(rt, "bitvavo", "BTC-EUR", since=datetime(2024, 1, 1, tzinfo=UTC))
    sync_public_trades(rt, "bitstamp", "BTC-EUR", since=None)

How an exchange serves public trades is declared by its adapter
(`Exchange.ingestion.public_trades`): a full history walked by window (`HistoryTrades`) or a
rolling window polled (`RollingTrades`).

**Bitvavo** has the full history: the span from `since` (else from the earliest landed window,
else the last 24 h) to the last whole minute at least 60 s old is cut into UTC days and planned
with `plan_chunks` like candles. The oldest day's missing range is walked and landed first,
alone; then each run of days whose missing ranges join is walked as one backwards walk by the
client (`bitvavo_walk`: requests of at most 24 h, pages running on across days, right whether
`end` is inclusive or exclusive, deduplicated on the trade id), its rows split into their days,
and a day lands as soon as the walk has read every trade of it (`HistoryTrades.read_after`),
newest first. Landing the oldest day first keeps a broken backfill resumable: a sync with
`since=None` starts at the earliest landed window and plans every day after it still missing.
A day in progress has a stem ending at the last final minute; the next sync fetches only what
follows. A day file moved to the quarantine (unreadable) is planned again first, whatever
`since` says (`pipelines.quarantine.holes`).

**Bitstamp** serves only a rolling window (`time=minute|hour|day`, the last 60 s / 1 h / 24 h);
`since` is ignored because history cannot be backfilled. Each sync reads the shortest window
that reaches back to the stream's *reach* — the later of the last landed trade and the end of
the landed coverage (stems) — with a 15 s margin, or `day` when nothing is landed or the reach
is older. Rows are merged into per-UTC-day files (deduplicated on `tid`); a day file's stem is
the envelope `[first covered moment, last covered moment)` (whole seconds) of the polls that
wrote it within that day, e.g. `20240330T000000-20240331T000000` for a whole day, so coverage
reads the same way as for the other streams. When even the window read starts after the reach
(reach < now − window), trades may have been lost: a row is recorded in `gaps` (gap_start = the
last landed trade, or the coverage end when no trade is landed; gap_end = the oldest trade
returned, or the window start when none came back) *before* the trades land, so that a crash
cannot hide it. Coverage is the stems minus the recorded gaps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import polars as pl

from pipelines import progress
from pipelines.datasets import PUBLIC_TRADES
from pipelines.exchanges.client import ExchangeClient
from pipelines.exchanges.frames import latest, split_at, values
from pipelines.exchanges.ingestion import HistoryTrades, RollingTrades
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import PublicTrade
from pipelines.exchanges.registry import get
from pipelines.flows.chunks import (
    SETTLE,
    combine,
    drop_replaced,
    drop_superseded,
    held_range,
    land_plan,
    land_window,
    landed_windows,
    partition_files,
    read_files,
    sweep_partition,
)
from pipelines.flows.gaps import record_gap as record_any_gap
from pipelines.flows.plan import ChunkPlan, Window, chunk_of, final_cutoff, plan_chunks
from pipelines.flows.runtime import Runtime, StreamResult, finish
from pipelines.lake import Lake
from pipelines.lake_store import LakeFile
from pipelines.quarantine import holes

STREAM = "public_trades"
REACH_MARGIN = timedelta(seconds=15)
"""A Bitstamp window is chosen only if it reaches this far beyond the stream's reach (request
latency, clock differences)."""


def sync_public_trades(
    rt: Runtime, exchange: str, market: str, *, since: datetime | None
) -> StreamResult:
    """Land the public trades of `market` not yet landed (see the module docstring)."""
    stream = f"{STREAM} {exchange} {market}"
    progress.stream_started(stream, exchange)
    served = get(exchange).ingestion.public_trades
    client = rt.client(exchange)
    lake, dataset = rt.lake, PUBLIC_TRADES.dataset
    partition = {"exchange": exchange, "market": market}
    mark = client.http.stats.usage()
    sweep_partition(lake, dataset, partition)
    drop_superseded(lake, dataset, partition, "day")
    if isinstance(served, HistoryTrades):
        rows, windows, gaps = _sync_history(rt, client, served, market, partition, since)
    else:
        rows, windows, gaps = _sync_rolling(rt, exchange, client, served, market, partition)
    used = client.http.stats.usage() - mark
    first, last = held_range(lake, dataset, "traded_at", partition)
    landed = {dataset.name: rows}
    return finish(
        stream, exchange, used, rows=landed, windows=windows, gaps=gaps, first=first, last=last
    )


_Landed = tuple[int, int, tuple[str, ...]]
"""What a sync landed: rows, files (windows) and gaps."""


# -- full history (Bitvavo): day chunks ----------------------------------------------------------


def _sync_history(
    rt: Runtime,
    client: ExchangeClient,
    served: HistoryTrades[ExchangeClient],
    market: str,
    partition: Mapping[str, str],
    since: datetime | None,
) -> _Landed:
    lake, dataset = rt.lake, PUBLIC_TRADES.dataset
    end = final_cutoff(rt.now(), "1m", SETTLE)
    files = partition_files(lake, dataset, partition)
    windows = landed_windows(files)
    if since is not None:
        start = since
    elif windows:
        start = windows[0].start
    else:
        start = end - served.first_span
    spans = sorted(  # quarantined days first, then the span
        Window(hole.window[0], min(hole.window[1], end))
        for hole in holes(lake, dataset, **partition)
        if hole.window and hole.window[0] < end
    )
    if start < end:
        spans.append(Window(start, end))
    fetched = landed = 0
    for span in spans:
        plans = plan_chunks(span, "day", partition_files(lake, dataset, partition))
        missing = sum((plan.missing.end - plan.missing.start for plan in plans), timedelta())
        walked = timedelta()
        for run in walk_order(plans):
            for plan, rows in _land_run(lake, client, served, market, partition, run):
                fetched += rows
                landed += 1
                walked += plan.missing.end - plan.missing.start
                progress.landed(dataset.name, rows, done=walked / missing)
    return fetched, landed, ()


def walk_order(plans: Sequence[ChunkPlan]) -> list[list[ChunkPlan]]:
    """The walks that carry out `plans` (oldest first), in order: the oldest plan alone, then
    each run of plans whose missing ranges join end to start.

    A walk lands its newest day first. The oldest day lands first so that a sync that stops
    midway leaves it landed: a sync with `since=None` starts at the earliest landed window, and
    so plans again every day after it that a broken walk left missing.
    """
    walks: list[list[ChunkPlan]] = []
    for plan in plans:
        if len(walks) > 1 and walks[-1][-1].missing.end == plan.missing.start:
            walks[-1].append(plan)
        else:
            walks.append([plan])
    return walks


def _land_run(
    lake: Lake,
    client: ExchangeClient,
    served: HistoryTrades[ExchangeClient],
    market: str,
    partition: Mapping[str, str],
    run: Sequence[ChunkPlan],
) -> Iterator[tuple[ChunkPlan, int]]:
    """Walk the joined missing ranges of `run` (oldest first) as one backwards walk, and land
    each plan, newest first, as soon as the walk has read every trade of it; yields each plan
    landed and its rows. Only the pages of plans not yet landed are held."""
    waiting: list[tuple[ChunkPlan, list[Page[PublicTrade]]]] = [
        (plan, []) for plan in reversed(run)
    ]
    floor = run[-1].missing.end  # every trade from here on is landed
    for page in served.walk(client, market, run[0].missing.start, floor):
        rest = page.records
        newest = latest(rest, "traded_at")
        if newest is not None and newest >= floor:
            raise RuntimeError(
                f"public trades {market}: the walk yielded a trade at {newest.isoformat()}, "
                f"of a day landed already (from {floor.isoformat()})"
            )
        for plan, pages in waiting:
            if not len(rest):
                break
            rest, mine = split_at(rest, "traded_at", plan.missing.start)
            if len(mine):
                pages.append(Page(mine, page.endpoint, page.params, page.fetched_at))
        read = served.read_after(page)
        while waiting and read is not None and read < waiting[0][0].missing.start:
            plan, pages = waiting.pop(0)
            yield plan, land_plan(lake, PUBLIC_TRADES, plan, pages, partition)
            floor = plan.missing.start
    for plan, pages in waiting:
        yield plan, land_plan(lake, PUBLIC_TRADES, plan, pages, partition)


# -- rolling window (Bitstamp): merged into day files, gaps recorded -----------------------------


def _sync_rolling(
    rt: Runtime,
    exchange: str,
    client: ExchangeClient,
    served: RollingTrades[ExchangeClient],
    market: str,
    partition: Mapping[str, str],
) -> _Landed:
    lake, dataset = rt.lake, PUBLIC_TRADES.dataset
    now = rt.now()
    files = partition_files(lake, dataset, partition)
    windows = landed_windows(files)
    _, last_trade = held_range(lake, dataset, "traded_at", partition)
    reach = max(
        [moment for moment in (last_trade, windows[-1].end if windows else None) if moment],
        default=None,
    )
    window = choose_window(now, reach, served.windows)
    page = served.poll(client, market, window)
    window_start = now - timedelta(seconds=served.windows[window])

    gaps: tuple[str, ...] = ()
    if reach is not None and reach < window_start:
        oldest = min(values(page.records, "traded_at"), default=window_start)
        gap_start = last_trade if last_trade is not None else reach
        gaps = (
            record_gap(lake, market, window, gap_start, oldest, detected_at=now, exchange=exchange),
        )

    covered = Window(_ceil_second(window_start), _floor_second(now))
    fresh = PUBLIC_TRADES.frame(page.records, fetched_at=page.fetched_at)
    rows = landed = 0
    for day in _days(covered, values(page.records, "traded_at")):
        new, wrote = _merge_day(lake, day, covered, fresh, files, partition)
        rows += new
        landed += wrote
        progress.landed(dataset.name, new)
    return rows, landed, gaps


def choose_window(now: datetime, reach: datetime | None, windows: Mapping[str, int]) -> str:
    """The shortest rolling window that reaches back to `reach` (with a margin), else the
    longest ("day")."""
    if reach is not None:
        for name, seconds in windows.items():
            if reach >= now - timedelta(seconds=seconds) + REACH_MARGIN:
                return name
    return max(windows, key=lambda name: windows[name])


def record_gap(
    lake: Lake,
    market: str,
    window: str,
    gap_start: datetime,
    gap_end: datetime,
    *,
    detected_at: datetime,
    exchange: str,
) -> str:
    """Upsert one public-trades gap of `exchange`'s rolling window (this stream's own file: no
    concurrent writer)."""
    return record_any_gap(
        lake,
        exchange=exchange,
        stream=STREAM,
        market=market,
        gap_start=gap_start,
        gap_end=gap_end,
        reason=f"{exchange} rolling window ({window}) no longer reaches the last landed trade",
        detected_at=detected_at,
    )


def _days(covered: Window, traded_at: Sequence[datetime]) -> list[Window]:
    """The UTC days the poll covered or returned trades (`traded_at`) in, oldest first."""
    days = {chunk_of(covered.start, "day")}
    if covered.end > covered.start:
        days.add(chunk_of(covered.end - timedelta(microseconds=1), "day"))
    days.update(chunk_of(moment, "day") for moment in traded_at)
    return sorted(days)


def _merge_day(
    lake: Lake,
    day: Window,
    covered: Window,
    fresh: pl.DataFrame,
    files: Mapping[str, LakeFile],
    partition: Mapping[str, str],
) -> tuple[int, int]:
    """Merge the poll's trades of `day` into the day's file; returns (new rows, files landed)."""
    dataset = PUBLIC_TRADES.dataset
    mine = {
        stem: path
        for stem, path in files.items()
        if (w := Window.from_stem(stem)) is not None and chunk_of(w.start, "day") == day
    }
    todays = fresh.filter((pl.col("traded_at") >= day.start) & (pl.col("traded_at") < day.end))
    extent = [w for w in map(Window.from_stem, mine) if w is not None]
    if covered.start < day.end and covered.end > day.start:
        extent.append(Window(max(covered.start, day.start), min(covered.end, day.end)))
    if todays.height:
        first, last = todays["traded_at"].min(), todays["traded_at"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        extent.append(Window(_floor_second(first), min(_ceil_second(last), day.end)))
    target = Window(min(w.start for w in extent), max(w.end for w in extent))

    old = read_files(dataset, mine.values(), partition)
    known = set().union(*(set(frame["trade_id"]) for frame in old))
    new = len(set(todays["trade_id"]) - known)
    if new == 0 and set(mine) == {target.stem}:
        return 0, 0
    land_window(
        lake, dataset, combine(dataset, old, [todays]), stem=target.stem, partition=partition
    )
    drop_replaced(mine, mine, keep=target.stem)
    return new, 1


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ceil_second(moment: datetime) -> datetime:
    floored = moment.replace(microsecond=0)
    return floored if floored == moment else floored + timedelta(seconds=1)
