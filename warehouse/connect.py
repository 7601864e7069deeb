"""Open the built catalog for reading: `connect(data_dir)` → a read-only DuckDB connection."""

from __future__ import annotations

from pathlib import Path

import duckdb

WAREHOUSE_FILE = "warehouse.duckdb"


class WarehouseMissingError(FileNotFoundError):
    """No catalog has been built in the data directory yet."""


def warehouse_path(data_dir: Path | str) -> Path:
    return Path(data_dir).resolve() / WAREHOUSE_FILE


def connect(data_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to `<data_dir>/warehouse.duckdb` (build it with `tally warehouse`)."""
    path = warehouse_path(data_dir)
    if not path.is_file():
        raise WarehouseMissingError(f"no warehouse at {path}: run `tally warehouse` first")
    connection = duckdb.connect(str(path), read_only=True)
    # Times come back in UTC whatever the machine's zone (the lake's times are UTC).
    connection.execute("set TimeZone = 'UTC'")
    return connection
