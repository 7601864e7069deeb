"""Query results as text: an aligned table, CSV, or JSON (`tally sql --format …`).

Decimals are written exactly as DuckDB returned them (never through a float): plain digits in the
table and CSV, bare JSON numbers in JSON. Times are ISO 8601.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pipelines import tables
from pipelines.exact_json import READABLE, encode

FORMATS = ("table", "csv", "json")


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "table":
        return format_table(columns, rows)
    if fmt == "csv":
        return format_csv(columns, rows)
    if fmt == "json":
        return format_json(columns, rows)
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest value, numbers right-aligned, NULL for a missing value."""
    cells = [list(columns), *([_text(v, null="NULL") for v in row] for row in rows)]
    numeric = {
        i
        for i in range(len(columns))
        if rows and all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows)
    }
    header, *lines = tables.render(cells, right=numeric, strip=True)
    out = [header, tables.rule(tables.widths(cells)), *lines]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out)


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header row; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(v, null="") for v in row])
    return buffer.getvalue().rstrip("\n")


def format_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A JSON array with one object per row."""
    objects = [
        "{"
        + ", ".join(
            f"{json.dumps(c)}: {encode(v, READABLE)}" for c, v in zip(columns, row, strict=True)
        )
        + "}"
        for row in rows
    ]
    if not objects:
        return "[]"
    return "[\n  " + ",\n  ".join(objects) + "\n]"


def _text(value: Any, *, null: str) -> str:
    if value is None:
        return null
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
