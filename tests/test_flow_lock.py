"""The flows hold the data directory's writer lock (`pipelines/flows/sync.py`): run directly (as
a deployment's worker runs them) they take it, waiting a bounded time for another process; run
by a process that holds it already (`tally sync`, `tally demo`) they run inside that hold.

Real flow runs against a sandbox over loopback; the other writer is a real process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect_api import PrefectApi
from sandbox_fixtures import sandbox_fixture, world_fixture
from test_markets_check import requests_by_endpoint, write_config

from pipelines.config import load_settings
from pipelines.datadir_lock import DataDirLockedError, data_dir_lock, held_here, read_holder
from pipelines.datasets import PUBLIC_TRADES
from pipelines.flows import sync
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from pathlib import Path
from pipelines.datadir_lock import data_dir_lock
with data_dir_lock(Path(sys.argv[1]), command="sync"):
    print("held", flush=True)
    sys.stdin.readline()
"""


world = world_fixture(
    seed=41, days=3, now_ms=int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
)
sandbox = sandbox_fixture()


@contextmanager
def other_writer(data_dir: Path) -> Iterator[int]:
    """Another process holding `data_dir`'s lock for the block; yields its pid."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline() == "held\n"
        yield process.pid
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_flow_run_inside_this_process_s_hold_runs_in_it(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "LOCK_WAIT_SECONDS", 0)  # a flow that waited would fail at once
    config = write_config(sandbox, tmp_path, bitstamp=["BTC-EUR"])
    data_dir = load_settings(config).data_dir
    with data_dir_lock(data_dir, command="sync") as me:
        results = sync.sync_flow(str(config), ["bitstamp"], ["trades"])
        assert read_holder(data_dir) == me == held_here(data_dir)  # still ours, still held
    assert [r["stream"] for r in results] == ["public_trades bitstamp BTC-EUR"]
    assert Lake(load_settings(config).lake_dir).scan(PUBLIC_TRADES.dataset).collect().height > 0
    assert held_here(data_dir) is None


def test_a_flow_run_waits_for_another_writer_then_fails_in_one_line_having_fetched_nothing(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync, "LOCK_WAIT_SECONDS", 0.5)
    config = write_config(sandbox, tmp_path, bitstamp=["BTC-EUR"])
    data_dir = load_settings(config).data_dir
    before = requests_by_endpoint(sandbox)
    with other_writer(data_dir) as pid:
        with pytest.raises(DataDirLockedError) as synced:
            sync.sync_flow(str(config), ["bitstamp"], ["trades"])
        start = datetime(2024, 3, 1, tzinfo=UTC)
        with pytest.raises(DataDirLockedError) as backfilled:
            sync.backfill_flow("bitstamp", "BTC-EUR", "1h", start, config=str(config))
    for refused in (synced.value, backfilled.value):
        (line,) = refused.lines
        assert re.fullmatch(
            rf"data directory {re.escape(str(data_dir))} is still in use by pid {pid} "
            r"\(tally sync, since .* UTC\) after waiting 0\.5 s",
            line,
        ), line
    assert requests_by_endpoint(sandbox) == before, "a refused flow run fetched"
    assert not load_settings(config).lake_dir.exists()
