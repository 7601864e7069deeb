"""Reading a built warehouse in tests (one copy, not one per file).

`rows(settings, query, *params)` runs one query on the warehouse of `settings` and returns its
rows as dicts keyed by column name; `reader(data_dir)` is the guarded read-only connection
(`warehouse.connect`) it runs on.

Opening one costs ~40 ms of CPU (a DuckDB database instance, and the views read to find the
lake), a query on a small lake a few: `reader` keeps one connection per warehouse file open
until the file changes (a build renames a new file over it: another inode) or the test module
ends (`close_readers`, called by conftest.py). DuckDB shares one database instance per file in a
process, so a `warehouse.connect` of a file kept open here gets that instance, with the
catalog it was opened with: code that rebuilds a warehouse and then reads it must not find the
old one open. The tests' `build` (warehouse_build.py) closes it first; a test that rebuilds
through `tally` in-process calls `close_reader` before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

from pipelines.config import Settings
from warehouse.connect import connect, warehouse_path

# warehouse file -> (its identity when opened, the connection)
_OPEN: dict[Path, tuple[tuple[int, ...], duckdb.DuckDBPyConnection]] = {}


def rows(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    result = reader(settings.data_dir).execute(query, list(params))
    names = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def reader(data_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """`warehouse.connect(data_dir)`, kept open while its file is unchanged: read it, never
    close it."""
    path = warehouse_path(data_dir)
    identity = _identity(path)
    kept = _OPEN.get(path)
    if kept is not None and kept[0] == identity:
        return kept[1]
    close_reader(data_dir)
    connection = connect(data_dir)  # a missing file: its WarehouseMissingError
    _OPEN[path] = (identity, connection)  # taken before opening: a file replaced since reopens
    return connection


def close_reader(data_dir: Path | str) -> None:
    """Close the connection `reader` keeps to the warehouse of `data_dir`, if any."""
    kept = _OPEN.pop(warehouse_path(data_dir), None)
    if kept is not None:
        kept[1].close()


def close_readers() -> None:
    for path in list(_OPEN):
        close_reader(path.parent)


def _identity(path: Path) -> tuple[int, ...]:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return ()
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
