"""The warehouse's staging layer and macros: every lake dataset is read by exactly one staging
view (`staging.<dataset>_landed`) and deduplicated once on its key (`staging.<dataset>`, the
newest fetch winning); the views people query read staging, never the files; staging stays out of
the lists people see; and the exact-arithmetic macros of `000_macros.sql` are exact at the edges
of DECIMAL(38, 18), through the guarded read-only connection and in the `duckdb` shell."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from warehouse_build import build
from warehouse_query import reader

from pipelines.config import Settings
from pipelines.exchanges.registry import names
from pipelines.lake import MONEY, TIMESTAMP, Dataset, Lake
from pipelines.lake_datasets import MOVEMENTS
from warehouse.connect import connect
from warehouse.notebook import Warehouse
from warehouse.readonly import read
from warehouse.sources import (
    DATASETS,
    STAGING,
    ViewDefinitionError,
    fetch_time,
    render,
    view_files,
)

DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"
FIRST = datetime(2024, 3, 2, tzinfo=UTC)
LATER = datetime(2024, 3, 3, tzinfo=UTC)
WINDOWS = ("20240301T000000-20240301T010000", "20240301T010000-20240301T020000")
FETCH_TIMES = ("fetched_at", "detected_at")
# an exchange the build has rules for (a lake exchange without them is refused)
SPECIAL: dict[str, Any] = {
    "interval": "1h",
    "market": "BTC-EUR",
    "kind": "trade",
    "exchange": names()[0],
}
_READS = re.compile(r"read_parquet\(\s*'(?P<path>[^']*)'")


def value(column: str, dtype: pl.DataType, fetched: datetime) -> Any:
    """One row's value: the same in both fetches but for the fetch time."""
    if column in FETCH_TIMES:
        return fetched
    if column in SPECIAL:
        return SPECIAL[column]
    if dtype == MONEY:
        return Decimal("1.5")
    if dtype == TIMESTAMP:
        return datetime(2024, 3, 1, tzinfo=UTC)
    if dtype == MOVEMENTS:
        return [{"asset": "BTC", "amount": Decimal("1.5")}]
    if dtype == pl.Int64:
        return 7
    if dtype == pl.Boolean:
        return True
    return "x"


def land_twice(lake: Lake, dataset: Dataset) -> None:
    """The same row (one key) landed by two fetches, in two files."""
    for stem, fetched in zip(WINDOWS, (FIRST, LATER), strict=True):
        row = {c: [value(c, t, fetched)] for c, t in dataset.schema.items()}
        lake.land(dataset, pl.DataFrame(row, schema=dict(dataset.schema)), stem=stem)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("staging") / "data")
    lake = Lake(settings.lake_dir)
    for dataset in DATASETS.values():
        land_twice(lake, dataset)
    build(settings)
    return settings


@pytest.fixture()
def connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The guarded read-only connection (`warehouse.connect`), one for the module's tests."""
    return reader(settings.data_dir)


def test_each_lake_dataset_is_loaded_into_one_staging_table_and_no_view_reads_the_lake(
    settings: Settings, connection: duckdb.DuckDBPyConnection
) -> None:
    views = connection.execute("select sql from duckdb_views() where not internal").fetchall()
    assert [sql for (sql,) in views if _READS.search(sql)] == []
    lake = Lake(settings.lake_dir)
    for name, dataset in DATASETS.items():
        files = {str(path) for path in lake.files(dataset)}
        recorded = connection.execute(
            f"select filename from {STAGING}.landed_files where dataset = ?", [name]
        ).fetchall()
        loaded = connection.execute(f"select distinct filename from {STAGING}.{name}_landed")
        assert len(files) == 2, name
        assert {file for (file,) in recorded} == files, name
        assert {file for (file,) in loaded.fetchall()} == files, name


