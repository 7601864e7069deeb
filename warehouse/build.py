"""Build the DuckDB catalog `data/warehouse.duckdb`: the lake's rows in staging tables, and the
models of `warehouse/sql/` over them.

    result = build(load_settings(), rules=warehouse_rules())             # what changed
    result = build(load_settings(), rules=warehouse_rules(), full=True)  # everything again

The catalog holds the macros, the staging tables loaded from the lake with the exchanges' rules
(`warehouse.rules`), then the models people query (`warehouse.sources` says what each layer holds),
each stored as a table or kept as a view as `sql/models.toml` declares. Queries read the stored
tables, never the lake, so a sync that lands or replaces a file under a running query cannot break
it. A build works on a temporary file beside the target (for an incremental build, a copy of it)
that is renamed over it once complete: a reader sees the old catalog or the new one, never half of
one, and a crashed build leaves the old one in place.

Incremental by default: a catalog built from the same definitions (SQL, contracts, rules, dataset
schemas, DuckDB version, lake) loads only the lake files that are new or were replaced
(`warehouse.staging`) and then computes again the models that read what changed
(`warehouse.lineage`); one whose lake has not changed is left as it is. `full=True` builds
everything from nothing. DuckDB's memory is bounded by the `warehouse_memory_limit` setting (what
does not fit spills to a directory beside the temporary file). Lake paths in the models are
absolute: the file opens from any directory, in Python or in the `duckdb` shell. A lake on
object storage (`lake_url`) is read through `httpfs` with the lake's secret, and each build writes
`<data_dir>/duckdb-s3.sql`, the shell's init file for it (`pipelines.lake_duckdb.shell_init`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from pipelines.atomic import fsync_dir, temp_path, write_text
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake import Lake
from pipelines.lake_duckdb import SHELL_INIT_FILE, open_object_store, shell_init
from warehouse import lineage, sources, staging
from warehouse import rules as exchange_rules
from warehouse.connect import BUILT_FROM_TABLE, lake_location
from warehouse.contracts import CONTRACTS_FILE, Contract, view_contracts
from warehouse.lineage import stale_models
from warehouse.sources import (
    DATASETS,
    STAGING,
    ViewFile,
    lake_exchanges,
    macro_files,
    render,
    view_files,
)
from warehouse.staging import StagingError, pending, stage

if TYPE_CHECKING:
    from pipelines.config import Settings


class WarehouseBuildError(OperatorError):
    """A model could not be created (names its file), or the lake holds rows of an exchange that
    no rules were given for (the models would leave its rows out): a data problem."""

    exit_code = ExitCode.DATA


# what the catalog was built from (one row): an incremental build needs the same
BUILT_FROM = f"{STAGING}.{BUILT_FROM_TABLE}"
# the layout of the catalog itself: a change makes the next build a full one
CATALOG_FORMAT = "2"
_LAYOUT_MODULES = (staging, sources, exchange_rules, lineage)


@dataclass(frozen=True)
class BuildResult:
    path: Path
    views: tuple[str, ...]  # every model, tables and views, in order of creation
    seconds: float
    full: bool  # built from nothing (else: from the previous catalog)
    staged: tuple[str, ...]  # the datasets whose lake files changed and were loaded again
    computed: tuple[str, ...]  # the models computed (again): those that read what changed


def build(
    settings: Settings,
    *,
    rules: Mapping[str, exchange_rules.ExchangeRules],
    sql_dir: Path | None = None,
    full: bool = False,
) -> BuildResult:
    """Bring `settings.warehouse_path` in step with the lake (`full`: build it anew) from the
    model files (default: the packaged ones).

    `rules`: each exchange's data rules, by name (`pipelines.exchanges.registry.warehouse_rules`).
    DuckDB may use `settings.warehouse_memory_limit` of memory.
    """
    began = time.monotonic()
    target = settings.warehouse_path
    target.parent.mkdir(parents=True, exist_ok=True)
    lake = Lake.of(settings)
    unruled = sorted(lake_exchanges(lake) - set(rules))
    if unruled:
        raise WarehouseBuildError(
            f"the lake holds rows of {', '.join(unruled)}, for which no exchange rules were "
            f"given (rules for: {', '.join(rules) or 'none'}): every model would leave them out"
        )
    files = view_files(sql_dir)
    declared = _declared(files, sql_dir)
    fingerprint = _fingerprint(files, sql_dir, declared, rules, lake)
    names = tuple(v.name for v in files)
    temporary = temp_path(target)
    spill = temporary.with_name(f"{temporary.name}.spill")
    if not full and _up_to_date(target, fingerprint, lake):
        return BuildResult(target, names, time.monotonic() - began, False, (), ())
    try:
        connection = None
        if not full and target.is_file():
            connection = _previous(target, temporary, spill, settings, fingerprint, lake)
        incremental = connection is not None
        if connection is None:
            connection = _open(temporary, spill, settings.warehouse_memory_limit, lake)
            _define(connection, sql_dir, rules)
        try:
            try:
                staged = stage(connection, lake, incremental=incremental)
            except StagingError as error:
                raise WarehouseBuildError(f"staging {error}") from error
            if incremental and not staged:
                return BuildResult(target, names, time.monotonic() - began, False, (), ())
            stale = set(stale_models(files, staged)) if incremental else set(names)
            for view in files:
                if view.name in stale:
                    _create_model(connection, view, declared[view.name], lake)
            connection.execute(
                f"create or replace table {BUILT_FROM} as select ? as fingerprint, ? as lake",
                [fingerprint, lake_location(lake.location)],
            )
            connection.execute("checkpoint")
        finally:
            connection.close()
        # a write-ahead log beside the target is the old catalog's (a shell that crashed while
        # writing it): beside the new one it would be replayed into it, and break it
        Path(f"{target}.wal").unlink(missing_ok=True)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}.wal").unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    fsync_dir(target.parent)
    if lake.remote:  # what the `duckdb` shell needs to read the lake's views (no key in it)
        write_text(settings.data_dir / SHELL_INIT_FILE, shell_init(lake.location))
    computed = tuple(name for name in names if name in stale)
    return BuildResult(
        target, names, time.monotonic() - began, not incremental, tuple(staged), computed
    )


def _previous(
    target: Path,
    temporary: Path,
    spill: Path,
    settings: Settings,
    fingerprint: str,
    lake: Lake,
) -> duckdb.DuckDBPyConnection | None:
    """A copy of the previous catalog to build on, open; None when it was built from other
    definitions or cannot be read (a build from nothing then replaces it)."""
    shutil.copyfile(target, temporary)
    try:
        connection = _open(temporary, spill, settings.warehouse_memory_limit, lake)
    except duckdb.Error:
        temporary.unlink()
        return None
    if _built_from(connection) == fingerprint:
        return connection
    connection.close()
    temporary.unlink()
    Path(f"{temporary}.wal").unlink(missing_ok=True)
    return None


def _up_to_date(target: Path, fingerprint: str, lake: Lake) -> bool:
    """Whether the catalog at `target` was built from these definitions and the lake's files as
    they are (read in place: nothing to copy)."""
    if not target.is_file():
        return False
    try:
        with duckdb.connect(str(target), read_only=True) as connection:
            return _built_from(connection) == fingerprint and not pending(connection, lake)
    except duckdb.Error:  # (open in this process with other settings: the copy will tell)
        return False


def _open(temporary: Path, spill: Path, memory_limit: str, lake: Lake) -> duckdb.DuckDBPyConnection:
    # UTC: the models compute in the session's zone (timestamptz - timestamptz, months), and
    # the readers' sessions are in UTC; a table built in another zone would hold other values
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
        # the storage format of this DuckDB (the `duckdb` shell of the same version opens it):
        # its tables are written about a third faster than in the oldest format it can write
        "storage_compatibility_version": "latest",
    }
    connection = duckdb.connect(str(temporary), config=config)
    connection.execute("set TimeZone = 'UTC'")
    if lake.s3 is not None:  # a lake on object storage: httpfs and the lake's secret
        open_object_store(connection, lake.location, lake.s3)
    return connection


def _define(
    connection: duckdb.DuckDBPyConnection,
    sql_dir: Path | None,
    rules: Mapping[str, exchange_rules.ExchangeRules],
) -> None:
    """What a new catalog starts with: the macros, the staging schema, the exchanges' rules."""
    for macros in macro_files(sql_dir):
        _run(connection, f"{macros.order:03d}_{macros.name}.sql", macros.text)
    _run(connection, "staging", f"create schema {STAGING}")
    exchange_rules.write(connection, rules)


