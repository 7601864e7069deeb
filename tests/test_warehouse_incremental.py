"""`tally warehouse` builds from the previous warehouse: it loads only the lake files that are
new or were replaced (a dataset whose new files bring a column its table lacks, whole), drops the
rows of files that are gone, and computes again the models that read what changed; the result is
the same, row for row, as a build from nothing (`--full`). A build whose lake has not
changed leaves the warehouse as it is; one whose definitions changed starts afresh.

The lake is the benchmark's synthetic one (`benchmarks.warehouse_bench`), small: both accounts'
fills, ledgers, transfers, candles, snapshots and schedules, every balance reconciling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from warehouse_build import build

import warehouse
from benchmarks.warehouse_bench import generate
from pipelines.config import Settings
from pipelines.datasets import CANDLES, FILLS, TRANSFERS
from pipelines.lake import Lake
from warehouse.build import build_summary
from warehouse.connect import connect
from warehouse.sources import DATASETS, STAGING, fetch_time, view_files

FILL_COUNT = 300
CANDLE_HOURS = 24 * 7


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic lake, landed once for the module: tests copy it."""
    data = tmp_path_factory.mktemp("incremental") / "data"
    lake = Lake(Settings(data_dir=data).lake_dir)
    generate(lake, FILL_COUNT)
    # a week of its two years of hourly candles: enough to price, and cheap to build
    for path in lake.files(CANDLES.dataset):
        pl.read_parquet(path, hive_partitioning=False).head(CANDLE_HOURS).write_parquet(path)
    return lake.root


