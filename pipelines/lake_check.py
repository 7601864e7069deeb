"""Which lake files cannot be read, and why: the integrity scan under the quarantine and doctor.

A file is unreadable when it is not where its dataset keeps files (`<dataset>/<col>=<value>/…`
in the dataset's partition order), when its footer cannot be read (cut short, overwritten, not
Parquet), when a data page cannot be decoded, or when its columns are not its dataset's (a key
column missing, or a column whose values do not cast, strictly, to the type the dataset
declares: a file of an older but compatible type, e.g. DECIMAL(38,0) where the dataset now
declares DECIMAL(38,18), is read by `Lake.scan` and is good). Columns the file lacks beyond the
key are allowed: a file landed before a field was added to its record has none.

Files are read with pyarrow, which reports a broken file as an error (polars may panic on one).
An error that is the environment's, not the file's (an `OSError` carrying an errno: too many
open files, an I/O error, a permission; pyarrow running out of memory), is raised as
`LakeReadError`: the scan stops and says so, and no file is called unreadable for it.
A page whose bytes changed but still decode cannot be told from a good one: tally's files carry
no page checksums.

Cost: the footer costs about 0.1 ms a file, a full read about 0.5 ms plus the time to decode
its pages. A full read happens once per file version: a file that passed is remembered in a
cache (`<data_dir>/.lake-verified.json`: its size, mtime and inode, and what it held) and
skipped while those are unchanged, so a check of a lake already checked costs one `stat` a
file. The cache is only a shortcut: deleted, it is rebuilt by reading everything once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from pipelines.atomic import write_text
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake import (
    MONEY,
    TIMESTAMP,
    Dataset,
    Lake,
    LakeError,
    _check_exact_money,
    error_text,
)
from pipelines.lake_store import LakeFile, ObjectPath

if TYPE_CHECKING:
    import pyarrow as pa

CACHE_NAME = ".lake-verified.json"
MISPLACED = "not where dataset"
_CACHE_VERSION = 1
Kind = str
Stamp = tuple[int, int, int]
"""A file's version: (size, mtime_ns, inode) locally; (size, mtime_ns to the second, 0) on S3."""
"""How a file failed: "placement", "footer", "page" or "columns"."""


class LakeReadError(OperatorError):
    """Reading a lake file failed for a reason of the environment, not of the file (too many
    open files, an I/O error, no memory): nothing can be said of the file, nothing is moved."""

    exit_code = ExitCode.DATA

    def __init__(self, path: LakeFile, error: BaseException) -> None:
        self.path = path
        text = error.strerror if isinstance(error, OSError) and error.strerror else None
        super().__init__(
            f"cannot read {path} to check the lake: {text or error_text(error)}",
            "this is the machine's problem, not the file's: nothing was moved; fix it (e.g. "
            "raise the open-files limit, free memory, check the disk, or the file's owner and "
            "permissions) and run the command again",
        )


@dataclass(frozen=True)
class Verified:
    """What the last full read of one version of a file found."""

    size: int
    mtime_ns: int
    inode: int
    rows: int
    first: str | None  # ISO time of the dataset's time column, smallest and largest
    last: str | None

    def same_version(self, stamp: Stamp) -> bool:
        return (self.size, self.mtime_ns, self.inode) == stamp


@dataclass(frozen=True)
class BadFile:
    """A lake file that cannot be read, with the reader's reason and what it last held."""

    path: LakeFile  # absolute (a path, or an object of a lake on S3)
    relative: str  # to the lake root, e.g. "fills/exchange=bitstamp/account=main/x.parquet"
    dataset: Dataset
    reason: str
    last_verified: Verified | None  # from before it broke, when it was ever checked
    kind: Kind = "footer"
    version: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) when it was checked

    @property
    def misplaced(self) -> bool:
        """Not where its dataset keeps files: never read as part of it."""
        return self.kind == "placement"

    def same_version(self, stamp: Stamp) -> bool:
        """Whether `stamp` (`stamp_of`) is of the version of the file that was checked."""
        return self.version == stamp


@dataclass(frozen=True)
class LakeCheck:
    files: int  # files checked
    read_fully: int  # of which read in full now (the others were verified before, unchanged)
    bad: tuple[BadFile, ...]
    seconds: float


