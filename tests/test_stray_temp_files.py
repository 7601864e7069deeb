"""Temp files of every atomic writer of the data directory are swept by the next writer that
takes the lock, and `tally doctor` shows them (the "stray temp files" row of the lake rows)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.checks.lake import SHOWN, check_rows
from pipelines.config import Settings
from pipelines.datadir_lock import data_dir_lock
from pipelines.lake_check import CACHE_NAME
from pipelines.leftovers import stale_temp_files


def leave_temp_files(data_dir: Path) -> list[Path]:
    """The temp files each writer leaves when killed between its write and its rename, named
    as each names them (Prefect's logging config by a process that is gone)."""
    settings = Settings(data_dir=data_dir)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    left = [
        settings.lake_dir / "candles" / "exchange=bitvavo" / ".w1.0123abcd.tmp",
        data_dir / f".{CACHE_NAME}.0123abcd.tmp",
        data_dir / "quarantine" / "fills" / ".x.parquet.json.0123abcd.tmp",
        data_dir / "logs" / f".prefect-logging.yml.{dead}.tmp",
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    # a warehouse build killed while it spilled to disk leaves a directory
    spill = data_dir / f".{settings.warehouse_path.name}.0123abcd.tmp.spill"
    (spill / "duckdb_temp_storage.tmp").parent.mkdir(parents=True)
    (spill / "duckdb_temp_storage.tmp").write_bytes(b"spilled")
    return sorted([*left, spill])


def test_a_writer_taking_the_lock_sweeps_every_writers_temp_files(tmp_path: Path) -> None:
    left = leave_temp_files(tmp_path)
    alive = tmp_path / "logs" / f".prefect-logging.yml.{os.getpid()}.tmp"
    alive.write_bytes(b"being written")
    assert stale_temp_files(tmp_path) == sorted(left)
    notices: list[str] = []
    with data_dir_lock(tmp_path, command="sync", notice=notices.append):
        assert [p for p in left if p.exists()] == []
    assert notices == [f"removed {len(left)} stale temp file(s) left by an interrupted run"]
    assert alive.exists()  # its writer runs: not stale


def test_doctor_shows_stray_temp_files(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    (row,) = [r for r in check_rows(settings) if r.check == "stray temp files"]
    assert (row.status, row.detail) == ("ok", "none")
    left = leave_temp_files(tmp_path)
    (row,) = [r for r in check_rows(settings) if r.check == "stray temp files"]
    assert row.status == "warn"
    assert row.detail.startswith(f"{len(left)} temp file(s) of a writer: ")
    assert row.detail.endswith(f"and {len(left) - SHOWN} more")
    assert "the next one removes them" in row.fix
    assert all(p.exists() for p in left)  # doctor removes nothing
