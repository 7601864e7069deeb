"""Candles are final only when settled: which landed candles a sync reads again.

An exchange may still change a candle after it closed: Bitvavo's newest candles come back
incomplete for a while (some missing, volumes and closes still moving; python-bitvavo-api issue
20). So a candle is final only once it was read at least `reread` (`candles_reread_minutes`,
default 3 h) after its close. Each candle file notes in its footer when tally read it
(`tally.read_at`, by tally's clock: the present of `Runtime.now`), written in the same atomic
step as its rows. Every read covers everything from the oldest unsettled candle to the cutoff,
so a file's note dates all its unsettled candles.

A sync whose clock is past a file's read reads again from the oldest candle the note leaves
unsettled, to the new cutoff, and rewrites the chunk as usual (`chunks.land_plan`): fresh rows
win, a candle the new read lacks keeps its earlier row, and a hole the new read fills is
filled. A sync with the same clock reads nothing again (the exchange would say the same). A file
without the note (landed before reads were noted) is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pipelines.flows.chunks import partition_files
from pipelines.flows.plan import Window, floor_time, interval_delta
from pipelines.lake import Dataset, Lake

READ_AT = "tally.read_at"


def read_note(now: datetime) -> dict[str, str]:
    """The footer note of a candle file read at `now`."""
    return {READ_AT: now.isoformat()}


def read_at(notes: Mapping[str, str]) -> datetime | None:
    text = notes.get(READ_AT)
    return datetime.fromisoformat(text) if text else None


def unsettled_from(
    lake: Lake,
    dataset: Dataset,
    partition: Mapping[str, Any],
    interval: str,
    *,
    reread: timedelta,
    now: datetime,
) -> datetime | None:
    """The open time of the oldest landed candle to read again at `now`, or None."""
    step = interval_delta(interval)
    earliest: datetime | None = None
    for stem, path in partition_files(lake, dataset, partition).items():
        window = Window.from_stem(stem)
        moment = read_at(lake.notes(path)) if window is not None else None
        if window is None or moment is None or moment >= now:
            continue
        # the first candle that closed less than `reread` before the read
        first = max(window.start, floor_time(moment - reread, step))
        if first < window.end and (earliest is None or first < earliest):
            earliest = first
    return earliest
