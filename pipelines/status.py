"""`tally status`: per stream, what the lake holds — rows, time range, last fetch, gaps.

Everything is read from the lake's files (DuckDB over the Parquet globs); there is no other state.
Files that cannot be read (`skip`: `tally status` finds them without moving them) are left out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.datasets import (
    ALL,
    BALANCE_SNAPSHOTS,
    CANDLES,
    FILLS,
    GAPS,
    OTHER_EVENTS,
    PUBLIC_TRADES,
    TRANSFERS,
)
from pipelines.exchanges.registry import EXCHANGES
from pipelines.lake import Dataset, Lake
from pipelines.lake_duckdb import open_object_store
from pipelines.lake_store import LakeFile
from pipelines.tables import render


@dataclass(frozen=True)
class StreamStatus:
    stream: str
    rows: int
    first: datetime | None
    last: datetime | None
    last_fetch: datetime | None
    gaps: int


# (dataset, label expression, time column) — the label names the stream a row belongs to; each
# exchange's raw ledger as its adapter names it (`ledger bitstamp`, `history bitvavo`).
_STREAMS: tuple[tuple[Dataset, str, str], ...] = (
    (CANDLES.dataset, "'candles ' || exchange || ' ' || market || ' ' || interval", "open_time"),
    (PUBLIC_TRADES.dataset, "'public_trades ' || exchange || ' ' || market", "traded_at"),
    (FILLS.dataset, "'fills ' || exchange || ' ' || source", "executed_at"),
    (TRANSFERS.dataset, "'transfers ' || exchange || ' ' || source", "executed_at"),
    (OTHER_EVENTS.dataset, "'other_events ' || exchange || ' ' || source", "executed_at"),
    *(
        (
            ALL[e.ingestion.ledger.dataset].dataset,
            f"'{e.ingestion.ledger.label} {e.name}'",
            "executed_at",
        )
        for e in EXCHANGES.values()
    ),
    (BALANCE_SNAPSHOTS.dataset, "'balances ' || exchange", "taken_at"),
)


def stream_status(lake: Lake, *, skip: Collection[LakeFile] = ()) -> list[StreamStatus]:
    con = duckdb.connect()
    if lake.s3 is not None:
        open_object_store(con, lake.location, lake.s3)
    gaps = _gap_counts(con, lake, skip)
    statuses = []
    for dataset, label, time_column in _STREAMS:
        source = _source(lake, dataset, skip)
        if source is None:
            continue
        rows = con.sql(
            f"select {label} as stream, count(*), min({time_column}), max({time_column}), "
            f"max(fetched_at) from read_parquet({source}, hive_partitioning=true, "
            "union_by_name=true) group by all order by 1"
        ).fetchall()
        statuses += [
            StreamStatus(stream, count, first, last, fetched, gaps.get(stream, 0))
            for stream, count, first, last, fetched in rows
        ]
    return statuses


def _source(lake: Lake, dataset: Dataset, skip: Collection[LakeFile]) -> str | None:
    """What `read_parquet` reads: the dataset's glob, or its readable files when some are not
    (None when there is nothing to read)."""
    files = lake.files(dataset)
    readable = [str(path) for path in files if path not in skip]
    if not readable:
        return None
    if len(readable) == len(files):
        return f"'{lake.glob(dataset)}'"
    return "[" + ", ".join("'" + path.replace("'", "''") + "'" for path in readable) + "]"


def _gap_counts(
    con: duckdb.DuckDBPyConnection, lake: Lake, skip: Collection[LakeFile]
) -> dict[str, int]:
    source = _source(lake, GAPS, skip)
    if source is None:
        return {}
    rows = con.sql(
        f"select stream || ' ' || exchange || ' ' || market, count(*) from "
        f"read_parquet({source}, hive_partitioning=true, union_by_name=true) "
        "group by all"
    ).fetchall()
    return {str(stream): int(count) for stream, count in rows}


def format_status(statuses: list[StreamStatus]) -> str:
    if not statuses:
        return "The lake is empty: run `tally sync` (or `tally demo`)."
    header = ("stream", "rows", "first", "last", "last fetch", "gaps")
    table = [header] + [
        (s.stream, str(s.rows), _time(s.first), _time(s.last), _time(s.last_fetch), str(s.gaps))
        for s in statuses
    ]
    return "\n".join(render(table))


def _time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
