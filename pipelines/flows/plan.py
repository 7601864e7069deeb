"""Window planning: which time ranges a stream still needs, read from the lake's own file names.

A time-windowed stream (candles, Bitvavo public trades) is stored as one file per *chunk* (a
calendar month or year for candles, a day for trades). A file's stem is the exact range it
covers, `20240101T000000-20240201T000000`, so the lake itself says what has landed: no state
store can drift from the data. A chunk still in progress has a stem ending at the last final
moment; the next sync fetches only what follows and rewrites the chunk's file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipelines.exchanges.values import INTERVAL_SECONDS

_STAMP = "%Y%m%dT%H%M%S"
_STEM = re.compile(r"^(\d{8}T\d{6})-(\d{8}T\d{6})$")


@dataclass(frozen=True, order=True)
class Window:
    """A half-open UTC time range [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("windows are UTC-aware")
        if self.end < self.start:
            raise ValueError(f"window ends before it starts: {self.start} → {self.end}")

    @property
    def stem(self) -> str:
        return f"{self.start.strftime(_STAMP)}-{self.end.strftime(_STAMP)}"

    @classmethod
    def from_stem(cls, stem: str) -> Window | None:
        match = _STEM.match(stem)
        if not match:
            return None
        start, end = (datetime.strptime(g, _STAMP).replace(tzinfo=UTC) for g in match.groups())
        return cls(start, end)

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def interval_delta(interval: str) -> timedelta:
    return timedelta(seconds=INTERVAL_SECONDS[interval])


def floor_time(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def final_cutoff(now: datetime, interval: str, settle: timedelta) -> datetime:
    """The end of the last candle that closed at least `settle` before `now`.

    Candles whose close lies after this may still change (an open candle, Bitvavo's unstable
    head) and are never landed as final.
    """
    return floor_time(now - settle, interval_delta(interval))


def chunk_of(moment: datetime, unit: str) -> Window:
    """The calendar chunk (day, month or year) containing `moment`."""
    if unit == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start, start + timedelta(days=1))
    if unit == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return Window(start, end)
    if unit == "year":
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return Window(start, start.replace(year=start.year + 1))
    raise ValueError(f"unknown chunk unit {unit!r}")


def chunk_unit(interval: str) -> str:
    """Files of roughly 10–50 thousand rows: months of sub-hour candles, years of the rest."""
    return "month" if INTERVAL_SECONDS[interval] < 3600 else "year"


def chunks(span: Window, unit: str) -> Iterator[Window]:
    """The calendar chunks that overlap `span`, oldest first."""
    moment = span.start
    while moment < span.end:
        chunk = chunk_of(moment, unit)
        yield chunk
        moment = chunk.end


@dataclass(frozen=True)
class ChunkPlan:
    """What one chunk needs: fetch `missing` and rewrite the chunk as `target`."""

    chunk: Window
    target: Window  # the range the chunk's file will cover afterwards
    missing: Window  # the part to fetch now
    replaces: tuple[str, ...]  # stems to remove once `target` has landed


def plan_chunks(
    span: Window,
    unit: str,
    landed_stems: Iterable[str],
    *,
    stale_from: datetime | None = None,
) -> list[ChunkPlan]:
    """For each chunk of `span`, what is still missing given the landed stems.

    Coverage is the run of landed windows, joined end to start, that contains the span's start
    within the chunk; the fetch resumes where that run ends, and the chunk's file is rewritten
    to cover the run plus what was fetched. Chunks covered up to the span's end need nothing.
    With `stale_from`, what the landed windows hold from that moment on counts as not landed
    (it must be read again): the fetch resumes there at the latest, and the rewritten file still
    replaces the windows it overlaps.
    """
    landed = sorted(w for w in map(Window.from_stem, landed_stems) if w is not None)
    plans = []
    for chunk in chunks(span, unit):
        begin = max(chunk.start, span.start)
        end = min(chunk.end, span.end)
        if end <= begin:
            continue
        inside = [w for w in landed if chunk.start <= w.start and w.end <= chunk.end]
        settled = inside
        if stale_from is not None:
            settled = [
                Window(w.start, min(w.end, stale_from)) for w in inside if w.start < stale_from
            ]
            # a window read again is rewritten whole, never left holding a part of what replaces it
            end = max([end, *(w.end for w in inside if w.start < end and w.end > stale_from)])
        earliest, covered = begin, begin
        for run in _runs(settled):
            if run.start <= begin <= run.end:
                earliest, covered = run.start, run.end
        if covered >= end:
            continue
        target = Window(earliest, end)
        plans.append(
            ChunkPlan(
                chunk=chunk,
                target=target,
                missing=Window(covered, end),
                replaces=tuple(
                    w.stem for w in inside if target.start <= w.start and w.end <= target.end
                ),
            )
        )
    return plans


def _runs(windows: list[Window]) -> Iterator[Window]:
    """Join sorted windows that touch or overlap into maximal runs."""
    current: Window | None = None
    for window in windows:
        if current is not None and window.start <= current.end:
            current = Window(current.start, max(current.end, window.end))
            continue
        if current is not None:
            yield current
        current = window
    if current is not None:
        yield current
