"""The warehouse from a notebook: read-only, SQL in, polars frames out.

    from warehouse.notebook import Warehouse, reporting_currency

    wh = Warehouse(DATA_DIR)          # None: $TALLY_DATA_DIR, else the project's data directory
    wh.frame("select * from reconcile_balances where status <> 'ok'")
    currency = CURRENCY or reporting_currency()   # None: tally.toml's reporting_currency

Amounts stay exact: DuckDB's DECIMAL(38,18) arrives as polars `Decimal(38, 18)`; cast to
`Float64` only to draw. An INTERVAL (`in_transit`, `staleness`) arrives as a polars
`Duration("us")` (polars cannot read Arrow's interval type). `readable(frame)` turns the decimals
into their shortest exact text for tables a person reads.

`frame` and `value` run only SQL that reads, as `tally sql` does (`warehouse.readonly`: a COPY,
ATTACH, INSTALL, SET, CREATE… raises `ReadOnlyError`). `wh.connection` is the guarded DuckDB
connection itself, for the exports and the cost-basis engine: its settings keep it from files
outside the lake, other databases, extensions and setting changes, but only `frame` and `value`
check statements. Nothing here stops Python itself from writing: this guards against accidents.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.currencies import DEFAULT_REPORTING_CURRENCY
from warehouse.connect import WAREHOUSE_FILE, connect, warehouse_path
from warehouse.readonly import read

DATA_DIR_VARIABLE = "TALLY_DATA_DIR"
CONFIG_FILE = "tally.toml"

Params = Sequence[object] | Mapping[str, object] | None

# Arrow's month_day_nano_interval value: three little-endian integers in 16 bytes
_MONTH_DAY_NANO = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])
_DAY_US = 86_400_000_000


def default_data_dir(
    start: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """The data directory a notebook started in `start` (default: its working directory) means.

    In order: `$TALLY_DATA_DIR`; else, from `start` up through its parents, the first directory
    that has a `tally.toml` (its `data_dir`), a built warehouse in `data/`, or is the project
    root (`pyproject.toml`: its `data/`); else `start/data`. A notebook opened in `notebooks/`
    thus reads the repository's `./data`.
    """
    environ = os.environ if environ is None else environ
    if environ.get(DATA_DIR_VARIABLE):
        return Path(environ[DATA_DIR_VARIABLE]).expanduser().resolve()
    origin = _origin(start)
    config = find_config(origin)
    if config is not None:
        from pipelines.config import load_settings

        return load_settings(config, environ=environ).data_dir
    for directory in (origin, *origin.parents):
        if _is_project(directory):
            return directory / "data"
    return origin / "data"


def reporting_currency(
    start: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """What a notebook started in `start` values in unless told: the `reporting_currency` of the
    `tally.toml` that `default_data_dir` reads, else the built-in default (EUR)."""
    config = find_config(_origin(start))
    if config is None:
        return DEFAULT_REPORTING_CURRENCY
    from pipelines.config import load_settings

    environ = os.environ if environ is None else environ
    return load_settings(config, environ=environ).reporting_currency


def find_config(start: Path | str | None = None) -> Path | None:
    """From `start` up, the first `tally.toml` met before a directory that marks a project (a
    built warehouse in `data/`, a `pyproject.toml`); None when there is none."""
    origin = _origin(start)
    for directory in (origin, *origin.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory / CONFIG_FILE
        if _is_project(directory):
            return None
    return None


def _origin(start: Path | str | None) -> Path:
    return (Path.cwd() if start is None else Path(start)).resolve()


def _is_project(directory: Path) -> bool:
    return (directory / "data" / WAREHOUSE_FILE).is_file() or (
        directory / "pyproject.toml"
    ).is_file()


class Warehouse:
    """One read-only connection to `<data_dir>/warehouse.duckdb`, answering with polars frames."""

    def __init__(self, data_dir: Path | str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else default_data_dir()
        self.path = warehouse_path(self.data_dir)
        self._connection: duckdb.DuckDBPyConnection | None = connect(self.data_dir)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            raise RuntimeError(f"the warehouse connection to {self.path} is closed")
        return self._connection

    def frame(self, sql: str, params: Params = None) -> pl.DataFrame:
        """The query's rows as a polars frame (exact decimals, UTC datetimes, durations)."""
        table = read(self.connection, sql, params).to_arrow_table()
        for index, field in enumerate(table.schema):
            if pa.types.is_interval(field.type):
                table = table.set_column(
                    index, pa.field(field.name, pa.duration("us")), _durations(table[index])
                )
        result = pl.from_arrow(table)
        assert isinstance(result, pl.DataFrame)  # a Table always gives a DataFrame
        return result

    def value(self, sql: str, params: Params = None) -> Any:
        """The single value of a one-row, one-column query (None when it returns no row)."""
        row = read(self.connection, sql, params).fetchone()
        return None if row is None else row[0]

    def views(self) -> list[str]:
        """The names of the warehouse's models, tables and views (not its `staging` layer)."""
        rows = self.connection.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'main' order by table_name"
        ).fetchall()
        return [name for (name,) in rows]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({str(self.data_dir)!r})"


def _durations(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """DuckDB intervals as microsecond durations; a month counts 30 days, as DuckDB's epoch()."""
    chunks = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        values = np.frombuffer(
            chunk.buffers()[1], dtype=_MONTH_DAY_NANO, count=chunk.offset + len(chunk)
        )[chunk.offset :]
        days = values["months"].astype(np.int64) * 30 + values["days"]
        micros = days * _DAY_US + values["nanoseconds"] // 1000
        nulls = chunk.is_null().to_numpy(zero_copy_only=False)
        chunks.append(pa.array(micros, type=pa.duration("us"), mask=nulls))
    return pa.chunked_array(chunks, type=pa.duration("us"))


def frame(sql: str, params: Params = None, *, data_dir: Path | str | None = None) -> pl.DataFrame:
    """One query, one frame: opens the warehouse read-only, asks, closes it again."""
    with Warehouse(data_dir) as warehouse:
        return warehouse.frame(sql, params)


def readable(table: pl.DataFrame) -> pl.DataFrame:
    """`table` with its decimal columns as their shortest exact text ("0.0267663", "-138")."""
    decimals = [name for name, dtype in table.schema.items() if isinstance(dtype, pl.Decimal)]
    if not decimals:
        return table
    text = pl.col(decimals).cast(pl.String)
    # only a number with a fractional part loses trailing zeros ("100" stays "100")
    trimmed = text.str.replace(r"(\.\d*?)0+$", "${1}").str.strip_suffix(".")
    return table.with_columns(
        pl.when(text.str.contains(".", literal=True)).then(trimmed).otherwise(text)
    )