def check_lake(
    lake: Lake, datasets: Iterable[Dataset], cache: Path | None, *, save: bool
) -> LakeCheck:
    """Check every file of `datasets` in `lake`; with `save`, remember what passed in `cache`
    (a read-only caller, `tally status` or `tally doctor`, uses the cache without writing it)."""
    began = time.monotonic()
    known = load_cache(cache)
    kept: dict[str, Verified] = {}
    bad: list[BadFile] = []
    files = read_fully = 0
    for dataset in datasets:
        for relative, listed in _listing(lake, dataset):
            path = lake.root / relative
            if listed is None:
                try:
                    stamp = stamp_of(os.stat(path))
                except FileNotFoundError:  # replaced by a writer while a reader checks
                    continue
            else:
                stamp = listed
            files += 1
            earlier = known.get(relative)
            if earlier is not None and earlier.same_version(stamp):
                kept[relative] = earlier
                continue
            read_fully += 1
            failure, verified = check_file(lake, dataset, path, stamp)
            if failure is None and verified is not None:
                kept[relative] = verified
            elif failure is not None and path.exists():
                kind, reason = failure
                bad.append(BadFile(path, relative, dataset, reason, earlier, kind, stamp))
    if save and cache is not None and kept != known:
        save_cache(cache, kept)
    return LakeCheck(files, read_fully, tuple(bad), time.monotonic() - began)


