"""Recording a gap: a range of a stream that the exchange will not serve, with the reason.

Each (exchange, stream, market) writes its own file in the `gaps` dataset (stem
`{stream}-{market}` unless the caller names one), so two streams never write one file. A gap
found again replaces the earlier record of the same start (the key is exchange, stream, market,
gap_start); the `coverage` view shows every gap beside the stream it belongs to.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.datasets import GAPS
from pipelines.lake import Lake


def record_gap(
    lake: Lake,
    *,
    exchange: str,
    stream: str,
    market: str,
    gap_start: datetime,
    gap_end: datetime,
    reason: str,
    detected_at: datetime,
    stem: str | None = None,
    replace: bool = False,
) -> str:
    """Upsert one gap into the file `stem` (default `{stream}-{market}`); returns its one-line
    description (for the run summary). With `replace`, the file holds this gap alone: a stream
    that keeps one gap (where a candle stream starts) drops the earlier record whatever its
    start."""
    frame = pl.DataFrame(
        {
            "exchange": [exchange],
            "stream": [stream],
            "market": [market],
            "gap_start": [gap_start],
            "gap_end": [gap_end],
            "reason": [reason],
            "detected_at": [detected_at],
        },
        schema=dict(GAPS.schema),
    )
    stem = stem or f"{stream}-{market}"
    if replace:
        lake.land(GAPS, frame, stem=stem, partition={"exchange": exchange})
    else:
        lake.merge(GAPS, frame, stem=stem)
    return (
        f"{exchange} {stream} {market}: [{gap_start.isoformat()}, {gap_end.isoformat()}]: {reason}"
    )