def test_staging_keeps_every_landed_row_and_the_newest_per_key(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    for name, dataset in DATASETS.items():
        landed = connection.execute(f"select * from {STAGING}.{name}_landed").fetchall()
        assert len(landed) == 2, name
        fetch_time = next((c for c in FETCH_TIMES if c in dataset.schema), None)
        if fetch_time is None:  # the quarantine index: nothing to deduplicate by
            continue
        newest = connection.execute(
            f"select {fetch_time}, filename from {STAGING}.{name}"
        ).fetchall()
        assert [(at, Path(file).stem) for at, file in newest] == [(LATER, WINDOWS[1])], name


def test_staging_reads_partition_values_as_text(connection: duckdb.DuckDBPyConnection) -> None:
    types = dict(
        connection.execute(
            "select column_name, data_type from duckdb_columns() "
            f"where schema_name = '{STAGING}' and table_name = 'fills_landed'"
        ).fetchall()
    )
    assert (types["exchange"], types["account"], types["filename"]) == ("VARCHAR",) * 3
    assert types["base_amount"] == "DECIMAL(38,18)"


def test_staging_stays_out_of_the_lists_people_see(settings: Settings) -> None:
    names = [view.name for view in view_files()]
    assert "macros" not in names
    assert build(settings).views == tuple(names)
    with Warehouse(settings.data_dir) as wh:
        assert wh.views() == sorted(names)
        staged = wh.frame(
            "select table_name from information_schema.tables where table_schema = ?", [STAGING]
        )["table_name"].to_list()
    newest = [name for name, dataset in DATASETS.items() if fetch_time(dataset) is not None]
    assert len(newest) == len(DATASETS) - 1  # the quarantine index: nothing says which is newer
    own = ["built_from", "exchange_rules", "landed_files"]
    assert sorted(staged) == sorted([*(f"{n}_landed" for n in DATASETS), *newest, *own])


def test_a_view_that_reads_the_lake_itself_is_refused(settings: Settings) -> None:
    text = (
        "select * from read_parquet('{lake}/fills/*/*/*.parquet', hive_partitioning=true, "
        "union_by_name=true)"
    )
    with pytest.raises(ViewDefinitionError, match=r"read it as staging\.fills"):
        render(text, Lake(settings.lake_dir))


def test_a_lake_with_nothing_landed_stages_empty_typed_relations(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    build(settings)
    with connect(settings.data_dir) as connection:
        for name in DATASETS:
            count = connection.execute(f"select count(*) from {STAGING}.{name}_landed")
            assert count.fetchone() == (0,), name
        types = dict(
            connection.execute(
                "select column_name, data_type from duckdb_columns() "
                f"where schema_name = '{STAGING}' and table_name = 'fills'"
            ).fetchall()
        )
    assert (types["exchange"], types["base_amount"]) == ("VARCHAR", "DECIMAL(38,18)")


# --- the macros ----------------------------------------------------------------------------------

LARGEST_FRACTION = Decimal("0.999999999999999999")
SMALLEST = Decimal("0.000000000000000001")
EDGES = [
    (SMALLEST, SMALLEST),  # 1e-36: all of it below the last decimal
    (Decimal("0.5"), SMALLEST),  # exactly half a unit: rounds up
    (Decimal("0.499999999999999999"), SMALLEST),  # just under half: rounds down
    (LARGEST_FRACTION, LARGEST_FRACTION),  # every fraction digit carried
    (Decimal("99999999.999999999999999999"), Decimal("999999999999.999999999999999999")),
    (Decimal("9999999999.999999999999999999"), Decimal("9.999999999999999999")),
    (Decimal("123456789.123456789123456789"), Decimal("0.000000001000000001")),
    (Decimal("61000"), Decimal("0.0016")),
    (Decimal(0), Decimal("99999999999999999999.999999999999999999")),
]
PRODUCT = (
    "select units_to_decimal(exact_round(p)), p['rest'] = 0 "
    "from (select exact_product(decimal_parts($a::decimal(38, 18)), "
    "decimal_parts($b::decimal(38, 18))) as p)"
)


def exact(a: Decimal, b: Decimal) -> tuple[Decimal, bool]:
    with localcontext() as context:
        context.prec = 80
        product = a * b
        rounded = product.quantize(SMALLEST, rounding=ROUND_HALF_UP)
    return rounded, rounded == product


def seeded_pairs(count: int) -> list[tuple[Decimal, Decimal]]:
    """Factors with every digit of the fraction in play, whose product fits DECIMAL(38, 18)."""
    rng = random.Random(13)

    def factor(whole_limit: int) -> Decimal:
        return Decimal(rng.randrange(whole_limit + 1)) + Decimal(rng.randrange(10**18)) * SMALLEST

    limits = [(0, 0), (10**4, 10**6), (10**8, 10**11), (10**9, 9)]
    return [(factor(a), factor(b)) for a, b in (rng.choice(limits) for _ in range(count))]


@pytest.mark.parametrize("a, b", [*EDGES, *seeded_pairs(40)])
def test_exact_product_is_exact_through_the_guarded_connection(
    connection: duckdb.DuckDBPyConnection, a: Decimal, b: Decimal
) -> None:
    result = read(connection, PRODUCT, {"a": str(a), "b": str(b)}).fetchone()
    assert result == exact(a, b)
    assert read(connection, PRODUCT, {"a": str(b), "b": str(a)}).fetchone() == exact(a, b)


@pytest.mark.parametrize(
    "close",
    [Decimal("1.08517"), Decimal("0.000000000001"), Decimal("99999999.999999999999"), Decimal(3)],
)
def test_an_inverted_close_is_the_quotient_rounded_once(
    connection: duckdb.DuckDBPyConnection, close: Decimal
) -> None:
    query = "select inverted_close(close_units($close::decimal(38, 18)))"
    (inverted,) = read(connection, query, {"close": str(close)}).fetchone() or (None,)
    with localcontext() as context:
        context.prec = 80
        assert inverted == (1 / close).quantize(SMALLEST, rounding=ROUND_HALF_UP)


def test_the_other_macros_at_their_edges(connection: duckdb.DuckDBPyConnection) -> None:
    largest = "99999999999999999999.999999999999999999::decimal(38, 18)"
    at = "timestamptz '2024-03-01 12:00:00+00'"
    checks = {
        f"decimal_units({largest})": 10**38 - 1,
        f"decimal_units(-{largest})": -(10**38) + 1,
        "decimal_units(-0.000000000000000001::decimal(38, 18))": -1,
        "units_to_decimal(-1)": -SMALLEST,
        f"units_to_decimal({10**38 - 1}::hugeint)": Decimal(
            "99999999999999999999.999999999999999999"
        ),
        "rounded_quotient(5, 2)": 3,
        "rounded_quotient(7, 3)": 2,
        "decimals_as_sent('1083.7200', 1)": 4,
        "decimals_as_sent('', 1.25)": 2,
        "decimals_as_sent('12', 12)": 0,
        "decimals_as_sent('0.1234567890123456789', 0)": 18,
        "own_fee(0.5, null, 'BTC')": Decimal("0.5"),
        "own_fee(0.5, 'EUR', 'BTC')": 0,
        "own_fee(null, null, 'BTC')": 0,
        "ranges_overlap(1, 2, 2, 3)": False,
        "ranges_overlap(1, 3, 2, 4)": True,
        f"within({at} + interval 1 hour, {at}, interval 1 hour, interval 1 hour)": True,
        f"within({at} - interval 61 minute, {at}, interval 1 hour, interval 72 hour)": False,
    }
    found = {sql: read(connection, f"select {sql}").fetchone() for sql in checks}
    assert found == {sql: (expected,) for sql, expected in checks.items()}


def test_the_duckdb_shell_runs_the_macros(settings: Settings, tmp_path: Path) -> None:
    query = (
        "select units_to_decimal(exact_round(exact_product(decimal_parts(1.5), "
        f"decimal_parts(2.25)))), (select count(*) from {STAGING}.fills)"
    )
    command = [str(DUCKDB_SHELL), "-readonly", "-csv", "-noheader", str(settings.warehouse_path)]
    shell = subprocess.run(
        [*command, "-c", query], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == "3.375000000000000000,1"
