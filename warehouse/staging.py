"""The staging tables: each lake dataset loaded once, kept in step with the lake's files.

    changed = stage(connection, lake, incremental=True)

Per dataset, `staging.<dataset>_landed` holds every landed row (partition columns as text,
`filename` the file it came from) and `staging.<dataset>` one row per the dataset's key, the
newest fetch winning (datasets stamped with a fetch time). `staging.landed_files` records each
file loaded with its size, modification time and inode: the lake's file names say what landed,
so an incremental build reads only the files that are new or were replaced, drops the rows of
files that are gone, and deduplicates again only the datasets whose files changed. A dataset
whose new files do not fit its table (a column it has never had) is loaded again whole.

On object storage the stamp is the listing's (size, time to the second, 0): an object replaced
within the same second by one of the same size would keep it. So an object that may have been
written as the staging listed it is recorded with a stamp that matches nothing (git's "racily
clean" rule), and the next build reads it again. Its time is the S3 server's, the start's this
machine's: an object is taken as racy from `RACY_MARGIN_SECONDS` before the earlier of the
staging's start and the newest time listed in its dataset (the server's clock is at least
there), the latter counted while it is at most `SERVER_CLOCK_BEHIND_SECONDS` before the start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import duckdb

from pipelines.lake import Dataset, Lake
from warehouse.sources import DATASETS, STAGING, empty_relation, fetch_time, quote

FILES = f"{STAGING}.landed_files"
# (size in bytes, modification time in ns, inode): the lake replaces a file by renaming a new
# one over it, so a file replaced under the same name differs at least in its inode
Stamp = tuple[int, int, int]
# what a batch of new files that does not fit its table raises (a column it lacks, a type it
# cannot take): the dataset is loaded again whole
RACY = -1  # the version recorded for an object that may have been written as it was listed
# Stamps are whole seconds (rounded down: 1 s), a listing of many pages takes a few seconds, and
# the nodes of an S3 cluster stamp with their own clocks (NTP keeps them well within a second):
# 5 s covers these, and costs only the objects of the last seconds read again by the next build.
RACY_MARGIN_SECONDS = 5
# A server's clock up to this far behind this machine's is covered by the newest listed time
# (a dataset being written has its newest object at about the server's "now"); the newest
# objects of a dataset are read again by builds within this long of their landing.
SERVER_CLOCK_BEHIND_SECONDS = 60
_MISFIT = (duckdb.BinderException, duckdb.ConversionException, duckdb.CatalogException)


class StagingError(Exception):
    """A dataset's files could not be loaded (names the dataset and DuckDB's error)."""


def stage(
    connection: duckdb.DuckDBPyConnection,
    lake: Lake,
    *,
    incremental: bool,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Bring every staging table in step with `lake`; the names of the datasets that changed
    (every dataset unless `incremental`). `clock` (epoch seconds) dates the start, for the
    racy rule of a lake on object storage."""
    started = int(clock()) * 1_000_000_000 if lake.remote else None
    connection.execute(
        f"create table if not exists {FILES} "
        "(dataset varchar, filename varchar, size bigint, modified_ns bigint, inode bigint)"
    )
    changed = []
    for dataset in DATASETS.values():
        current = lake_files(lake, dataset)
        known = _known_files(connection, dataset) if incremental else None
        if known == current:
            continue
        try:
            if known is None or not _apply(connection, dataset, known, current):
                _load(connection, dataset, sorted(current))
        except duckdb.Error as error:
            raise StagingError(f"dataset {dataset.name}: {error}") from error
        connection.execute(f"delete from {FILES} where dataset = ?", [dataset.name])
        listed = sorted(_recorded(current, started).items())
        connection.execute(
            f"insert into {FILES} select ?, "
            f"unnest({_json_list('varchar')}), "
            f"unnest({_json_list('bigint')}), "
            f"unnest({_json_list('bigint')}), "
            f"unnest({_json_list('bigint')})",
            [
                dataset.name,
                json.dumps([name for name, _ in listed]),
                *(json.dumps([stamp[i] for _, stamp in listed]) for i in range(3)),
            ],
        )
        _dedupe(connection, dataset)
        changed.append(dataset.name)
    return changed


def lake_files(lake: Lake, dataset: Dataset) -> dict[str, Stamp]:
    """The dataset's files where the lake keeps them, each with its stamp."""
    return {str(f.file): (f.size, f.mtime_ns, f.version) for f in lake.listed(dataset)}


def _recorded(current: dict[str, Stamp], started: int | None) -> dict[str, Stamp]:
    """The stamps to record: those of objects that may have been written as they were listed
    (see the module's docstring) made to match nothing. `started`: ns, None for a local lake."""
    if started is None or not current:
        return current
    racy_from = racy_threshold(started, max(mtime for _, mtime, _ in current.values()))
    return {
        name: (size, mtime, RACY) if mtime >= racy_from else (size, mtime, version)
        for name, (size, mtime, version) in current.items()
    }


