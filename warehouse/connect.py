"""Open the built catalog for reading: `connect(data_dir)` → a guarded read-only DuckDB connection.

`read_only=True` only protects the database file. The connection is also closed off with
DuckDB's own settings, applied to its database instance before `lock_configuration` freezes them:
external access is off except for the lake (the one its views read by absolute path, so that a
catalog copied elsewhere still reads it, and the data directory's own; any other file, the
network and other databases are refused), no extension is installed or loaded, not even
automatically, and no setting can be changed afterwards (`SET`, `RESET`, `PRAGMA threads=…`).
A lake on object storage (`s3://…`) is the exception to "no extension": `httpfs` is loaded from
its package by path, with a secret scoped to the lake (`pipelines.lake_duckdb`), before the lock.
What these settings cannot tell apart — a `COPY … TO` into the lake, a table function that
changes state — is refused by `warehouse.readonly` for the SQL a person types.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import duckdb

from pipelines.lake_duckdb import open_object_store
from pipelines.s3_settings import S3Settings

WAREHOUSE_FILE = "warehouse.duckdb"
LAKE_DIR = "lake"  # `Settings.lake_dir` is `<data_dir>/lake`
# the build's record of what it built from (`warehouse.build`), lake included, in schema staging
BUILT_FROM_TABLE = "built_from"

# off from the moment the database instance starts
_START_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
# the path a view's read_parquet('…') or glob('…') reads, as DuckDB keeps the view's SQL
_READS = re.compile(r"\b(?:read_parquet|glob)\(\s*'(?P<path>(?:[^']|'')*)'", re.I)
_WILDCARD = re.compile(r"[*?\[{]")


class WarehouseMissingError(FileNotFoundError):
    """No catalog has been built in the data directory yet."""


def warehouse_path(data_dir: Path | str) -> Path:
    return Path(data_dir).resolve() / WAREHOUSE_FILE


def connect(
    data_dir: Path | str, *, lake: Path | str | None = None, s3: S3Settings | None = None
) -> duckdb.DuckDBPyConnection:
    """A guarded read-only connection to `<data_dir>/warehouse.duckdb` (build it with `tally
    warehouse`) that can read the lake its views read, `lake` (default `<data_dir>/lake`; or
    `s3://bucket/prefix`, reached with `s3`, default the `AWS_*` environment), and nothing
    else."""
    path = warehouse_path(data_dir)
    if not path.is_file():
        raise WarehouseMissingError(f"no warehouse at {path}: run `tally warehouse` first")
    own = lake_location(lake if lake is not None else Path(data_dir) / LAKE_DIR)
    connection = duckdb.connect(str(path), read_only=True, config=_START_CONFIG)
    try:
        # a catalog copied elsewhere still reads the lake it was built over
        _guard(connection, path, sorted({own, *catalog_lakes(connection)}), s3)
    except BaseException:
        connection.close()
        raise
    return connection


def lake_location(lake: Path | str) -> str:
    """The lake as DuckDB is allowed to read it: an absolute directory with a trailing `/`, or
    an object-storage URL prefix (`s3://bucket/lake/`)."""
    text = str(lake)
    if not is_remote(text):
        text = str(Path(text).resolve())
    return text if text.endswith("/") else f"{text}/"


def is_remote(lake: str) -> bool:
    return "://" in lake


def catalog_lakes(connection: duckdb.DuckDBPyConnection) -> set[str]:
    """The lakes the catalog was built over: the one its build recorded (`staging.built_from`),
    and those its views read. A view reads `<lake>/<dataset>/<glob>` (`warehouse.sources`): the
    lake is the parent of the directory the glob starts in."""
    lakes = set()
    recorded = connection.execute(
        "select 1 from duckdb_tables() where schema_name = 'staging' and table_name = ?",
        [BUILT_FROM_TABLE],
    ).fetchall()
    if recorded:
        built = connection.execute(f"select lake from staging.{BUILT_FROM_TABLE}").fetchall()
        lakes |= {lake for (lake,) in built}
    views = connection.execute("select sql from duckdb_views() where not internal").fetchall()
    for (sql,) in views:
        for match in _READS.finditer(sql or ""):
            path = match["path"].replace("''", "'")
            wildcard = _WILDCARD.search(path)
            fixed = path[: wildcard.start()] if wildcard else path
            dataset_dir = fixed.rstrip("/") if fixed.endswith("/") else fixed.rpartition("/")[0]
            lake = dataset_dir.rpartition("/")[0]
            if lake:
                lakes.add(f"{lake}/")
    return lakes


def _guard(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    lakes: list[str],
    s3: S3Settings | None = None,
) -> None:
    # DuckDB shares one database instance among the connections a process opens to a file: a
    # second connection finds the settings locked by the first, and must find them as it would
    # have set them.
    if _setting(connection, "lock_configuration"):
        allowed = _setting(connection, "allowed_directories") or []
        if _setting(connection, "enable_external_access") or not set(lakes) <= set(allowed):
            raise RuntimeError(
                f"{path} is already open in this process with other settings (reading {allowed})"
            )
        return
    remote = [lake for lake in lakes if is_remote(lake)]
    if remote:
        # a lake on object storage: its reader and credentials, while the configuration is open
        settings = s3 if s3 is not None else S3Settings.from_environment(os.environ)
        for lake in remote:
            open_object_store(connection, lake, settings)
    connection.execute("set allowed_directories = ?", [lakes])
    connection.execute("set enable_external_access = false")
    # Times come back in UTC whatever the machine's zone (the lake's times are UTC); GLOBAL, so
    # that a second connection to the same instance has it too.
    connection.execute("set global TimeZone = 'UTC'")
    connection.execute("set lock_configuration = true")


def _setting(connection: duckdb.DuckDBPyConnection, name: str) -> Any:
    row = connection.execute("select current_setting(?)", [name]).fetchone()
    return None if row is None else row[0]
