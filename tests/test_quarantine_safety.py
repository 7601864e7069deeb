"""The quarantine never moves a good file: a file of an older type `Lake.scan` still reads, a
read failed by the machine (too many open files), many files failing alike (the breaker), a
file of a dataset that cannot be fetched again failing for a schema reason, and a file replaced
after it was checked all stay where they are.

Small lakes are written here with `Lake.land`; the readers are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.config import Settings, load_settings
from pipelines.config_file import write_config
from pipelines.datasets import BALANCE_SNAPSHOTS, CANDLES
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake import Dataset, Lake
from pipelines.lake_check import CACHE_NAME, check_lake
from pipelines.quarantine import (
    BREAKER,
    CHECKED,
    NOTHING_MISSING,
    _move,
    held_notes,
    moved_lines,
    quarantine_lake,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
CANDLE_PART = {"exchange": "bitvavo", "market": "BTC-EUR", "interval": "1h"}
BALANCE_PART = {"exchange": "bitstamp", "account": "main"}


def frame_for(dataset: Dataset, rows: int, **partition: str) -> pl.DataFrame:
    """`rows` rows of `dataset`, each column filled by its type (partition columns as given)."""
    columns: dict[str, pl.Series] = {}
    for name, dtype in dataset.schema.items():
        if name in partition:
            values: list[Any] = [partition[name]] * rows
        elif isinstance(dtype, pl.Decimal):
            values = [Decimal(i + 1) for i in range(rows)]
        elif isinstance(dtype, pl.Datetime):
            values = [T0 + timedelta(hours=i) for i in range(rows)]
        else:
            values = [f"{name}-{i}" for i in range(rows)]
        columns[name] = pl.Series(name, values, dtype=dtype)
    return pl.DataFrame(columns)


def land_candles(lake: Lake, stem: str, rows: int = 3) -> Path:
    (path,) = lake.land(
        CANDLES.dataset, frame_for(CANDLES.dataset, rows, **CANDLE_PART), stem=stem
    ).files
    return path


def land_balances(lake: Lake, stem: str = "data") -> Path:
    (path,) = lake.land(
        BALANCE_SNAPSHOTS.dataset,
        frame_for(BALANCE_SNAPSHOTS.dataset, 2, **BALANCE_PART),
        stem=stem,
    ).files
    return path


def settings_in(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data")


def files_in(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- an older type the readers cast ------------------------------------------------------------


def test_a_file_of_an_older_compatible_type_is_good_and_stays(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    candles, balances = land_candles(lake, "w1"), land_balances(lake)
    # rewritten as an older tally might have: whole-number decimals
    for path, column in ((candles, "close"), (balances, "total")):
        frame = pl.read_parquet(path)
        frame.with_columns(pl.col(column).cast(pl.Decimal(38, 0))).write_parquet(path)
        assert pl.read_parquet_schema(path)[column] == pl.Decimal(38, 0)
    # the reader reads them, exactly
    assert lake.scan(CANDLES.dataset).collect()["close"].to_list() == [
        Decimal(1),
        Decimal(2),
        Decimal(3),
    ]
    assert lake.scan(BALANCE_SNAPSHOTS.dataset).collect()["total"].to_list() == [
        Decimal(1),
        Decimal(2),
    ]
    before = files_in(lake.root)
    report = quarantine_lake(settings)
    assert (report.check.files, report.check.bad, report.moved) == (2, (), ())
    assert files_in(lake.root).items() >= before.items()
    assert not (settings.data_dir / "quarantine").exists()


def test_a_value_that_does_not_fit_the_declared_type_is_wrong_columns(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_candles(lake, "w1")
    frame = pl.read_parquet(path).with_columns(
        pl.Series("close", [Decimal(10) ** 30] * 3, dtype=pl.Decimal(38, 0))
    )
    frame.write_parquet(path)
    (bad,) = check_lake(lake, CHECKED, None, save=False).bad
    assert (bad.kind, bad.reason) == (
        "columns",
        "wrong columns for dataset candles: close is Decimal(precision=38, scale=0), "
        "the dataset declares Decimal(precision=38, scale=18)",
    )
    (moved,) = quarantine_lake(settings).moved
    assert moved.path == path.relative_to(lake.root).as_posix() and not path.exists()


# --- the machine, not the file ------------------------------------------------------------------

EXHAUSTED = """
import json, resource, sys
from pathlib import Path
from pipelines.config import load_settings
from pipelines.exit_codes import OperatorError
from pipelines.lake import Lake
from pipelines.lake_check import LakeReadError, check_file
from pipelines.datasets import CANDLES
from pipelines.quarantine import quarantine_lake