def stamp_of(stat: os.stat_result) -> Stamp:
    """A local file's version: (size, mtime_ns, inode)."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def check_file(
    lake: Lake, dataset: Dataset, path: LakeFile, stamp: Stamp
) -> tuple[tuple[Kind, str] | None, Verified | None]:
    """((how, why) the file cannot be read, None) or (None, what it holds); raises
    `LakeReadError` when the environment, not the file, fails the read (on S3: any failure to
    fetch the object, which says nothing of its bytes)."""
    misplaced = _placement(lake, dataset, path)
    if misplaced:
        return ("placement", misplaced), None
    try:  # (here, not at the top: pyarrow imports numpy, whose BLAS threads spin a while)
        import pyarrow as pa
        import pyarrow.parquet as pq
    except OSError as error:  # no descriptor left to import it: the machine fails the read
        raise LakeReadError(path, error) from error

    source: Path | pa.BufferReader = path if isinstance(path, Path) else _fetched(path)
    try:
        parquet = pq.ParquetFile(source)
        schema = pl.from_arrow(parquet.schema_arrow.empty_table()).schema  # type: ignore[union-attr]
    except (OSError, pa.ArrowException) as error:
        _raise_if_environment(path, error)
        return ("footer", f"not a readable Parquet file: {error_text(error)}"), None
    missing = _missing_key(dataset, schema)
    if missing:
        return ("columns", missing), None
    try:
        table = parquet.read()
    except (OSError, pa.ArrowException) as error:
        _raise_if_environment(path, error)
        return ("page", f"a data page cannot be decoded: {error_text(error)}"), None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    wrong = _uncastable(dataset, frame)
    if wrong:
        return ("columns", wrong), None
    first = last = None
    column = time_column(dataset)
    if column is not None and column in frame.columns and frame.height:
        series = frame[column].cast(dataset.schema[column])
        first, last = _iso(series.min()), _iso(series.max())
    return None, Verified(*stamp, frame.height, first, last)


def _fetched(path: ObjectPath) -> pa.BufferReader:
    import pyarrow as pa

    try:
        return pa.BufferReader(path.read_bytes())
    except OSError as error:
        raise LakeReadError(path, error) from error


def _raise_if_environment(path: LakeFile, error: BaseException) -> None:
    """Raise `LakeReadError` for an error of the machine: an `OSError` with an errno (pyarrow
    sets one for a failed system call: EMFILE, EIO, EACCES; a damaged file's errors carry none)
    or pyarrow out of memory."""
    import pyarrow as pa

    if isinstance(error, pa.ArrowMemoryError) or (
        isinstance(error, OSError) and error.errno is not None
    ):
        raise LakeReadError(path, error) from error


def _listing(lake: Lake, dataset: Dataset) -> list[tuple[str, Stamp | None]]:
    """Every Parquet file under the dataset's directory relative to the lake root, sorted: what
    `Lake.files` lists and the files placed where it does not look (misplaced); with its stamp
    on S3 (the listing's: size, time to the second, 0), None locally (`stat` it). Walked with
    `os.walk`, several times faster than globbing `Path`s in a lake of many files."""
    top = lake.dataset_dir(dataset)
    if isinstance(top, ObjectPath):
        prefix = f"{top.parent.key}/" if top.parent.key else ""
        return [
            (found.key.removeprefix(prefix), (size, mtime_ns, 0))
            for found, size, mtime_ns in sorted(top.listing())
            if found.name.endswith(".parquet") and not found.name.startswith(".")
        ]
    found = []
    for directory, _, names in os.walk(top, onerror=_walk_error):
        base = os.path.relpath(directory, lake.root).replace(os.sep, "/")
        found += [f"{base}/{n}" for n in names if n.endswith(".parquet") and not n.startswith(".")]
    return [(relative, None) for relative in sorted(found)]


def _walk_error(error: OSError) -> None:
    """`os.walk` skips a directory it cannot list: a lake that looks empty is worse than a stop."""
    if isinstance(error, FileNotFoundError):  # no such dataset yet, or removed meanwhile
        return
    raise LakeReadError(Path(error.filename or "."), error) from error


def time_column(dataset: Dataset) -> str | None:
    """The column saying when a row happened (what a file covered, as far as its rows tell)."""
    for name in (*dataset.sort_by, "executed_at", "taken_at"):
        if dataset.schema.get(name) == TIMESTAMP:
            return name
    return None


def _placement(lake: Lake, dataset: Dataset, path: LakeFile) -> str | None:
    parts = path.relative_to(lake.dataset_dir(dataset)).parts[:-1]
    names = [part.split("=", 1)[0] if "=" in part else None for part in parts]
    if names == list(dataset.partition_by):
        return None
    layout = "/".join([dataset.name, *(f"{c}=…" for c in dataset.partition_by), "<name>.parquet"])
    return f"{MISPLACED} {dataset.name} keeps its files ({layout})"


def _missing_key(dataset: Dataset, schema: Mapping[str, pl.DataType]) -> str | None:
    stored = set(dataset.file_columns)
    missing = [c for c in dataset.key if c in stored and c not in schema]
    if missing:
        return f"wrong columns for dataset {dataset.name}: no key column {', '.join(missing)}"
    return None


def _uncastable(dataset: Dataset, frame: pl.DataFrame) -> str | None:
    """Why a column of `frame` cannot be read as the type its dataset declares: its values do
    not cast strictly (what `Lake.scan` casts, leniently), or a money column is not exact
    decimals (the rule of `Lake.land`); None when every column can."""
    stored = set(dataset.file_columns)
    for name, dtype in frame.schema.items():
        declared = dataset.schema.get(name)
        if name not in stored or declared is None or dtype == declared:
            continue
        wrong = (
            f"wrong columns for dataset {dataset.name}: {name} is {dtype}, "
            f"the dataset declares {declared}"
        )
        if declared == MONEY:
            try:
                _check_exact_money(dataset, name, frame[name])
            except LakeError:
                return wrong
            continue
        try:
            frame[name].cast(declared, strict=True)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
            return wrong
    return None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


# --- the cache -------------------------------------------------------------------------------


def load_cache(path: Path | None) -> dict[str, Verified]:
    """The files verified earlier (empty when there is no cache or it cannot be read)."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("version") != _CACHE_VERSION:
            return {}
        return {name: Verified(*entry) for name, entry in data["files"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # a cache is a shortcut: a broken one means reading everything once


def save_cache(path: Path, entries: Mapping[str, Verified]) -> None:
    data = {
        "version": _CACHE_VERSION,
        "files": {
            name: [v.size, v.mtime_ns, v.inode, v.rows, v.first, v.last]
            for name, v in sorted(entries.items())
        },
    }
    write_text(path, json.dumps(data, separators=(",", ":")))