def racy_threshold(started: int, newest: int) -> int:
    """The time (ns) from which a listed object is racy: a margin before the staging's start
    (this machine's clock) or before the newest time listed (the server's), the earlier."""
    anchor = started
    if newest >= started - SERVER_CLOCK_BEHIND_SECONDS * 1_000_000_000:
        anchor = min(started, newest)
    return anchor - RACY_MARGIN_SECONDS * 1_000_000_000


def pending(connection: duckdb.DuckDBPyConnection, lake: Lake) -> list[str]:
    """The datasets whose files differ from those the staging tables were loaded from."""
    return [
        dataset.name
        for dataset in DATASETS.values()
        if _known_files(connection, dataset) != lake_files(lake, dataset)
    ]


def _known_files(connection: duckdb.DuckDBPyConnection, dataset: Dataset) -> dict[str, Stamp]:
    rows = connection.execute(
        f"select filename, size, modified_ns, inode from {FILES} where dataset = ?",
        [dataset.name],
    ).fetchall()
    return {name: (size, modified, inode) for name, size, modified, inode in rows}


def _apply(
    connection: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    known: dict[str, Stamp],
    current: dict[str, Stamp],
) -> bool:
    """Drop the rows of files gone or replaced, add those of files new or replaced; False
    (nothing changed) when the new files do not fit the table."""
    stale = sorted(name for name, stamp in known.items() if current.get(name) != stamp)
    fresh = sorted(name for name, stamp in current.items() if known.get(name) != stamp)
    landed = f"{STAGING}.{dataset.name}_landed"
    connection.execute("begin transaction")
    try:
        if stale:
            connection.execute(
                f"delete from {landed} where filename in (select unnest({_json_list('varchar')}))",
                [json.dumps(stale)],
            )
        if fresh:
            connection.execute(f"insert into {landed} by name {_read(dataset, fresh)}")
    except _MISFIT:
        connection.execute("rollback")
        return False
    except BaseException:
        connection.execute("rollback")
        raise
    connection.execute("commit")
    return True


def _json_list(element: str) -> str:
    # a list bound as one JSON text: DuckDB's Python client converts a bound list value by
    # value and tries to import pandas for each one (without pandas, about 0.1 ms a value:
    # 0.34 s for the 4,000 values listing the lake of a million fills)
    return f"from_json(?, '[\"{element}\"]')"


def _load(connection: duckdb.DuckDBPyConnection, dataset: Dataset, files: Sequence[str]) -> None:
    landed = f"{STAGING}.{dataset.name}_landed"
    source = _read(dataset, files) if files else f"select * from {empty_relation(dataset)}"
    connection.execute(f"create or replace table {landed} as\n{source}")


def _read(dataset: Dataset, files: Sequence[str]) -> str:
    # Hive partition values are typed by their text ('1' reads as a number): keep them text
    texts = ", ".join(f"{c}::varchar as {c}" for c in dataset.partition_by)
    columns = f"* replace ({texts})" if texts else "*"
    hive = "hive_partitioning=true, " if dataset.partition_by else ""
    listed = ", ".join(quote(name) for name in files)
    return (
        f"select {columns}\nfrom read_parquet([{listed}], {hive}union_by_name=true, filename=true)"
    )


def _dedupe(connection: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    """`staging.<dataset>`: a view of the landed rows when no key is landed twice (nothing to
    choose: the rows are not stored again), else a table of the newest row per key."""
    stamped = fetch_time(dataset)
    if stamped is None:  # (the quarantine index: nothing says which row is newer)
        return
    landed = f"{STAGING}.{dataset.name}_landed"
    newest = f"{STAGING}.{dataset.name}"
    keys = ", ".join(dataset.key)
    twice = connection.execute(
        f"select count(*) from (select 1 from {landed} group by {keys} having count(*) > 1)"
    ).fetchone()
    for (kind,) in connection.execute(
        "select 'view' from duckdb_views() where schema_name = ? and view_name = ? union all "
        "select 'table' from duckdb_tables() where schema_name = ? and table_name = ?",
        [STAGING, dataset.name] * 2,
    ).fetchall():
        connection.execute(f"drop {kind} {newest}")
    if not (twice and twice[0]):
        connection.execute(f"create view {newest} as select * from {landed}")
        return
    connection.execute(
        f"create table {newest} as\n"
        f"select * from {landed}\n"
        f"qualify row_number() over (\n"
        f"    partition by {keys}\n"
        f"    order by {stamped} desc, filename desc\n) = 1"
    )
