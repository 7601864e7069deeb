"""Build the DuckDB catalog: `data/warehouse.duckdb`, the views of `warehouse/sql/` over the lake.

    result = build(load_settings(), rules=warehouse_rules())

The catalog holds macros and views only (no lake data): the macros first, then the staging views
over the lake with the exchanges' rules (`warehouse.rules`), then the views people query
(`warehouse.sources` says what each layer holds). It is rebuilt whole on every build, into a
temporary file beside the target that is renamed over it once complete, so a reader sees the old
catalog or the new one, never half of one, and a crashed build leaves the old one in place. Lake
paths in the views are absolute: the file opens from any directory, in Python or in the `duckdb`
shell.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipelines.atomic import fsync_dir, temp_path
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake import Lake
from warehouse import rules as exchange_rules
from warehouse.sources import (
    STAGING,
    ViewFile,
    lake_exchanges,
    macro_files,
    render,
    staging_views,
    view_files,
)

if TYPE_CHECKING:
    from pipelines.config import Settings


class WarehouseBuildError(OperatorError):
    """A view could not be created (names the view file), or the lake holds rows of an exchange
    that no rules were given for (the views would leave its rows out): a data problem."""

    exit_code = ExitCode.DATA


@dataclass(frozen=True)
class BuildResult:
    path: Path
    views: tuple[str, ...]
    seconds: float


def build(
    settings: Settings,
    *,
    rules: Mapping[str, exchange_rules.ExchangeRules],
    sql_dir: Path | None = None,
) -> BuildResult:
    """(Re)create `settings.warehouse_path` from the view files (default: the packaged ones).

    `rules`: each exchange's data rules, by name (`pipelines.exchanges.registry.warehouse_rules`).
    """
    began = time.monotonic()
    target = settings.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)
    lake = Lake(settings.lake_dir)
    unruled = sorted(lake_exchanges(lake) - set(rules))
    if unruled:
        raise WarehouseBuildError(
            f"the lake holds rows of {', '.join(unruled)}, for which no exchange rules were "
            f"given (rules for: {', '.join(rules) or 'none'}): every view would leave them out"
        )
    files = view_files(sql_dir)
    temporary = temp_path(target)
    try:
        connection = duckdb.connect(str(temporary))
        try:
            # Each view binds the views it reads, down to the files: read a file's footer once
            # (a cache of this build's own database, gone with it).
            connection.execute("set parquet_metadata_cache = true")
            for macros in macro_files(sql_dir):
                _run(connection, f"{macros.order:03d}_{macros.name}.sql", macros.text)
            _run(connection, "staging", f"create schema {STAGING}")
            exchange_rules.write(connection, rules)
            for staged in staging_views(lake):
                _run(connection, staged.name, f"create view {staged.name} as\n{staged.sql}")
            for view in files:
                _create_view(connection, view, lake)
            connection.execute("checkpoint")
        finally:
            connection.close()
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}.wal").unlink(missing_ok=True)
    fsync_dir(target.parent)
    return BuildResult(target, tuple(v.name for v in files), time.monotonic() - began)


def _create_view(connection: duckdb.DuckDBPyConnection, view: ViewFile, lake: Lake) -> None:
    statement = f"create view {view.name} as\n{render(view.text, lake)}"
    _run(connection, f"{view.order:03d}_{view.name}.sql", statement)


def _run(connection: duckdb.DuckDBPyConnection, what: str, statement: str) -> None:
    try:
        connection.execute(statement)
    except duckdb.Error as error:
        raise WarehouseBuildError(f"view {what}: {error}") from error


def view_row_counts(
    connection: duckdb.DuckDBPyConnection, views: Sequence[str]
) -> list[tuple[str, int]]:
    """(view, rows) for each of `views`, in that order."""
    counts = []
    for name in views:
        result = connection.execute(f'select count(*) from "{name}"').fetchone()
        counts.append((name, int(result[0]) if result else 0))
    return counts
