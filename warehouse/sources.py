"""The catalog's definitions in `warehouse/sql/` and how they are bound to one lake.

Three layers, created in this order:

1. Macros: `NNN_macros.sql` holds the `create macro` statements (the exact-arithmetic helpers),
   applied as written.
2. Staging, loaded from the lake's dataset definitions (`warehouse.staging`): schema `staging`
   holds, per dataset, `staging.<dataset>_landed`, every landed row (partition columns as text,
   `filename` the file it came from), the only table loaded from the dataset's files, and
   `staging.<dataset>`, one row per the dataset's key, the newest fetch winning (datasets
   stamped with a fetch time).
3. Models: each other `NNN_name.sql` file holds one lower-case `select` (CTEs reading top to
   bottom); the file name gives the model's name, the number the order of creation (a model may
   read the models before it), and `models.toml` whether it is stored as a table or computed as
   a view, and its contract (`warehouse.contracts`). A model reads the lake through staging, and
   may list a dataset's files through `glob('{lake}/<dataset>/<glob>')`.

Lake paths are absolute (`render` replaces `{lake}`), so that the catalog opens from any
directory. A dataset with nothing landed yet is staged as an empty table typed like the dataset.
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
STAGING = "staging"
MACROS = "macros"
# the column saying which of two rows with one key is the newer (the later one wins)
_FETCH_TIMES = ("fetched_at", "detected_at")
_FILE = re.compile(r"^(\d{3})_([a-z][a-z0-9_]*)\.sql$")
_READ = re.compile(r"read_parquet\(\s*'\{lake\}/(?P<dataset>[a-z_]+)/")
GLOB = re.compile(r"glob\(\s*'\{lake\}/(?P<dataset>[a-z_]+)/(?P<glob>[^']*)'\s*\)")


class ViewDefinitionError(ValueError):
    """A view file is misnamed or reads the lake in a way the builder cannot bind."""


@dataclass(frozen=True)
class ViewFile:
    order: int
    name: str
    text: str


def view_files(directory: Path | None = None) -> list[ViewFile]:
    """Every `NNN_name.sql` view file, in order (`directory` defaults to the packaged `sql/`)."""
    return [f for f in _sql_files(directory) if f.name != MACROS]


def macro_files(directory: Path | None = None) -> list[ViewFile]:
    """The `NNN_macros.sql` file, if there is one: `create macro` statements."""
    return [f for f in _sql_files(directory) if f.name == MACROS]


def _sql_files(directory: Path | None) -> list[ViewFile]:
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


def fetch_time(dataset: Dataset) -> str | None:
    """The column saying which of two rows with one key is the newer (None: the dataset has
    none, and is not deduplicated)."""
    return next((c for c in _FETCH_TIMES if c in dataset.schema), None)


def lake_exchanges(lake: Lake) -> set[str]:
    """Every exchange whose rows some dataset of `lake` holds: its `exchange=` partitions that
    hold a file."""
    found = set()
    for dataset in DATASETS.values():
        if dataset.partition_by[:1] != ("exchange",):
            continue
        top = lake.dataset_dir(dataset)
        if not isinstance(top, Path):  # one listing: the exchange of each file the lake holds
            found |= {
                f.relative_to(top).parts[0].removeprefix("exchange=") for f in lake.files(dataset)
            }
            continue
        for partition in top.glob("exchange=*"):
            if any(not p.name.startswith(".") for p in partition.rglob("*.parquet")):
                found.add(partition.name.removeprefix("exchange="))
    return found


def render(text: str, lake: Lake) -> str:
    """A view's SQL bound to `lake`: its file listings with absolute paths."""
    read = _READ.search(text)
    if read is not None:
        raise ViewDefinitionError(
            f"read_parquet of dataset {read['dataset']}: read it as {STAGING}.{read['dataset']}"
            f" (or {STAGING}.{read['dataset']}_landed)"
        )

    def listing(match: re.Match[str]) -> str:
        dataset = _dataset(match.group("dataset"))
        glob = _checked_glob(lake, dataset, match.group("glob"))
        return f"glob({quote(str(lake.root / glob))})"

    rendered = GLOB.sub(listing, text)
    if "{lake}" in rendered:
        raise ViewDefinitionError("'{lake}' used outside glob('{lake}/…')")
    return rendered


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise ViewDefinitionError(f"unknown lake dataset {name!r}") from None


def _checked_glob(lake: Lake, dataset: Dataset, glob: str) -> str:
    """`<dataset>/<glob>`, which must be the lake's own glob of the dataset."""
    relative = f"{dataset.name}/{glob}"
    expected = lake.glob(dataset).removeprefix(f"{lake.location}/")
    if relative != expected:
        raise ViewDefinitionError(
            f"dataset {dataset.name} is globbed as {expected}, not {relative}"
        )
    return relative


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def empty_relation(dataset: Dataset) -> str:
    columns = [
        f"null::{'varchar' if name in dataset.partition_by else duckdb_type(dtype)} as {name}"
        for name, dtype in dataset.schema.items()
    ]
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
