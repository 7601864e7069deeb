"""`tally doctor` fails a stale warehouse as a data problem (exit 1) and names the fix,
`tally warehouse`, which makes it pass.

As a user runs it, against the sandbox (every other check passes), in a directory of its own: a
real lake file lands, `tally warehouse` builds, a newer lake file lands after it.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from cli_runner import tally as run_tally
from sandbox_fixtures import sandbox_fixture, world_fixture

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import GAPS
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)


world = world_fixture(seed=53, days=3, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def tally(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_tally(*args, cwd=directory)


def warehouse_row(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (row,) = [row for row in json.loads(done.stdout)["checks"] if row["check"] == "warehouse"]
    return dict(row)


def land_gaps(lake: Lake, stem: str) -> Path:
    """An empty gaps file of Bitstamp: a real, readable lake file ("fetched, nothing there")."""
    landed = lake.land(
        GAPS, pl.DataFrame(schema=GAPS.schema), stem=stem, partition={"exchange": "bitstamp"}
    )
    (path,) = landed.files
    return Path(path)


def test_a_warehouse_older_than_the_lake_fails_with_exit_1_until_rebuilt(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    write_config(tmp_path / "tally.toml", sandbox_document(sandbox))
    settings = load_settings(tmp_path / "tally.toml")
    lake = Lake(settings.lake_dir)
    land_gaps(lake, "first")
    built = tally(tmp_path, "warehouse")
    assert built.returncode == 0, built
    newer = land_gaps(lake, "second")
    landed = newer.stat().st_mtime
    # built a minute before the newer file landed (file times may share one second)
    os.utime(settings.warehouse_path, (landed - 60, landed - 60))
    stale = tally(tmp_path, "doctor", "--json")
    assert stale.returncode == 1, stale
    row = warehouse_row(stale)
    assert row["status"] == "fail"
    assert row["detail"].startswith("stale: built ") and "gaps" in row["detail"]
    assert row["fix"] == "run tally warehouse"
    failed = [r for r in json.loads(stale.stdout)["checks"] if r["status"] == "fail"]
    assert failed == [row], "the stale warehouse is the only failure"

    assert tally(tmp_path, "warehouse").returncode == 0
    fresh = tally(tmp_path, "doctor", "--json")
    assert fresh.returncode == 0, fresh
    assert warehouse_row(fresh)["status"] == "ok"
