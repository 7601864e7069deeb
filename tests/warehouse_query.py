"""Reading a built warehouse in tests (one copy, not one per file).

`rows(settings, query, *params)` runs one query on the warehouse of `settings` (opened with
`warehouse.connect`) and returns its rows as dicts keyed by column name.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from warehouse.connect import connect


def rows(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    with connect(settings.data_dir) as connection:
        result = connection.execute(query, list(params))
        names = [d[0] for d in result.description or ()]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