def copied(lake: Path, tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    shutil.copytree(lake, settings.lake_dir)
    return settings


def partition_of(lake: Lake, path: Path) -> dict[str, str]:
    """The partition values a lake file's path names (`exchange=bitvavo/account=main/…`)."""
    relative = path.relative_to(lake.root).parts[1:-1]
    return dict(part.split("=", 1) for part in relative)


def models() -> list[str]:
    """Every model and every staging table a build writes from the lake."""
    staged = [f"{STAGING}.{name}_landed" for name in DATASETS]
    staged += [f"{STAGING}.{n}" for n, d in DATASETS.items() if fetch_time(d) is not None]
    return [*staged, *(view.name for view in view_files())]


def differences(built: Path, other: Path) -> dict[str, tuple[int, int]]:
    """Per model whose rows differ between two warehouses: the rows only in each (as bags)."""
    found = {}
    with duckdb.connect(str(built), read_only=True) as connection:
        connection.execute(f"attach '{other}' as other (read_only)")
        connection.execute("set TimeZone = 'UTC'")
        for name in models():
            here = f"{built.stem}.{name}"
            there = f"other.{name}"
            only_here, only_there = (
                connection.execute(
                    f"select count(*) from (select * from {a} except all select * from {b})"
                ).fetchone()
                for a, b in ((here, there), (there, here))
            )
            if only_here != (0,) or only_there != (0,):
                found[name] = (
                    only_here[0] if only_here else -1,
                    only_there[0] if only_there else -1,
                )
    return found


def test_an_incremental_build_equals_a_full_one_after_files_land_are_replaced_and_go(
    lake: Path, tmp_path: Path
) -> None:
    settings = copied(lake, tmp_path)
    assert build(settings).full  # no warehouse yet
    files = Lake(settings.lake_dir)
    # a new file: one more fill, landed by a later fetch
    fill_file = files.files(FILLS.dataset)[-1]
    partition = partition_of(files, fill_file)
    newer = pl.read_parquet(fill_file, hive_partitioning=False).head(1)
    newer = newer.with_columns(
        *(pl.lit(value).alias(column) for column, value in partition.items()),
        fill_id=pl.lit("incremental-fill"),
        fetched_at=pl.col("fetched_at") + timedelta(hours=1),
    )
    files.land(FILLS.dataset, newer, stem="trades-later", partition=partition)
    # a new file with a column the table has never had: the dataset is loaded again whole
    widened = pl.read_parquet(fill_file, hive_partitioning=False).with_columns(
        fill_id=pl.col("fill_id") + "-wide", novel=pl.lit("kept")
    )
    widened.write_parquet(fill_file.with_name("trades-widened.parquet"))
    # a file replaced under its own name: one candle's close changed
    candle_file = files.files(CANDLES.dataset)[0]
    candles = pl.read_parquet(candle_file, hive_partitioning=False)
    first = pl.int_range(pl.len()) == 0
    replaced = candles.with_columns(
        close=pl.when(first).then(pl.col("close") * 2).otherwise(pl.col("close"))
    )
    replaced.write_parquet(candle_file)
    # a file gone
    transfer_file = files.files(TRANSFERS.dataset)[0]
    gone = pl.read_parquet(transfer_file).height
    transfer_file.unlink()

    incremental = build(settings)
    kept = tmp_path / "incremental.duckdb"
    shutil.copyfile(settings.warehouse_path, kept)
    full = build(settings, full=True)

    assert not incremental.full
    assert incremental.staged == ("candles", "fills", "transfers")
    assert {"prices", "internal_transfers", "fill_checks"} <= set(incremental.computed)
    assert build_summary(incremental).startswith("loaded candles, fills, transfers; computed ")
    assert full.full and build_summary(full) == "built from nothing"
    assert differences(settings.warehouse_path, kept) == {}
    with duckdb.connect(str(kept), read_only=True) as connection:
        (fill,) = connection.execute(
            "select count(*) from fills where fill_id = 'incremental-fill'"
        ).fetchone() or (0,)
        (novel,) = connection.execute(
            f"select count(*) from {STAGING}.fills_landed where novel = 'kept'"
        ).fetchone() or (0,)
        (transfers,) = connection.execute(
            f"select count(*) from {STAGING}.transfers_landed where filename = ?",
            [str(transfer_file)],
        ).fetchone() or (-1,)
    assert (fill, novel, transfers, gone > 0) == (1, widened.height, 0, True)


def test_new_candles_compute_again_only_the_models_that_read_them(
    lake: Path, tmp_path: Path
) -> None:
    settings = copied(lake, tmp_path)
    build(settings)
    files = Lake(settings.lake_dir)
    candle_file = files.files(CANDLES.dataset)[-1]
    candles = pl.read_parquet(candle_file, hive_partitioning=False)
    candles.with_columns(close=pl.col("close") + 1).write_parquet(candle_file)

    incremental = build(settings)
    kept = tmp_path / "incremental.duckdb"
    shutil.copyfile(settings.warehouse_path, kept)
    build(settings, full=True)

    assert (incremental.staged, incremental.computed) == (
        ("candles",),
        ("candles", "coverage", "prices", "fees"),
    )
    assert differences(settings.warehouse_path, kept) == {}


def test_a_build_with_nothing_new_leaves_the_warehouse_as_it_is(lake: Path, tmp_path: Path) -> None:
    settings = copied(lake, tmp_path)
    build(settings)
    before = settings.warehouse_path.stat()
    again = build(settings)
    after = settings.warehouse_path.stat()
    assert (again.full, again.computed, again.staged) == (False, (), ())
    assert build_summary(again) == "lake unchanged"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # no temporary file, write-ahead log or spill directory of a build is left
    assert [p.name for p in settings.data_dir.iterdir() if p.name.startswith(".warehouse")] == []


def test_a_build_from_changed_definitions_starts_afresh(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")  # (what the lake holds does not matter)
    sql = tmp_path / "sql"
    shutil.copytree(Path(warehouse.__file__).parent / "sql", sql)
    build(settings, sql_dir=sql)
    fees = sql / "110_fees.sql"
    fees.write_text(fees.read_text("utf-8") + "\n-- a changed definition\n", "utf-8")
    changed = build(settings, sql_dir=sql)
    assert changed.full


def test_a_reader_never_reads_the_lake_so_files_replaced_under_it_cannot_break_it(
    lake: Path, tmp_path: Path
) -> None:
    """What a sync landing files does to a running notebook's queries: nothing (every model
    reads the warehouse's own tables; a lake file replaced mid-query once broke them)."""
    settings = copied(lake, tmp_path)
    build(settings)
    names = [view.name for view in view_files()]
    digest = "select count(*), sum(hash(t)::hugeint) from {} as t"
    with connect(settings.data_dir) as reader:
        before = {name: reader.execute(digest.format(name)).fetchone() for name in names}
        for path in settings.lake_dir.rglob("*.parquet"):
            path.write_bytes(b"PAR1 cut short")
        after = {name: reader.execute(digest.format(name)).fetchone() for name in names}
    assert after == before
    # every model holds rows but public_trades (the synthetic lake lands none)
    assert [name for name, rows in before.items() if not (rows and rows[0])] == ["public_trades"]


ZONE_CHILD = """
import sys
from pathlib import Path
from pipelines.config import Settings
from pipelines.exchanges.registry import warehouse_rules
from warehouse.build import build
build(Settings(data_dir=Path(sys.argv[1])), rules=warehouse_rules(), sql_dir=Path(sys.argv[2]))
"""


def test_tables_are_computed_in_utc_whatever_the_machines_zone(tmp_path: Path) -> None:
    """The models subtract times and cut months in the session's zone, and are read in UTC: a
    table computed in the zone of the machine that built it would hold other values."""
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "001_zone.sql").write_text(
        "select current_setting('TimeZone') as zone, "
        "timestamptz '2024-03-31 12:00:00+00' - timestamptz '2024-03-30 12:00:00+00' as day\n"
    )
    (sql / "models.toml").write_text('[zone]\nmaterialized = "table"\nkey = ["zone"]\n')
    data = tmp_path / "data"
    environment = {**os.environ, "TZ": "Europe/Amsterdam"}
    subprocess.run(
        [sys.executable, "-c", ZONE_CHILD, str(data), str(sql)], env=environment, check=True
    )
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as connection:
        (zone, day) = connection.execute("select zone, day from zone").fetchone() or (None, None)
    assert (zone, day) == ("UTC", timedelta(days=1))  # Amsterdam: a day less an hour (DST)


# a shell that writes to the warehouse and dies before its log is checkpointed into the file
CRASHED_SHELL = """
import os, sys, duckdb
connection = duckdb.connect(sys.argv[1])
connection.execute("set checkpoint_threshold = '1GB'")
connection.execute("create table note as select 'unsaved' as text")
os._exit(0)
"""


def test_a_write_ahead_log_left_beside_the_old_warehouse_is_not_paired_with_the_new(
    lake: Path, tmp_path: Path
) -> None:
    """A `duckdb` shell that crashed while writing to the old warehouse leaves its log beside
    it; renamed in, the new warehouse would replay it (or fail to open, when it cannot be)."""
    settings = copied(lake, tmp_path)
    build(settings)
    subprocess.run([sys.executable, "-c", CRASHED_SHELL, str(settings.warehouse_path)], check=True)
    assert Path(f"{settings.warehouse_path}.wal").is_file()
    build(settings, full=True)
    with connect(settings.data_dir) as reader:
        assert reader.execute("select count(*) from fills").fetchone() == (FILL_COUNT,)
        noted = reader.execute("select count(*) from duckdb_tables() where table_name = 'note'")
        assert noted.fetchone() == (0,)  # the log was not replayed into the new warehouse