settings = load_settings(None, data_dir=Path(sys.argv[1]))
lake = Lake(settings.lake_dir)
(path,) = lake.files(CANDLES.dataset)
stat = path.stat()
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
hoard = []
try:
    while True:
        hoard.append(open(path, "rb"))
except OSError:
    pass
found = {}
try:
    found["check_file"] = repr(check_file(lake, CANDLES.dataset, path, stat))
except LakeReadError as error:
    found["check_file"] = list(error.lines)
try:
    quarantine_lake(settings)
    found["quarantine_lake"] = "returned"
except OperatorError as error:
    found["quarantine_lake"] = [type(error).__name__, *error.lines]
for handle in hoard:
    handle.close()
print(json.dumps(found))
"""


def test_too_many_open_files_stops_the_check_and_moves_nothing(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_candles(lake, "w1")
    before = files_in(settings.data_dir)
    run = subprocess.run(
        [sys.executable, "-c", EXHAUSTED, str(settings.data_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    # the real reader, on a good file, with no descriptor left: an error of the machine
    first = found["check_file"][0]
    assert first.startswith(f"cannot read {path} to check the lake: ")
    assert first.endswith("Too many open files")
    assert "nothing was moved" in found["check_file"][1]
    name, first, *_ = found["quarantine_lake"]
    assert name == "LakeReadError" and first.endswith("Too many open files")
    assert files_in(settings.data_dir) == before
    assert not (settings.data_dir / "quarantine").exists()


# --- the breaker --------------------------------------------------------------------------------


def drop_key(path: Path) -> None:
    pl.read_parquet(path).drop("open_time").write_parquet(path)


def test_many_files_of_one_dataset_failing_alike_move_nothing(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    paths = [land_candles(lake, f"w{i}") for i in range(BREAKER + 1)]
    for path in paths[:BREAKER]:
        drop_key(path)
    before = files_in(settings.data_dir)
    with pytest.raises(OperatorError) as caught:
        quarantine_lake(settings, strict=True)  # `tally warehouse`: its views would read them
    (line,) = caught.value.lines
    assert caught.value.exit_code == ExitCode.DATA
    assert line.startswith(
        f"{BREAKER} files of candles fail the same way (wrong columns for dataset candles: "
        "no key column open_time; e.g. lake/candles/exchange=bitvavo/"
    )
    assert "left in place" in line
    # a sync goes on: the same line as a warning, nothing moved
    report = quarantine_lake(settings)
    assert report.moved == () and report.refused == (line,)
    assert moved_lines(report) == [f"warning: {line}"]
    assert {bad.relative for bad in report.unreadable} == {
        path.relative_to(lake.root).as_posix() for path in paths[:BREAKER]
    }
    after = files_in(settings.data_dir)
    assert {k: v for k, v in after.items() if k != CACHE_NAME} == {
        k: v for k, v in before.items() if k != CACHE_NAME
    }
    assert not (settings.data_dir / "quarantine").exists()


def test_fewer_files_failing_alike_are_moved(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    paths = [land_candles(lake, f"w{i}") for i in range(BREAKER)]
    for path in paths[: BREAKER - 1]:
        drop_key(path)
    moved = quarantine_lake(settings).moved
    assert len(moved) == BREAKER - 1
    assert [p.exists() for p in paths] == [False] * (BREAKER - 1) + [True]


def test_tally_warehouse_stops_with_one_line_when_the_breaker_trips(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    for i in range(BREAKER):
        drop_key(land_candles(lake, f"w{i}"))
    write_config(tmp_path / "tally.toml", {"data_dir": str(settings.data_dir)})
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "warehouse"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith(f"tally warehouse: {BREAKER} files of candles fail the same way")
    assert len(lake.files(CANDLES.dataset)) == BREAKER
    assert not settings.warehouse_path.exists()


# --- what cannot be fetched again ---------------------------------------------------------------


def test_a_snapshot_file_of_other_columns_is_not_moved(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_balances(lake)
    pl.read_parquet(path).drop("asset").write_parquet(path)
    candle = land_candles(lake, "w1")
    candle.write_bytes(candle.read_bytes()[:100])  # damaged, and refetchable
    with pytest.raises(OperatorError) as caught:
        quarantine_lake(settings, strict=True)
    (line,) = caught.value.lines
    relative = path.relative_to(lake.root).as_posix()
    assert line.startswith(
        f"lake/{relative}: wrong columns for dataset balance_snapshots: no key column asset; "
        "left in place, as a snapshot is taken when read"
    )
    # the snapshot stays; the damaged candle file, which can be fetched again, still moves
    assert path.exists() and not candle.exists()
    assert [note.dataset for _, note in held_notes(settings)] == ["candles"]


def test_a_file_out_of_place_never_blocks_and_is_moved(tmp_path: Path) -> None:
    """No reader reads a file out of place, so moving it loses nothing, whatever its dataset."""
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_balances(lake)
    stray = lake.dataset_dir(BALANCE_SNAPSHOTS.dataset) / "stray.parquet"
    stray.write_bytes(path.read_bytes())
    (moved,) = quarantine_lake(settings, strict=True).moved
    assert not stray.exists() and path.exists()
    assert moved.refetch == NOTHING_MISSING


def test_a_damaged_snapshot_file_is_moved_and_its_note_says_it_is_lost(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_balances(lake)
    path.write_bytes(path.read_bytes()[:100])
    (moved,) = quarantine_lake(settings).moved
    assert not path.exists()
    assert not moved.refetchable and moved.refetch.startswith("a snapshot is taken when read")


# --- moving: the version checked, the note first ------------------------------------------------


def test_a_file_replaced_after_the_check_is_not_moved(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_candles(lake, "w1")
    path.write_bytes(path.read_bytes()[:100])
    (bad,) = check_lake(lake, CHECKED, None, save=False).bad
    land_candles(lake, "w1")  # a writer lands the window again
    assert _move(settings, lake, bad, datetime.now(UTC)) is None
    assert pl.read_parquet(path).height == 3
    assert held_notes(settings) == []
    assert not [p for p in (settings.data_dir / "quarantine").rglob("*") if p.is_file()]


def test_a_moved_file_has_its_note(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    lake = Lake(settings.lake_dir)
    path = land_candles(lake, "w1")
    path.write_bytes(b"not parquet")
    (bad,) = check_lake(lake, CHECKED, None, save=False).bad
    note = _move(settings, lake, bad, datetime.now(UTC))
    assert note is not None and not path.exists()
    held = settings.data_dir / note.held_at
    assert held.read_bytes() == b"not parquet"
    assert [n for _, n in held_notes(settings)] == [note]


# --- a file where its dataset keeps none -------------------------------------------------------


def test_a_file_out_of_place_is_never_read_as_part_of_its_dataset(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = land_candles(lake, "w1")
    for stray in (
        lake.dataset_dir(CANDLES.dataset) / "stray.parquet",
        path.parent / "deeper" / "stray.parquet",
        path.parent.parent / "stray.parquet",
    ):
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(path.read_bytes())
    assert lake.files(CANDLES.dataset) == [path]
    assert lake.files(CANDLES.dataset, exchange="bitvavo") == [path]
    assert lake.scan(CANDLES.dataset).collect().height == 3
    bad = check_lake(lake, CHECKED, None, save=False).bad
    assert len(bad) == 3 and all(b.misplaced for b in bad)
