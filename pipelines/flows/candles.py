"""The candles stream: closed OHLC candles of one market and interval, one file per chunk.

    sync_candles(rt, "bitvavo", "BTC-EUR", "1m", Window(start, end))

The span is clipped to `final_cutoff(now, interval, 60 s)` (the open candle and one that closed
less than a minute ago are never read) and cut into calendar chunks (`chunk_unit`: months of
sub-hour candles, years of the rest). For each chunk `plan_chunks` says what is missing given
the partition's landed stems; the missing range is fetched (Bitstamp walking back by `end`,
Bitvavo end-anchored), combined with the rows of the files it extends, deduplicated (last wins:
Bitstamp sometimes serves two candles for one open time) and landed as one file whose stem is the
range it covers, e.g. `20240301T000000-20240330T235900`. Only one chunk is held in memory at a
time. When the next chunk's missing range follows on, a chunk's walk reaches into it to a whole
number of pages and hands it the candles past its own end: a boundary costs no half-empty page.

Candles are final only when settled (`settle.py`): each file notes when it was read, and a sync
whose clock has moved on reads again from the oldest candle that was read less than
`candles_reread_minutes` after its close, whatever span it was asked for (as long as the span
reaches that candle), and lands what changed. Where a Bitstamp stream starts (a pair's listing,
`listing.py`), fillers before it are not stored and the range before it is recorded in `gaps`.

Hours without a Bitvavo candle are hours without trades, not gaps; Bitstamp fills them with
zero-volume candles, which are kept as sent.

A chunk file moved to the quarantine (unreadable) is a hole: its window is planned again first,
whatever span the sync asked for (`pipelines.quarantine.holes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from pipelines import progress
from pipelines.datasets import CANDLES
from pipelines.exchanges.frames import split_at, values
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import Candle
from pipelines.exchanges.registry import get
from pipelines.flows.chunks import (
    SETTLE,
    done_share,
    drop_superseded,
    held_range,
    land_plan,
    landed_windows,
    partition_files,
    sweep_partition,
)
from pipelines.flows.listing import QUIET_INTERVALS, ListingWatch, record_listing
from pipelines.flows.plan import (
    ChunkPlan,
    Window,
    chunk_unit,
    final_cutoff,
    interval_delta,
    plan_chunks,
)
from pipelines.flows.runtime import Runtime, StreamResult, finish
from pipelines.flows.settle import read_note, unsettled_from
from pipelines.http import HttpClient
from pipelines.quarantine import holes

CandleWalk = Callable[[str, str, Window], Iterator[Page[Candle]]]
"""`(market, interval, window) → pages` of every candle with open time in the window."""


def sync_candles(
    rt: Runtime, exchange: str, market: str, interval: str, span: Window
) -> StreamResult:
    """Land every closed candle of `market`/`interval` with open time in `span` not yet landed,
    and read again the landed candles that had not settled when they were read."""
    stream = f"candles {exchange} {market} {interval}"
    progress.stream_started(stream, exchange)
    http, walk = _walker(rt, exchange)
    partition = {"exchange": exchange, "market": market, "interval": interval}
    lake, dataset = rt.lake, CANDLES.dataset
    mark = http.stats.usage()
    sweep_partition(lake, dataset, partition)
    drop_superseded(lake, dataset, partition, chunk_unit(interval))

    now = rt.now()
    cutoff = final_cutoff(now, interval, SETTLE)
    reread = timedelta(minutes=rt.settings.candles_reread_minutes)
    stale = unsettled_from(lake, dataset, partition, interval, reread=reread, now=now)
    window = _window(span, cutoff, stale)
    if window is None or stale is None or stale >= window.end:
        stale = None
    # quarantined windows first (oldest first, as the listing watch needs), then the span
    spans: list[tuple[Window, datetime | None]] = [
        (hole, None) for hole in _hole_windows(rt, partition, cutoff)
    ]
    if window is not None:
        spans.append((window, stale))
    watch = _watch(rt, exchange, market, interval, walk) if spans else None

    fetched = landed = 0
    page_span = interval_delta(interval) * get(exchange).ingestion.candles.page_limit
    for planned, stale_from in spans:
        landed_stems = partition_files(lake, dataset, partition)
        plans = plan_chunks(planned, chunk_unit(interval), landed_stems, stale_from=stale_from)
        ahead: list[Page[Candle]] = []  # the next plan's oldest candles, fetched with this one
        fetched_to: datetime | None = None  # where the fetch for the plan before ended
        followers: list[ChunkPlan | None] = [*plans[1:], None] if plans else []
        for plan, following in zip(plans, followers, strict=True):
            fetch = _fetch_window(plan, following, fetched_to, page_span)
            newest_first = list(walk(market, interval, fetch)) if fetch is not None else []
            # Oldest page first: within a page Bitstamp's later duplicate wins (`Lake.land`).
            pages: Iterable[Page[Candle]]
            pages, ahead = _split([*ahead, *reversed(newest_first)], plan.missing.end)
            # (read up to there, with or without candles: the next plan starts there)
            fetched_to = fetch.end if fetch is not None and fetch.end > plan.missing.end else None
            if watch is not None:
                pages = watch.screen(plan.missing, pages)
            rows = land_plan(lake, CANDLES, plan, pages, partition, metadata=read_note(now))
            fetched += rows
            landed += 1
            # a span with nothing to plan (`window` None) still reads its holes again
            share = done_share(window or planned, plan.missing.end)
            progress.landed(dataset.name, rows, done=share)

    gaps: tuple[str, ...] = ()
    found = watch.gap() if watch is not None else None
    if found is not None:
        gaps = (record_listing(lake, exchange, market, interval, *found, detected_at=now),)
    first, last = held_range(lake, dataset, "open_time", partition)
    used = http.stats.usage() - mark
    landed_rows = {dataset.name: fetched}
    return finish(
        stream, exchange, used, rows=landed_rows, windows=landed, gaps=gaps, first=first, last=last
    )


def _fetch_window(
    plan: ChunkPlan, following: ChunkPlan | None, fetched_to: datetime | None, page_span: timedelta
) -> Window | None:
    """What to fetch for `plan` (None: nothing): its missing range from where the fetch for the
    plan before ended (`fetched_to`); when the next plan's missing range follows on, stretched
    into it to a whole number of pages. A walk goes newest page first, so only its oldest page
    can be cut short: the chunks' boundaries then cost no half-empty page."""
    start = plan.missing.start if fetched_to is None else max(plan.missing.start, fetched_to)
    end = plan.missing.end
    if start >= end:
        return None
    if following is not None and following.missing.start == end:
        whole = -(-(end - start) // page_span) * page_span  # rounded up to whole pages
        end = min(start + whole, following.missing.end)
    return Window(start, end)


def _split(
    pages: Sequence[Page[Candle]], moment: datetime
) -> tuple[list[Page[Candle]], list[Page[Candle]]]:
    """The pages' candles opened before `moment`, and the others, page by page (empty parts
    left out)."""
    before: list[Page[Candle]] = []
    after: list[Page[Candle]] = []
    for page in pages:
        parts = split_at(page.records, "open_time", moment)
        for part, into in zip(parts, (before, after), strict=True):
            if part:
                into.append(Page(part, page.endpoint, page.params, page.fetched_at, page.received))
    return before, after


def _hole_windows(rt: Runtime, partition: dict[str, str], cutoff: datetime) -> list[Window]:
    """The windows of the partition's quarantined files, up to the cutoff, oldest first."""
    found = holes(rt.lake, CANDLES.dataset, **partition)
    windows = [Window(h.window[0], min(h.window[1], cutoff)) for h in found if h.window]
    return sorted(w for w in windows if w.start < w.end)


def _window(span: Window, cutoff: datetime, stale: datetime | None) -> Window | None:
    """What this sync plans: the span up to the cutoff, and from the oldest unsettled candle to
    the cutoff when the span reaches it (a span that ends before it leaves it to a later one:
    backfill tasks of earlier years run beside the task that holds the head)."""
    end = min(span.end, cutoff)
    if stale is not None and stale < end:
        return Window(min(span.start, stale), cutoff)
    return Window(span.start, end) if span.start < end else None


def _watch(
    rt: Runtime, exchange: str, market: str, interval: str, walk: CandleWalk
) -> ListingWatch | None:
    """A listing watch for an exchange that fills empty intervals (see `listing.py`)."""
    if not get(exchange).ingestion.candles.fills_empty_intervals:
        return None
    partition = {"exchange": exchange, "market": market, "interval": interval}
    held_first, _ = held_range(rt.lake, CANDLES.dataset, "open_time", partition)
    windows = landed_windows(partition_files(rt.lake, CANDLES.dataset, partition))
    step = interval_delta(interval)

    def traded_before(moment: datetime) -> bool:
        before = Window(moment - QUIET_INTERVALS * step, moment)
        pages = walk(market, interval, before)
        return any(volume > 0 for page in pages for volume in values(page.records, "volume"))

    return ListingWatch(
        interval,
        traded_before,
        held_first,
        covered_from=windows[0].start if windows else None,
    )


def _walker(rt: Runtime, exchange: str) -> tuple[HttpClient, CandleWalk]:
    """The exchange client's HTTP layer (for its stats) and its candle walk."""
    candles = get(exchange).ingestion.candles
    client = rt.client(exchange)

    def walk(market: str, interval: str, window: Window) -> Iterator[Page[Candle]]:
        return candles.walk(client, market, interval, window.start, window.end)

    return client.http, walk
