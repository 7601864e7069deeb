"""Candles before a pair's listing: neither junk nor a paging error.

What Bitstamp's OHLC returns for an `end` before a pair was listed is unproven (docs/exchanges.md,
tagged open): nothing, the first candles after the listing (the client's walk checks that
`end` was honoured, drops those and ends: `BitstampClient.ohlc_window`), or zero-volume
fillers. No API tells a pair's listing time, so tally reads the stream itself. Bitstamp fills
every interval without trades once a pair is listed; when a sync reads the oldest part of a
Bitstamp stream (nothing older is held):

- a zero-volume candle at the start is a listing's filler when the `QUIET_INTERVALS` intervals
  before it hold no trade either (one more page is read to see): the zero-volume run up to the
  first traded candle is then not stored. A listed pair that had not traded for that long (16 h
  of minutes, 41 days of hours) right where a sync starts would be taken for one not yet listed:
  its quiet stretch would be recorded as before the listing, visibly, never silently dropped;
- otherwise the first candle stored is the stream's start.

When that start lies after the first interval asked for, the range between is recorded in
`gaps` (stream `candles <interval>`) with the reason, and `coverage` shows it. A sync that reads
only fillers (no traded candle yet, nothing held) stores none of them and records the range it
read as before the listing, so that a landed window never hides dropped rows; the sync that
finds the start replaces that record. Bitvavo sends no empty candles, so a late first candle
there is a quiet stretch or the listing, not told apart: nothing is recorded for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from operator import itemgetter

import polars as pl

from pipelines.datasets import GAPS
from pipelines.exchanges.frames import subset, values
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import Candle
from pipelines.flows.gaps import record_gap
from pipelines.flows.plan import Window, floor_time, interval_delta
from pipelines.lake import Lake, reading
from pipelines.lake_store import readable

QUIET_INTERVALS = 1000  # one Bitstamp OHLC page
REASON = (
    "before the pair's listing: the exchange has no candle before {start}"
    " (the first {interval} candle it has)"
)
FILLERS_ONLY = (
    "before the pair's listing, as far as read: the exchange sent only zero-volume {interval}"
    " fillers up to {end}, with no traded candle before them; they are not stored"
)


@dataclass
class ListingWatch:
    """Finds the start of one stream while a sync reads its oldest candles (oldest plan first).

    `traded_before(moment)` says whether the exchange has a traded candle in the
    `QUIET_INTERVALS` intervals before `moment`. `held_first` is the oldest candle already held;
    `covered_from` the start of the oldest landed window (it may hold no candle).
    """

    interval: str
    traded_before: Callable[[datetime], bool]
    held_first: datetime | None
    covered_from: datetime | None = None
    asked_from: datetime | None = None
    start: datetime | None = None  # the stream's first stored candle, once found
    done: bool = False
    fillers: bool = False  # a zero-volume run before the listing is being dropped
    fillers_until: datetime | None = None  # the end of the range read that held only fillers

    def screen(self, missing: Window, pages: Iterable[Page[Candle]]) -> list[Page[Candle]]:
        """`pages` of one plan without the fillers before the listing."""
        pages = list(pages)
        if self.done or (self.held_first is not None and self.held_first < missing.start):
            self.done = True
            return pages
        if self.asked_from is None:
            self.asked_from = min(missing.start, self.covered_from or missing.start)
        opened = [values(page.records, "open_time") for page in pages]
        volumes = (values(page.records, "volume") for page in pages)
        candles = sorted(
            zip(chain.from_iterable(opened), chain.from_iterable(volumes), strict=True),
            key=itemgetter(0),
        )  # (open time, volume)
        if not candles:
            return pages  # nothing here yet: the stream starts later
        if candles[0][1] == 0 and not self.fillers:
            self.fillers = not self.traded_before(candles[0][0])
        if not self.fillers:
            self.start, self.done = candles[0][0], True
            return pages
        traded = [opens for opens, volume in candles if volume > 0]
        first = traded[0] if traded else self.held_first
        if first is not None:
            self.start, self.done = first, True
        else:  # every row is a filler: dropped, and recorded by `gap`
            self.fillers_until = missing.end
        return [
            Page(
                subset(page.records, [first is not None and t >= first for t in times]),
                page.endpoint,
                page.params,
                page.fetched_at,
                page.received,
            )
            for page, times in zip(pages, opened, strict=True)
        ]

    def late_start(self) -> Window | None:
        """The range asked for before the stream's first candle, when there is one."""
        if self.asked_from is None or self.start is None:
            return None
        step = interval_delta(self.interval)
        first_open = floor_time(self.asked_from, step)
        if first_open < self.asked_from:
            first_open += step  # the first candle that opens inside the range asked for
        return Window(self.asked_from, self.start) if self.start > first_open else None

    def gap(self) -> tuple[Window, str] | None:
        """What to record after the sync: the range before the stream's first candle
        (`late_start`), or, with no traded candle found yet, the range whose fillers were
        dropped; with the reason."""
        late = self.late_start()
        if late is not None:
            return late, REASON.format(start=late.end.isoformat(), interval=self.interval)
        if self.start is None and self.asked_from is not None and self.fillers_until is not None:
            reason = FILLERS_ONLY.format(interval=self.interval, end=self.fillers_until.isoformat())
            return Window(self.asked_from, self.fillers_until), reason
        return None


def record_listing(
    lake: Lake,
    exchange: str,
    market: str,
    interval: str,
    gap: Window,
    reason: str,
    *,
    detected_at: datetime,
) -> str:
    """Record that the stream `candles <interval>` has no candle in `gap` (its one gap: a newer
    record replaces the older, keeping the older's start when it began earlier)."""
    stem = f"candles-{market}-{interval}"
    start = gap.start
    path = lake.partition_dir(GAPS, {"exchange": exchange}) / f"{stem}.parquet"
    if path.exists():  # what an earlier sync found empty before this end still is
        with reading(path):
            held = pl.read_parquet(readable(path)).filter(pl.col("gap_end") <= gap.end)
        if held.height:
            held_start = held["gap_start"].min()
            assert isinstance(held_start, datetime)
            start = min(start, held_start)
    return record_gap(
        lake,
        exchange=exchange,
        stream=f"candles {interval}",
        market=market,
        gap_start=start,
        gap_end=gap.end,
        reason=reason,
        detected_at=detected_at,
        stem=stem,
        replace=True,
    )
