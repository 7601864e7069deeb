"""The views join `staging.exchange_rules`: an exchange with rows in the lake but no rules row
would be left out of every view without a word. `build` refuses such a lake, naming the
exchange, and leaves the old catalog in place; `tally warehouse` says so in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipelines.config import Settings
from pipelines.config_file import write_config
from pipelines.exchanges.registry import warehouse_rules
from pipelines.exit_codes import ExitCode
from pipelines.lake_datasets import CANDLES
from warehouse.build import WarehouseBuildError, build

REPO = Path(__file__).resolve().parents[1]


def land_a_file(settings: Settings, exchange: str) -> Path:
    """A candles file (no rows, the dataset's columns) under `exchange=<exchange>`."""
    partition = settings.lake_dir / CANDLES.name / f"exchange={exchange}" / "market=BTC-EUR"
    path = partition / "interval=1h" / "2024-01.parquet"
    path.parent.mkdir(parents=True)
    pl.DataFrame(schema={c: CANDLES.schema[c] for c in CANDLES.file_columns}).write_parquet(path)
    return path


def test_a_lake_exchange_without_rules_is_refused_by_name(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    build(settings, rules=warehouse_rules())  # an empty lake: the catalog of empty views
    before = settings.warehouse_path.read_bytes()
    land_a_file(settings, "kraken")
    with pytest.raises(WarehouseBuildError, match="rows of kraken, for which no exchange rules"):
        build(settings, rules=warehouse_rules())
    assert settings.warehouse_path.read_bytes() == before  # the old catalog stays


def test_rules_for_only_some_of_the_lakes_exchanges_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    rules = warehouse_rules()
    landed, *others = rules
    land_a_file(settings, landed)
    partial = {name: rules[name] for name in others}
    with pytest.raises(WarehouseBuildError, match=f"rows of {landed},") as refused:
        build(settings, rules=partial)
    assert refused.value.exit_code == ExitCode.DATA
    build(settings, rules=rules)  # with every exchange's rules it builds
    assert settings.warehouse_path.is_file()


def test_a_partition_with_no_file_is_not_an_exchange_of_the_lake(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    empty = settings.lake_dir / CANDLES.name / "exchange=kraken" / "market=BTC-EUR"
    empty.mkdir(parents=True)
    (empty / ".2024-01.parquet.tmp").write_bytes(b"")  # a temp file a writer left
    build(settings, rules=warehouse_rules())
    assert settings.warehouse_path.is_file()


def test_tally_warehouse_says_it_in_one_line_with_exit_1(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    land_a_file(settings, "kraken")
    config = write_config(tmp_path / "tally.toml", {"data_dir": str(settings.data_dir)})
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "warehouse", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert done.returncode == ExitCode.DATA, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("tally warehouse: the lake holds rows of kraken,"), line
