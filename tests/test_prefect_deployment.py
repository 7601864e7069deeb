"""prefect.yaml end to end: a real Prefect server, `prefect deploy`, a process worker, the sandbox.

The test plays the operator of the runbook at the top of prefect.yaml, on loopback only: it starts
`prefect server start` with a private PREFECT_HOME (its database already migrated), creates the
`tally` process pool, deploys `account-daily` from the repository root with the repository's
prefect.yaml, asks for a run whose `config` parameter points at a sandbox (served by threads of
this test process), and lets `prefect worker start` run it. The lake the run leaves must hold the
sandbox accounts' rows.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from prefect_api import PrefectApi
from process_tree import Started

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import BITSTAMP_LEDGER, BITVAVO_HISTORY
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox_config import sandbox_document

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PREFECT = (sys.executable, "-m", "prefect")  # the venv's CLI, wherever its scripts live
NOW = datetime(2024, 3, 31, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DEPLOYMENT = "account/account-daily"

SERVER_START_SECONDS = 120.0  # importing the server is slow on 2 busy cores
COMMAND_SECONDS = 90.0  # one `prefect ...` CLI call (importing prefect is slow on 2 busy cores)
RUN_SECONDS = 150.0  # from asking for the run to its Completed state
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# Environment that must not leak into the subprocesses: another Prefect profile or server,
# or real exchange keys (they would win over the sandbox keys in the config file).
FOREIGN = ("PREFECT_", "BITSTAMP_", "BITVAVO_")


class Processes:
    """Starts processes in sessions of their own and stops every one of them by process group."""

    def __init__(self, logs: Path, env: Mapping[str, str]) -> None:
        self.logs = logs
        self.env = dict(env)
        self.started: list[Started] = []

    def start(self, name: str, args: Sequence[str]) -> Started:
        started = Started.start(name, args, logs=self.logs, env=self.env, cwd=ROOT)
        self.started.append(started)
        return started

    def prefect(self, name: str, *args: str) -> Started:
        """Start `prefect ARGS...` (the venv's CLI)."""
        return self.start(name, [*PREFECT, *args])

    def run(self, name: str, *args: str) -> str:
        """Run `prefect ARGS...` to its end (bounded); its output, or a failure that shows it."""
        started = self.prefect(name, *args)
        command = " ".join(("prefect", *args))
        try:
            rc = started.process.wait(timeout=COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{command}` ran over {COMMAND_SECONDS} s\n{self.report()}")
        if rc != 0:
            pytest.fail(f"`{command}` exited {rc}\n{self.report()}")
        return started.log.read_text(errors="replace")

    def report(self) -> str:
        return "\n".join(started.tail() for started in self.started)

    def stop_all(self) -> None:
        for started in reversed(self.started):
            started.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_env(home: Path, api_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _wait_healthy(api_url: str, server: Started, processes: Processes) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"prefect server exited early\n{processes.report()}")
        try:
            if requests.get(f"{api_url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_SECONDS} s\n{processes.report()}")


def _get(url: str) -> Any:
    reply = requests.get(url, timeout=10)
    reply.raise_for_status()
    return reply.json()


def _wait_terminal(api_url: str, run_id: str, processes: Processes) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_SECONDS
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = _get(f"{api_url}/flow_runs/{run_id}")
        if run["state_type"] in TERMINAL:
            return run
        time.sleep(1)
    pytest.fail(
        f"flow run {run_id} still {run.get('state_type')} after {RUN_SECONDS} s\n"
        f"{processes.report()}"
    )


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=5, days=10, now_ms=NOW_MS) as running:
        yield running


def test_account_deployment_runs_on_a_process_worker_and_lands_the_sandbox(
    sandbox: Sandbox, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "tally.toml"
    document = sandbox_document(sandbox)
    assert document["data_dir"] == "data"
    document["data_dir"] = str(data_dir)
    write_config(config, document)

    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    logs = tmp_path / "logs"
    logs.mkdir()
    home = tmp_path / "prefect-home"
    # a database already migrated (the migrations are Prefect's, not the runbook's): the server
    # starts sooner
    prefect_api.seed(home)
    processes = Processes(logs, _prefect_env(home, api_url, port))
    try:
        # --no-scheduler: the deployment's cron must not add runs the worker could pick up
        server = processes.prefect(
            "server",
            *("server", "start", "--host", "127.0.0.1", "--port", str(port)),
            *("--no-ui", "--no-scheduler", "--analytics-off"),
        )
        _wait_healthy(api_url, server, processes)

        processes.run("pool", "work-pool", "create", "tally", "--type", "process")
        # the worker imports Prefect while the deployment is made; it waits for runs meanwhile
        worker = processes.prefect("worker", "worker", "start", "--pool", "tally")
        processes.run("deploy", "deploy", "--name", "account-daily", "--no-prompt")
        deployment = _get(f"{api_url}/deployments/name/{DEPLOYMENT}")
        assert deployment["entrypoint"] == "pipelines/flows/sync.py:account_flow"
        assert deployment["work_pool_name"] == "tally"
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        parameter = f"config={json.dumps(str(config))}"
        asked = processes.run("run", "deployment", "run", DEPLOYMENT, "--param", parameter)
        found = re.search(r"UUID:\s*([0-9a-f-]{36})", asked)
        assert found, asked
        run = _wait_terminal(api_url, found.group(1), processes)
        assert run["state_type"] == "COMPLETED", (
            f"{run['state_type']}: {run['state']}\n{processes.report()}"
        )
        assert worker.process.poll() is None, processes.report()
        assert run["parameters"] == {"config": str(config)}
        assert run["deployment_id"] == deployment["id"]
        assert run["work_pool_name"] == "tally"
    finally:
        processes.stop_all()

    lake = Lake(load_settings(config).lake_dir)
    assert lake.root.is_relative_to(tmp_path)
    world = sandbox.world
    ledger = lake.scan(BITSTAMP_LEDGER.dataset).collect()
    truth = sorted(int(row["id"]) for row in world.bitstamp.user_transactions)
    assert truth, "the sandbox account has no ledger"
    assert sorted(ledger["entry_id"].to_list()) == truth
    history = lake.scan(BITVAVO_HISTORY.dataset).collect()
    assert sorted(history["transaction_id"].to_list()) == sorted(
        str(item["transactionId"]) for item in world.bitvavo.history(NOW_MS)
    )
