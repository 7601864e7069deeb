"""Recording a gap: a range of a stream that the exchange will not serve, with the reason.

Each (exchange, stream, market) writes its own file in the `gaps` dataset (stem
`{stream}-{market}`), so two streams never write one file. A gap found again replaces the
earlier record of the same start (the key is exchange, stream, market, gap_start); the
`coverage` view shows every gap beside the stream it belongs to.
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
) -> str:
    """Upsert one gap; returns its one-line description (for the run summary)."""
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
    lake.merge(GAPS, frame, stem=f"{stream}-{market}")
    return (
        f"{exchange} {stream} {market}: [{gap_start.isoformat()}, {gap_end.isoformat()}]: {reason}"
    )
