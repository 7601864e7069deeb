"""Lake helpers shared by the account streams of both exchanges.

The account streams keep their state in the lake itself: a stream reads back what it landed
(the newest fill, the ledger's last page, the oldest unsettled fill) and decides from that what
to ask for. Mutable rows (unsettled fills, withdrawals whose status moves) are upserted into one
file per source (`stem`); derived rows are rebuilt from the raw rows already landed, so that a
crash between two writes is repaired locally on the next run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import polars as pl

from pipelines import progress
from pipelines.datasets import TRANSFERS, RecordDataset
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import Movement
from pipelines.flows.runtime import StreamResult, finish
from pipelines.http import HttpClient, Usage
from pipelines.lake import Dataset, Lake, reading
from pipelines.lake_store import LakeFile, readable

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

CHUNK = timedelta(days=91)
"""Time-windowed account walks go forward in chunks this long, each landed before the next is
fetched: a crash never leaves older rows missing behind newer ones (the next run resumes from
the newest landed row), and only one chunk is held in memory."""


class _Fetched:
    """A record seen through a proxy that adds the `fetched_at` of the response it came in."""

    __slots__ = ("_record", "fetched_at")

    def __init__(self, record: Any, fetched_at: datetime | None) -> None:
        self._record = record
        self.fetched_at = fetched_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def pages_frame(source: RecordDataset, pages: Iterable[Page[Any]]) -> pl.DataFrame:
    """The records of several pages as one frame, each row with its own page's `fetched_at`."""
    return stamped_frame(source, ((r, p.fetched_at) for p in pages for r in p.records))


def stamped_frame(
    source: RecordDataset, rows: Iterable[tuple[Any, datetime | None]]
) -> pl.DataFrame:
    """Records paired with their `fetched_at` → a frame of `source`."""
    return source.frame([_Fetched(record, fetched_at) for record, fetched_at in rows])


def file_path(lake: Lake, dataset: Dataset, stem: str, partition: Mapping[str, Any]) -> LakeFile:
    return lake.partition_dir(dataset, partition) / f"{stem}.parquet"


def read_stem(
    lake: Lake, dataset: Dataset, stem: str, partition: Mapping[str, Any]
) -> pl.DataFrame | None:
    """The rows of one landed file, typed as the dataset declares (None when absent)."""
    path = file_path(lake, dataset, stem, partition)
    if not path.exists():
        return None
    with reading(path):
        stored = pl.read_parquet(readable(path))
    return stored.select(
        (pl.lit(partition[name]) if name in dataset.partition_by else pl.col(name))
        .cast(dtype)
        .alias(name)
        for name, dtype in dataset.schema.items()
    )


def records_from_frame(record: type[R], frame: pl.DataFrame) -> list[tuple[R, datetime | None]]:
    """Landed rows back into records (with each row's `fetched_at`): `extra` is decoded from its
    JSON text with exact Decimals, `movements` rebuilt; the rest are the stored values."""
    names = [f.name for f in dataclasses.fields(record)]
    out: list[tuple[R, datetime | None]] = []
    for row in frame.iter_rows(named=True):
        values: dict[str, Any] = {}
        for name in names:
            value = row[name]
            if name == "extra":
                value = json.loads(value, parse_float=Decimal) if value else {}
            elif name == "movements":
                value = tuple(Movement(m["asset"], m["amount"]) for m in value or ())
            values[name] = value
        out.append((record(**values), row.get("fetched_at")))
    return out


def replace_stem(
    lake: Lake, dataset: Dataset, frame: pl.DataFrame, stem: str, partition: Mapping[str, Any]
) -> tuple[int, int]:
    """Make the file `stem` hold exactly the rows of `frame` (no file for no rows).

    A file that already holds the same rows (same keys, same raw text) is left untouched, so a
    run with nothing new writes nothing. Returns (files written, rows new or changed).
    """
    path = file_path(lake, dataset, stem, partition)
    old = read_stem(lake, dataset, stem, partition)
    if frame.height == 0:
        if old is not None:
            path.unlink(missing_ok=True)
        return 0, 0
    fresh = frame.height if old is None else _changed(dataset, frame, old).height
    if old is not None and old.height == frame.height and fresh == 0:
        return 0, 0
    lake.land(dataset, frame, stem=stem)
    return 1, fresh


