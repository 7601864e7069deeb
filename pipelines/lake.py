"""The Parquet lake: where landed rows live, and the only record of what has landed.

Layout (Hive-style, one directory per dataset)::

    <root>/<dataset>/<part>=<value>/.../<stem>.parquet

A *window* (a time range or id range that a flow fetched completely) is written once, as one file
per partition named by the window (`stem`), so re-landing the same window replaces its file and
leaves one copy of every row. Small mutable datasets (deposits whose status changes, snapshots) are
*merged*: the partition's single file is rewritten with old ∪ new rows, deduplicated on the
dataset's key, the newer row winning.

A file may carry a few key-value notes in its Parquet footer (`metadata=`, read back with
`Lake.notes`), written in the same atomic step as its rows: facts about the fetch that the rows
alone cannot tell (when a candle window was read, so that its unsettled tail is read again).

Every write goes to a hidden temp file in the target directory, is fsynced, then renamed over the
target: a reader (DuckDB, polars, a crash-restarted sync) sees either the old file or the new one,
never half of one. Temp names start with "." and end in ".tmp", so `*.parquet` globs never match
them; stale ones left by a killed process are removed by the next writer that takes the
data directory's lock (`pipelines.leftovers`).

A file that cannot be read (cut short, overwritten, not Parquet) raises `UnreadableFileError`,
which names it: `tally sync` and `tally warehouse` move such files to the quarantine before they
read the lake (`pipelines.quarantine`), so a reader meets one only if it broke during a run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Generic, Protocol, TypeVar, cast, overload

import polars as pl

from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake_store import FileInfo, LakeFile, ObjectPath, lake_root, put_file, readable
from pipelines.s3_settings import S3Settings

MONEY = pl.Decimal(38, 18)
TIMESTAMP = pl.Datetime("us", "UTC")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._+\-]+$")
RootT = TypeVar("RootT", Path, ObjectPath)


class LakeError(Exception):
    """A frame cannot be landed as it is (missing columns, lossy decimals, bad partition value)."""


class UnreadableFileError(OperatorError):
    """A landed file cannot be read (truncated, garbage, not Parquet); names the file."""

    exit_code = ExitCode.DATA

    def __init__(self, path: LakeFile, error: BaseException | str) -> None:
        self.path = path
        self.reason = error if isinstance(error, str) else error_text(error)
        super().__init__(
            f"lake file {path} cannot be read: {self.reason}",
            "run `tally warehouse` or `tally sync`: they move unreadable files to the quarantine, "
            "and the next sync fetches what they held again",
        )


def error_text(error: BaseException) -> str:
    """A reader's error as one line (polars prefixes its messages with the format's name)."""
    text = " ".join(str(error).split()).rstrip(".") or type(error).__name__
    return text.removeprefix("parquet: ")


@contextmanager
def reading(path: LakeFile) -> Iterator[None]:
    """Turn a reader's failure on the file `path` into an `UnreadableFileError` naming it."""
    try:
        yield
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        # polars panics on some broken pages (after printing the panic on stderr)
        raise UnreadableFileError(path, error) from error


@dataclass(frozen=True)
class Dataset:
    """A lake dataset: its columns (polars types), key, and Hive partition columns."""

    name: str
    schema: Mapping[str, pl.DataType]
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        missing = [c for c in (*self.key, *self.partition_by) if c not in self.schema]
        if missing:
            raise LakeError(f"dataset {self.name}: key/partition columns not in schema: {missing}")

    @property
    def file_columns(self) -> list[str]:
        """Columns stored inside the files (partition columns live in the path)."""
        return [c for c in self.schema if c not in self.partition_by]


@dataclass(frozen=True)
class LandResult(Generic[RootT]):
    dataset: str
    files: tuple[RootT, ...]
    rows: int


class LakeSettings(Protocol):
    """What `Lake.of` reads (`pipelines.config.Settings`)."""

    @property
    def lake_location(self) -> str: ...

    @property
    def s3(self) -> S3Settings | None: ...


