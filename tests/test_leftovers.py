"""No leftovers: a SIGKILLed `tally sync` leaves no process behind, and the next sync on its data
directory marks the flow run it left RUNNING as Crashed and removes the temp files it left.

`tally` runs as a subprocess against a sandbox served by this test process; processes are read
from /proc, Prefect's flow runs from the data directory's own Prefect database (SQLite).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect_api import PrefectApi

from pipelines.config import Settings
from pipelines.config_file import write_config
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 3, 31, tzinfo=UTC)
SEED = 23
FOREIGN = ("PREFECT_", "BITSTAMP_", "BITVAVO_")  # must not reach the `tally` subprocesses
SERVER_SCRIPT = "prefect_server_child.py"
GONE_WITHIN_S = 10.0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return {**env, "PYTHONPATH": str(REPO), **extra}


# --- processes, from /proc ----------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def descendants(pid: int) -> dict[int, str]:
    """Every living process under `pid` (children, theirs, …): pid → start time (in ticks)."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
            started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = started[child]
                frontier.append(child)
    return found


def alive(pid: int, started: str) -> bool:
    """The same process (not a reused pid) still exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] not in ("Z", "X")


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def servers_started_by(pid: int) -> list[int]:
    """Living temporary Prefect servers whose command line names `pid` as their parent."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = command_line(int(entry.name)).split()
        except OSError:
            continue
        if any(w.endswith(SERVER_SCRIPT) for w in words) and str(pid) in words:
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


# --- Prefect's database -------------------------------------------------------------------------


def flow_runs(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(name, state, state message) of every flow run, oldest first; [] before the database."""
    database = settings.prefect_home / "prefect.db"
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(
                "select f.name, f.state_type, s.message from flow_run f "
                "left join flow_run_state s on s.id = f.state_id order by f.created"
            ).fetchall()
    except sqlite3.OperationalError:  # the server is still creating its tables
        return []


# --- the test -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    world = World(seed=SEED, days=10, now_ms=int(NOW.timestamp() * 1000))
    with start_sandbox(seed=SEED, world=world) as served:
        yield served


@pytest.mark.slow
def test_a_killed_sync_leaves_no_process_and_the_next_one_cleans_up(
    sandbox: Sandbox, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    config = tmp_path / "tally.toml"
    # daily candles only: the run is long enough to be killed while it runs, and no longer
    document = sandbox_document(sandbox)
    for section in ("bitstamp", "bitvavo"):
        document[section]["intervals"] = ["1d"]
    write_config(config, document)
    settings = Settings(data_dir=tmp_path / "data")
    # not a first run (its migrations are not what this is about): its server starts sooner
    prefect_api.seed(settings.prefect_home)
    command = [sys.executable, "-m", "pipelines.cli", "sync", "--config", str(config)]

    with (tmp_path / "killed.log").open("w") as log:
        killed = subprocess.Popen(
            command, cwd=tmp_path, env=clean_env(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 300
            while not any(state == "RUNNING" for _, state, _ in flow_runs(settings)):
                assert killed.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "the flow run never started"
                time.sleep(0.1)
            processes = descendants(killed.pid)
            commands = {pid: command_line(pid) for pid in processes}  # read before the kill
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
    servers = [pid for pid, line in commands.items() if SERVER_SCRIPT in line]
    assert len(servers) == 1, commands

    deadline = time.monotonic() + GONE_WITHIN_S
    while remaining := [pid for pid, started in processes.items() if alive(pid, started)]:
        assert time.monotonic() < deadline, {pid: commands[pid] for pid in remaining}
        time.sleep(0.05)

    (stale_run, state, _), *_ = flow_runs(settings)
    assert state == "RUNNING", "the flow run ended before the kill: nothing was left to crash"
    partition = settings.lake_dir / "fills" / "exchange=bitvavo"
    partition.mkdir(parents=True, exist_ok=True)
    planted = [
        partition / ".window.0123456789abcdef.tmp",
        settings.data_dir / ".warehouse.duckdb.0123456789abcdef.tmp",
    ]
    for path in planted:
        path.write_bytes(b"half a file")

    again = subprocess.run(
        command,
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert "removed 2 stale temp file(s) left by an interrupted run" in lines
    crashed_line = rf"flow run '{stale_run}' was left RUNNING since .* UTC by a killed tally: "
    assert [line for line in lines if re.fullmatch(crashed_line + "marked Crashed", line)]
    assert "Traceback" not in again.stderr
    assert not [line for line in lines if re.search(r"\| (WARNING|ERROR) ", line)], lines

    (name, state, message), *later = flow_runs(settings)
    assert (name, state) == (stale_run, "CRASHED")
    assert message is not None and "killed" in message
    assert [state for _, state, _ in later] == ["COMPLETED"]
    assert [p for p in planted if p.exists()] == []
    assert list(settings.data_dir.rglob("*.tmp")) == []
    assert servers_started_by(killed.pid) == []
    assert not (settings.data_dir / ".lock").exists()


def test_a_users_own_prefect_server_is_left_alone(tmp_path: Path) -> None:
    """With PREFECT_API_URL set, no server is started and nothing is marked (no request made:
    nothing listens at that address)."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from pipelines.flows.prefect_server import prefect_server\n"
        "with prefect_server(Path(sys.argv[1]), notice=print) as url:\n"
        "    print(url, os.environ['PREFECT_API_URL'], flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    own = "http://127.0.0.1:9/api"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "data")],
        env=clean_env(PREFECT_API_URL=own),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = process.stdout.readline()
        assert line.split() == [own, own], process.stderr.read() if process.stderr else ""
        assert descendants(process.pid) == {}
    finally:
        process.stdin.close()
        assert process.wait(timeout=60) == 0