def _built_from(connection: duckdb.DuckDBPyConnection) -> str | None:
    try:
        row = connection.execute(f"select fingerprint from {BUILT_FROM}").fetchone()
    except duckdb.CatalogException:
        return None
    return None if row is None else str(row[0])


def _declared(files: Sequence[ViewFile], sql_dir: Path | None) -> dict[str, Contract]:
    declared = view_contracts(sql_dir)
    undeclared = sorted(f.name for f in files if f.name not in declared)
    unknown = sorted(set(declared) - {f.name for f in files})
    if undeclared or unknown:
        raise WarehouseBuildError(
            f"{CONTRACTS_FILE} must declare every model file and nothing else: "
            f"undeclared {undeclared}, no such model {unknown}"
        )
    return declared


def _fingerprint(
    files: Sequence[ViewFile],
    sql_dir: Path | None,
    declared: Mapping[str, Contract],
    rules: Mapping[str, exchange_rules.ExchangeRules],
    lake: Lake,
) -> str:
    """What a catalog's tables depend on besides the lake's rows, hashed."""
    parts = [CATALOG_FORMAT, duckdb.__version__, str(lake.root)]
    # the code that lays out the catalog (staging tables, their types, the rules' columns)
    parts += [Path(module.__file__ or "").read_text("utf-8") for module in _LAYOUT_MODULES]
    parts.append(Path(__file__).read_text("utf-8"))
    parts += [f"{f.order} {f.name}\n{f.text}" for f in [*macro_files(sql_dir), *files]]
    parts += [repr(contract) for contract in declared.values()]
    parts += [f"{name} {rule!r}" for name, rule in rules.items()]
    parts += [
        f"{d.name} {dict(d.schema)!r} {d.partition_by!r} {d.key!r}" for d in DATASETS.values()
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _create_model(
    connection: duckdb.DuckDBPyConnection, view: ViewFile, contract: Contract, lake: Lake
) -> None:
    statement = f"create or replace {contract.materialized} {view.name} as\n"
    _run(connection, f"{view.order:03d}_{view.name}.sql", statement + render(view.text, lake))


def _run(connection: duckdb.DuckDBPyConnection, what: str, statement: str) -> None:
    try:
        connection.execute(statement)
    except duckdb.Error as error:
        raise WarehouseBuildError(f"{what}: {error}") from error


def build_summary(result: BuildResult) -> str:
    """What a build did, in a few words: "built from nothing", "lake unchanged", or "loaded
    candles; computed candles, coverage, prices, fees"."""
    if result.full:
        return "built from nothing"
    if not result.staged:
        return "lake unchanged"
    return f"loaded {', '.join(result.staged)}; computed {', '.join(result.computed) or 'nothing'}"


def view_row_counts(
    connection: duckdb.DuckDBPyConnection, views: Sequence[str]
) -> list[tuple[str, int]]:
    """(view, rows) for each of `views`, in that order."""
    counts = []
    for name in views:
        result = connection.execute(f'select count(*) from "{name}"').fetchone()
        counts.append((name, int(result[0]) if result else 0))
    return counts