class Lake(Generic[RootT]):
    """A lake rooted at `root` (a directory, created on first write; or an S3 prefix, given as
    an `ObjectPath` or an `s3://bucket/prefix` URL reached through the `AWS_*` environment)."""

    # Typed by its root: `Lake(tmp_path)` is a `Lake[Path]` whose files are `Path`s; a lake
    # from the settings (`Lake.of`) may be either.
    @overload
    def __init__(self: Lake[Path], root: Path | str) -> None: ...
    @overload
    def __init__(self: Lake[ObjectPath], root: ObjectPath) -> None: ...
    def __init__(self, root: LakeFile | str) -> None:
        self.root: RootT = cast(
            RootT, root if isinstance(root, ObjectPath) else lake_root(str(root))
        )

    @staticmethod
    def of(settings: LakeSettings) -> Lake[Any]:
        """The lake the settings name: `lake_url` on S3, else `<data_dir>/lake`."""
        root = lake_root(settings.lake_location, settings.s3)
        if isinstance(root, ObjectPath):
            return Lake(root)
        return Lake(root)  # the other overload

    @property
    def location(self) -> str:
        """The root as text: an absolute directory or `s3://bucket/prefix`."""
        return str(self.root)

    @property
    def remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    @property
    def s3(self) -> S3Settings | None:
        """How to reach the lake's object store (None: a local lake)."""
        return self.root.store.settings if isinstance(self.root, ObjectPath) else None

    def listed(self, dataset: Dataset) -> list[FileInfo]:
        """`files(dataset)` with their stamps (`FileInfo`): one listing on S3, a `stat` each
        locally (a file gone meanwhile is left out)."""
        if isinstance(self.root, ObjectPath):
            top = self.dataset_dir(dataset)
            pattern = "/".join([*(f"{name}=*" for name in dataset.partition_by), "*.parquet"])
            return [
                FileInfo(path, size, mtime_ns, 0)
                for path, size, mtime_ns in top.matching(pattern)
                if not path.name.startswith(".")
            ]
        found = []
        for path in self.files(dataset):
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved away (quarantined) while listed
                continue
            found.append(FileInfo(path, stat.st_size, stat.st_mtime_ns, stat.st_ino))
        return found

    # -- paths ---------------------------------------------------------------------------------

    def dataset_dir(self, dataset: Dataset) -> RootT:
        return self.root / dataset.name

    def partition_dir(self, dataset: Dataset, values: Mapping[str, Any]) -> RootT:
        path = self.dataset_dir(dataset)
        for column in dataset.partition_by:
            if column not in values:
                raise LakeError(f"dataset {dataset.name}: partition value {column!r} missing")
            path = path / f"{column}={_partition_text(dataset, column, values[column])}"
        return path

    def glob(self, dataset: Dataset) -> str:
        """An absolute glob of every file of the dataset (for DuckDB views)."""
        depth = "/".join("*" for _ in dataset.partition_by)
        return (
            str(self.dataset_dir(dataset) / depth / "*.parquet")
            if depth
            else str(self.dataset_dir(dataset) / "*.parquet")
        )

    def files(self, dataset: Dataset, **partition: Any) -> list[RootT]:
        """Landed files, optionally narrowed to a partition prefix (in `partition_by` order).

        Only files where the dataset keeps them (`<col>=<value>/…` in `partition_by` order, as
        `glob` for DuckDB): a file put anywhere else is never read as part of the dataset."""
        base = self.dataset_dir(dataset)
        rest: list[str] = list(dataset.partition_by)
        while rest and rest[0] in partition:
            name = rest.pop(0)
            base = base / f"{name}={_partition_text(dataset, name, partition[name])}"
        pattern = "/".join([*(f"{name}=*" for name in rest), "*.parquet"])
        # on S3 one listing of the prefix: there is no directory to ask for first
        if isinstance(base, Path) and not base.is_dir():
            return []
        return sorted(p for p in base.glob(pattern) if not p.name.startswith("."))

    # -- writing -------------------------------------------------------------------------------

    def land(
        self,
        dataset: Dataset,
        frame: pl.DataFrame,
        *,
        stem: str,
        partition: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> LandResult:
        """Write `frame` as the window `stem`: one file per partition, replacing earlier copies.

        Rows repeated inside the window are deduplicated on the key, the last one winning. With
        `partition` given, every row must belong to it, and an empty frame still lands: an empty
        file says "fetched, nothing there", which a missing file must never be mistaken for.
        `metadata` goes into each file's footer (see `notes`).
        """
        _check_stem(stem)
        typed, inside = self._conform_within(dataset, frame, partition)
        if inside:
            assert partition is not None
            values = {c: partition[c] for c in dataset.partition_by}
            parts = [(values, _columns(typed, dataset.file_columns))]  # (the usual case)
        else:
            parts = list(self._split(dataset, typed))
        if partition is not None:
            wanted = {c: str(partition[c]) for c in dataset.partition_by}
            strays = [v for v, _ in parts if {c: str(x) for c, x in v.items()} != wanted]
            if strays:
                raise LakeError(f"dataset {dataset.name}: rows outside partition {wanted}")
            if not parts:
                parts = [(dict(partition), typed.select(dataset.file_columns))]
        written = [
            self._write_file(
                self.partition_dir(dataset, values) / f"{stem}.parquet", part, metadata
            )
            for values, part in parts
        ]
        return LandResult(dataset.name, tuple(written), typed.height)

    def merge(self, dataset: Dataset, frame: pl.DataFrame, *, stem: str = "data") -> LandResult:
        """Upsert `frame` into the partition file `stem`: old ∪ new, deduplicated, new wins."""
        _check_stem(stem)
        typed = self._conform(dataset, frame)
        written = []
        rows = 0
        for values, part in self._split(dataset, typed):
            target = self.partition_dir(dataset, values) / f"{stem}.parquet"
            if target.exists():
                with reading(target):
                    old = pl.read_parquet(readable(target)).select(dataset.file_columns)
                old = old.cast({c: t for c, t in dataset.schema.items() if c in old.columns})
                part = _dedupe(dataset, pl.concat([old, part], how="vertical"))
            written.append(self._write_file(target, part))
            rows += part.height
        return LandResult(dataset.name, tuple(written), rows)

    def _conform(self, dataset: Dataset, frame: pl.DataFrame) -> pl.DataFrame:
        return self._conform_within(dataset, frame, None)[0]

    def _conform_within(
        self, dataset: Dataset, frame: pl.DataFrame, partition: Mapping[str, Any] | None
    ) -> tuple[pl.DataFrame, bool]:
        """`frame` typed as declared, checked, deduplicated and sorted; and whether every row
        belongs to `partition` (`_inside`; False without one). The facts checked come from
        one polars query. (Eager frames: a lazy query's `collect` lets polars pick its
        engine, the streaming one, which costs twice as much on a day's rows.)"""
        missing = [c for c in dataset.schema if c not in frame.columns]
        if missing:
            raise LakeError(f"dataset {dataset.name}: frame lacks columns {missing}")
        extra = [c for c in frame.columns if c not in dataset.schema]
        if extra:
            raise LakeError(f"dataset {dataset.name}: frame has undeclared columns {extra}")
        for column, dtype in dataset.schema.items():
            if dtype == MONEY and frame.schema[column] != MONEY:
                _check_exact_money(dataset, column, frame[column])
        typed = frame.select([pl.col(c).cast(t, strict=True) for c, t in dataset.schema.items()])
        key, order = list(dataset.key), _order(dataset, dataset.schema)
        inside = _inside(dataset, partition)
        facts = typed.select(
            *(pl.col(c).null_count().alias(f"nulls {c}") for c in key),
            *(pl.col(c).n_unique().alias(f"distinct {c}") for c in key),
            (inside if inside is not None else pl.lit(False)).alias("inside"),
        )
        fact = facts.row(0, named=True)
        nulls = [c for c in key if fact[f"nulls {c}"]]
        if nulls:
            raise LakeError(f"dataset {dataset.name}: key columns with nulls: {nulls}")
        if key and typed.height and typed.height not in (fact[f"distinct {c}"] for c in key):
            rows = _dedupe(dataset, typed)  # a key repeated: the last one wins
        else:
            rows = typed.sort(order) if order else typed
        return rows, bool(fact["inside"])

    def _split(
        self, dataset: Dataset, frame: pl.DataFrame
    ) -> Iterable[tuple[dict[str, Any], pl.DataFrame]]:
        if not dataset.partition_by:
            yield {}, frame.select(dataset.file_columns)
            return
        for keys, part in frame.group_by(list(dataset.partition_by), maintain_order=True):
            values = dict(zip(dataset.partition_by, keys, strict=True))
            yield values, part.select(dataset.file_columns)

    def _write_file(
        self, target: RootT, frame: pl.DataFrame, metadata: Mapping[str, str] | None = None
    ) -> RootT:
        put_file(
            target,
            lambda handle: frame.write_parquet(
                handle,
                compression="zstd",
                # level 1: about a quarter less CPU than polars' default level, files within
                # a percent of its size (the lake's rows are mostly text that repeats)
                compression_level=1,
                statistics=True,
                metadata=dict(metadata) if metadata else None,
            ),
        )
        return target

    # -- reading -------------------------------------------------------------------------------

    def scan(self, dataset: Dataset, **partition: Any) -> pl.LazyFrame:
        """All landed rows of the dataset (or of a partition prefix), typed as declared."""
        files = self.files(dataset, **partition)
        if not files:
            return pl.LazyFrame(schema=dict(dataset.schema))
        frames = []
        top = self.dataset_dir(dataset)
        for path in files:
            with reading(path):  # the footer only: a file cut short or overwritten fails here
                stream = readable(path)
                pl.read_parquet_schema(stream)
            if not isinstance(stream, Path):
                stream.seek(0)
            values = _partition_values(_relative(path, top))
            frames.append(
                pl.scan_parquet(stream).with_columns(
                    pl.lit(values[c]).cast(dataset.schema[c]).alias(c) for c in dataset.partition_by
                )
            )
        return pl.concat(frames, how="diagonal_relaxed").select(
            pl.col(c).cast(t) for c, t in dataset.schema.items()
        )

    @staticmethod
    def notes(path: LakeFile) -> dict[str, str]:
        """The key-value notes a landed file carries in its footer (`land(metadata=)`)."""
        with reading(path):
            stored = pl.read_parquet_metadata(readable(path))
        return {k: v for k, v in stored.items() if not k.startswith("ARROW:")}

    def stems(self, dataset: Dataset, **partition: Any) -> set[str]:
        """The windows landed in a partition (file stems)."""
        return {p.stem for p in self.files(dataset, **partition)}

    def max_of(self, dataset: Dataset, column: str, **partition: Any) -> Any:
        """The largest value of `column` landed (None when nothing is)."""
        return self.scan(dataset, **partition).select(pl.col(column).max()).collect().item()


def _inside(dataset: Dataset, partition: Mapping[str, Any] | None) -> pl.Expr | None:
    """Whether every row of a typed frame belongs to `partition`, told by its text columns
    alone (as `land` compares them: by their text); None when another column type (or no
    partition) leaves it to `_split`."""
    columns = dataset.partition_by
    if partition is None or not columns:
        return None
    if any(dataset.schema[c] != pl.String for c in columns):
        return None
    inside = pl.all_horizontal(pl.col(c) == str(partition[c]) for c in columns)
    return inside.fill_null(False).all()


def _columns(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """The columns `names` of `frame`, as they are (no polars query)."""
    return pl.DataFrame([frame.get_column(name) for name in names])


def _order(dataset: Dataset, columns: Iterable[str]) -> list[str]:
    """The columns rows are sorted by (`sort_by`, else the key), those among `columns`."""
    present = set(columns)
    return [c for c in dataset.sort_by or dataset.key if c in present]


def _dedupe(dataset: Dataset, frame: pl.DataFrame) -> pl.DataFrame:
    # Inside one partition the partition columns are constant and absent from the frame.
    key = [c for c in dataset.key if c in frame.columns]
    distinct = frame.select(pl.col(key).n_unique()).row(0) if key and frame.height else ()
    if frame.height in distinct:  # one key column alone tells every row apart: no repeat
        deduped = frame
    else:
        deduped = frame.unique(subset=key, keep="last", maintain_order=True)
    order = _order(dataset, deduped.columns)
    return deduped.sort(order) if order else deduped


def _check_exact_money(dataset: Dataset, column: str, series: pl.Series) -> None:
    """Refuse a value that DECIMAL(38,18) would round or overflow (polars would do it silently)."""
    if series.dtype == pl.Null:
        return
    where = f"dataset {dataset.name}: column {column}"
    if not isinstance(series.dtype, pl.Decimal):
        raise LakeError(f"{where}: expected Decimal values, got {series.dtype}")
    try:
        narrowed = series.cast(MONEY, strict=True)
    except pl.exceptions.InvalidOperationError:
        raise LakeError(f"{where}: a value exceeds DECIMAL(38,18)") from None
    if (series.dtype.scale or 0) > MONEY.scale:
        lost = (narrowed.cast(series.dtype) != series).fill_null(False)
        if lost.any():
            row = int(lost.arg_max() or 0)
            raise LakeError(f"{where} row {row}: {series[row]} has more than 18 decimal places")


def _partition_text(dataset: Dataset, column: str, value: Any) -> str:
    text = str(value)
    if not _SAFE_VALUE.match(text):
        raise LakeError(f"dataset {dataset.name}: unsafe partition value {column}={text!r}")
    return text


def _relative(path: LakeFile, top: LakeFile) -> PurePath:
    if isinstance(path, ObjectPath) and isinstance(top, ObjectPath):
        return path.relative_to(top)
    assert isinstance(path, Path) and isinstance(top, Path)
    return path.relative_to(top)


def _partition_values(relative: PurePath) -> dict[str, str]:
    return dict(part.split("=", 1) for part in relative.parts[:-1])


def _check_stem(stem: str) -> None:
    if not _SAFE_VALUE.match(stem) or stem.startswith("."):
        raise LakeError(f"unsafe file stem {stem!r}")