def upsert(
    lake: Lake, dataset: Dataset, frame: pl.DataFrame, stem: str, partition: Mapping[str, Any]
) -> int:
    """Merge into the file `stem` the rows of `frame` that are new or changed (new rows win).

    A row is unchanged when a landed row has its key and its raw text: it keeps its first
    `fetched_at`, and when nothing changed nothing is written. Returns the rows merged.
    """
    old = read_stem(lake, dataset, stem, partition)
    changed = frame if old is None else _changed(dataset, frame, old)
    changed = changed.unique(subset=list(dataset.key), keep="last", maintain_order=True)
    if changed.height:
        lake.merge(dataset, changed, stem=stem)
    return changed.height


def _changed(dataset: Dataset, new: pl.DataFrame, old: pl.DataFrame) -> pl.DataFrame:
    """Rows of `new` whose (key, raw) no row of `old` has (every column but `fetched_at` for
    a derived dataset without `raw`)."""
    on = (
        [*dataset.key, "raw"]
        if "raw" in dataset.schema
        else [c for c in dataset.schema if c != "fetched_at"]
    )
    return new.join(old.select(on).unique(), on=on, how="anti", nulls_equal=True)


def upsert_transfers(
    lake: Lake, frame: pl.DataFrame, stem: str, partition: Mapping[str, Any]
) -> int:
    """`upsert` transfers into `stem`, then drop the rows a later row supersedes.

    A withdrawal listed before its transaction hash existed is keyed by a composite id (asset,
    time, amount, address); once the hash shows, it is keyed by the hash. The two are one
    transfer: among rows of one source, kind, asset, time, amount and address, rows without a
    txid are dropped when one with a txid exists. The merge lands first and the clean-up second,
    so a crash in between leaves an overlap that the next run folds in, never a hole.
    Returns the rows merged.
    """
    dataset = TRANSFERS.dataset
    merged_rows = upsert(lake, dataset, frame, stem, partition)
    merged = read_stem(lake, dataset, stem, partition)
    if merged is None:
        return merged_rows
    identity = ["source", "kind", "asset", "executed_at", "amount", "address"]
    has_txid = pl.col("txid").is_not_null().any().over(identity)  # per transfer, on every row
    kept = merged.filter(pl.col("txid").is_not_null() | ~has_txid)
    if kept.height < merged.height:
        lake.land(dataset, kept, stem=stem)
    return merged_rows


def windows(
    start: datetime, end: datetime, size: timedelta = CHUNK
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows of at most `size`, oldest first."""
    moment = start
    while moment < end:
        following = min(moment + size, end)
        yield moment, following
        moment = following


def partition_range(
    lake: Lake, dataset: Dataset, partition: Mapping[str, Any], column: str = "executed_at"
) -> tuple[Any, Any]:
    """(smallest, largest) value of `column` in a partition ((None, None) when empty)."""
    row = (
        lake.scan(dataset, **partition)
        .select(pl.col(column).min().alias("first"), pl.col(column).max().alias("last"))
        .collect()
        .row(0)
    )
    return row[0], row[1]


def column_range(
    lake: Lake,
    dataset: Dataset,
    stem: str,
    partition: Mapping[str, Any],
    column: str = "executed_at",
) -> tuple[Any, Any]:
    """(smallest, largest) value of `column` in one landed file ((None, None) when absent)."""
    path = file_path(lake, dataset, stem, partition)
    if not path.exists():
        return None, None
    with reading(path):
        row = (
            pl.scan_parquet(readable(path))
            .select(pl.col(column).min().alias("first"), pl.col(column).max().alias("last"))
            .collect()
            .row(0)
        )
    return row[0], row[1]


@dataclasses.dataclass
class Meter:
    """Counts what one stream did: requests/weight/retries as its share of the client's `Usage`;
    per dataset the rows that are new or changed in the lake (a row read again unchanged is
    not counted), and the files written."""

    stream: str
    exchange: str
    http: HttpClient | None = None
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    windows: int = 0
    _start: Usage = dataclasses.field(default=Usage(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._start = self._usage()
        progress.stream_started(self.stream, self.exchange)

    def _usage(self) -> Usage:
        return Usage() if self.http is None else self.http.stats.usage()

    def landed(self, dataset: Dataset, rows: int, files: int) -> None:
        if rows or files:
            self.rows[dataset.name] = self.rows.get(dataset.name, 0) + rows
            self.windows += files
            progress.landed(dataset.name, rows)

    def result(
        self,
        *,
        first: datetime | None = None,
        last: datetime | None = None,
        gaps: Sequence[str] = (),
    ) -> StreamResult:
        used = self._usage() - self._start
        return finish(
            self.stream,
            self.exchange,
            used,
            rows=self.rows,
            windows=self.windows,
            gaps=gaps,
            first=first,
            last=last,
        )
