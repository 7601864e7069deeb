"""The view definitions in `warehouse/sql/` and how they are bound to one lake.

Each `NNN_name.sql` file holds one lower-case `select` (CTEs reading top to bottom); the file
name gives the view's name, the number the order of creation (a view may read the views before
it). A file reads the lake through

    read_parquet('{lake}/<dataset>/<glob>', hive_partitioning=true, union_by_name=true, ...)

or lists its files through `glob('{lake}/<dataset>/<glob>')`. `render` replaces `{lake}` with the
lake's absolute path, so that the catalog opens from any directory. DuckDB binds a view when it
is created and refuses a `read_parquet` glob that matches no file, so a dataset with nothing
landed yet is read as an empty relation typed like the dataset instead (rebuild after a sync to
see its rows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl

from pipelines.lake import MONEY, TIMESTAMP, Dataset, Lake
from pipelines.lake_datasets import ALL, GAPS, MOVEMENTS, QUARANTINED_FILES

DATASETS: Mapping[str, Dataset] = {
    **ALL,
    GAPS.name: GAPS,
    QUARANTINED_FILES.name: QUARANTINED_FILES,
}
_FILE = re.compile(r"^(\d{3})_([a-z][a-z0-9_]*)\.sql$")
_READ = re.compile(
    r"read_parquet\(\s*'\{lake\}/(?P<dataset>[a-z_]+)/(?P<glob>[^']*)'(?P<options>[^)]*)\)"
)
_GLOB = re.compile(r"glob\(\s*'\{lake\}/(?P<dataset>[a-z_]+)/(?P<glob>[^']*)'\s*\)")


class ViewDefinitionError(ValueError):
    """A view file is misnamed or reads the lake in a way the builder cannot bind."""


@dataclass(frozen=True)
class ViewFile:
    order: int
    name: str
    text: str


def view_files(directory: Path | None = None) -> list[ViewFile]:
    """Every `NNN_name.sql` file, in order (`directory` defaults to the packaged `sql/`)."""
    root = directory if directory is not None else Path(str(resources.files("warehouse") / "sql"))
    files = []
    for path in sorted(root.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ViewDefinitionError(f"{path.name}: view files are named NNN_name.sql")
        files.append(ViewFile(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ViewDefinitionError(f"views defined twice: {duplicates}")
    return sorted(files, key=lambda f: (f.order, f.name))


def render(text: str, lake: Lake) -> str:
    """The view's SQL bound to `lake`: absolute paths, empty datasets as typed empty relations."""

    def read(match: re.Match[str]) -> str:
        dataset = _dataset(match.group("dataset"))
        glob = _checked_glob(lake, dataset, match.group("glob"))
        if not _has_files(lake, glob):
            return _empty_relation(dataset, filename="filename=true" in _squash(match["options"]))
        return f"read_parquet({_quote(str(lake.root / glob))}{match.group('options')})"

    def listing(match: re.Match[str]) -> str:
        dataset = _dataset(match.group("dataset"))
        glob = _checked_glob(lake, dataset, match.group("glob"))
        return f"glob({_quote(str(lake.root / glob))})"

    rendered = _GLOB.sub(listing, _READ.sub(read, text))
    if "{lake}" in rendered:
        raise ViewDefinitionError("'{lake}' used outside read_parquet('{lake}/…') or glob(…)")
    return rendered


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ViewDefinitionError(f"unknown lake dataset {name!r}") from None


def _checked_glob(lake: Lake, dataset: Dataset, glob: str) -> str:
    """`<dataset>/<glob>`, which must be the lake's own glob of the dataset."""
    relative = f"{dataset.name}/{glob}"
    expected = str(Path(lake.glob(dataset)).relative_to(lake.root))
    if relative != expected:
        raise ViewDefinitionError(
            f"dataset {dataset.name} is globbed as {expected}, not {relative}"
        )
    return relative


def _has_files(lake: Lake, glob: str) -> bool:
    return any(not p.name.startswith(".") for p in lake.root.glob(glob))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.lower())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_relation(dataset: Dataset, *, filename: bool) -> str:
    columns = [
        f"null::{'varchar' if name in dataset.partition_by else duckdb_type(dtype)} as {name}"
        for name, dtype in dataset.schema.items()
    ]
    if filename:
        columns.append("null::varchar as filename")
    return f"(select {', '.join(columns)} where false)"


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB type a lake column reads as."""
    if dtype == MONEY:
        return "decimal(38, 18)"
    if dtype == TIMESTAMP:
        return "timestamptz"
    if dtype == MOVEMENTS:
        return "struct(asset varchar, amount decimal(38, 18))[]"
    simple = {pl.String: "varchar", pl.Boolean: "boolean", pl.Int64: "bigint"}
    for polars_type, name in simple.items():
        if dtype == polars_type:
            return name
    raise ViewDefinitionError(f"no DuckDB type for lake type {dtype}")
