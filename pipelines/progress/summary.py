"""The run summary as one JSON document: `tally sync --json`.

The same numbers as the summary table (`pipelines.flows.sync.summary_table`), one object per
stream in the table's order, plus the totals::

    {"streams": [{"stream": "candles bitvavo BTC-EUR 1h", "exchange": "bitvavo",
                  "rows": {"candles": 239}, "rows_total": 239, "windows": 1, "requests": 1,
                  "weight": 1, "retries": 0, "gaps": [], "first": "2024-…", "last": "2024-…"}],
     "total": {"rows": 239, "windows": 1, "requests": 1, "weight": 1, "retries": 0, "gaps": 0},
     "warehouse": "/…/data/warehouse.duckdb"}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

COUNTS = ("windows", "requests", "weight", "retries")


def summary_document(
    results: Sequence[dict[str, Any]], *, warehouse: Path | str | None = None
) -> dict[str, Any]:
    """`results` are the flow's `StreamResult` dictionaries."""
    streams = []
    for result in sorted(results, key=lambda r: r["stream"]):
        rows = {name: int(count) for name, count in sorted(result["rows"].items())}
        streams.append(
            {
                "stream": result["stream"],
                "exchange": result["exchange"],
                "rows": rows,
                "rows_total": sum(rows.values()),
                **{name: int(result[name]) for name in COUNTS},
                "gaps": list(result["gaps"]),
                "first": _moment(result.get("first")),
                "last": _moment(result.get("last")),
            }
        )
    total = {
        "rows": sum(stream["rows_total"] for stream in streams),
        **{name: sum(stream[name] for stream in streams) for name in COUNTS},
        "gaps": sum(len(stream["gaps"]) for stream in streams),
    }
    return {
        "streams": streams,
        "total": total,
        "warehouse": str(warehouse) if warehouse is not None else None,
    }


def summary_json(results: Sequence[dict[str, Any]], *, warehouse: Path | str | None = None) -> str:
    return json.dumps(summary_document(results, warehouse=warehouse), indent=2)


def _moment(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
