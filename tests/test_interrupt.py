"""Ctrl-C on `tally sync`: the terminal's SIGINT reaches tally's whole process group, and the
Prefect server tally started is not in it (`prefect_server.py`), so tally ends in order: the
flow run is recorded as Crashed on the still-running server, the server is stopped, the lock
released, and tally says so in one line.

A real `tally sync` against a sandbox over loopback, started in a session of its own so that
`killpg` plays the terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from prefect_api import PrefectApi

from pipelines.config_file import write_config
from pipelines.exit_codes import ExitCode
from pipelines.flows.prefect_env import log_file
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
FOREIGN = ("PREFECT_", "BITSTAMP_", "BITVAVO_")


def children(pid: int) -> set[int]:
    tasks = Path(f"/proc/{pid}/task")
    return {
        int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()
    }


def test_ctrl_c_ends_tally_sync_in_one_line_after_stopping_its_server(
    prefect_api: PrefectApi, tmp_path: Path
) -> None:
    # not a first run (its migrations are not what this is about): its server starts sooner
    prefect_api.seed(tmp_path / "data" / ".prefect")
    now_ms = int(datetime(2024, 3, 31, tzinfo=UTC).timestamp() * 1000)
    with start_sandbox(seed=7, world=World(seed=7, days=10, now_ms=now_ms)) as sandbox:
        write_config(tmp_path / "tally.toml", sandbox_document(sandbox))
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env["PYTHONPATH"] = str(REPO)
        tally = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "sync"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        assert tally.stderr is not None
        lines: list[str] = []
        running = threading.Event()

        def read() -> None:
            assert tally.stderr is not None
            for line in tally.stderr:
                lines.append(line)
                if "] done " in line:  # a stream has landed: the flow runs on the server
                    running.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert running.wait(240), "".join(lines)
            (server,) = children(tally.pid)
            os.killpg(tally.pid, signal.SIGINT)  # Ctrl-C
            code = tally.wait(timeout=120)
        finally:
            if tally.poll() is None:
                tally.kill()
                tally.wait()
        reader.join(timeout=10)

    assert code == ExitCode.INTERRUPTED == 130, "".join(lines)
    assert lines[-1] == "tally sync: interrupted\n"
    assert not any("Traceback" in line or "Error" in line for line in lines), "".join(lines)
    assert not Path(f"/proc/{server}").exists(), "the Prefect server outlived tally"
    assert not (tmp_path / "data" / ".lock").exists()
    log = log_file(tmp_path / "data").read_text(encoding="utf-8")
    # The server was still up when the run ended: its final state reached it.
    assert "Finished in state Crashed('Execution was aborted by an interrupt signal.')" in log
    assert "Unable to connect" not in log and "failed with" not in log
