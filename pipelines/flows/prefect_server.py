"""Prefect's API for one `tally` run: the user's own server, or a temporary one of our own.

    with prefect_server(settings.data_dir):
        sync_flow(...)

When Prefect's settings name no API (`PREFECT_API_URL`, from the environment or a profile),
Prefect would start its own temporary server (`SubprocessASGIServer`), a uvicorn process that a
SIGKILLed tally leaves running for minutes. Instead this starts the same server as a child that
dies with this process, even by SIGKILL (`prefect_server_child.py`), points Prefect at it for
the block, and on the way out lets Prefect's log and event workers deliver what they hold before
stopping it (so that no "failed to reach the server" noise follows a run).

Its database is the data directory's (`<data_dir>/.prefect/prefect.db`, `prepare_prefect`), and
the caller holds the directory's writer lock: a flow run that database still shows as running
or pending was left by a killed tally, and is marked Crashed before the new run starts. A
user's own server (or a database outside the data directory) is left alone: a user's own
PREFECT_HOME without PREFECT_API_URL puts the database there, where other data directories'
runs may be alive, so nothing is marked (their killed runs stay Running; the README says so).

The server runs in a session of its own, so that a Ctrl-C on the terminal reaches tally alone:
tally's blocks then end in order, the server last (`PR_SET_PDEATHSIG` still kills it with tally).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import IO, Any

from pipelines.datadir_lock import stderr_line
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.flows.prefect_env import prepare_prefect

CHILD = Path(__file__).with_name("prefect_server_child.py")
SERVER_ENV = {  # what Prefect's own SubprocessASGIServer sets for its server
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
STOP_SECONDS = 10.0
DRAIN_SECONDS = 10.0
STALE_STATES = ("RUNNING", "PENDING", "CANCELLING")
CRASHED_MESSAGE = (
    "left {state} by a tally process that was killed; marked Crashed by the next run on "
    "this data directory"
)


class PrefectServerError(OperatorError):
    """The temporary Prefect server did not start: a problem of this machine's setup (Prefect's
    settings, its database), so exit 2 like the other local problems (see `exit_codes`)."""

    exit_code = ExitCode.USAGE


@contextmanager
def prefect_server(data_dir: Path, *, notice: Callable[[str], None] = stderr_line) -> Iterator[str]:
    """Prefect's API URL for the block (see the module's docstring).

    The kernel kills the server when the thread that started it ends, so enter this from a
    thread that lives until the block is done (in `tally`, the main thread).
    """
    prepare_prefect(data_dir)
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url:  # the user's own server
        yield str(settings.api.url)
        return
    process, url = start_server()
    try:
        wait_healthy(process, url, float(settings.server.ephemeral.startup_timeout_seconds))
        with _pointed_at(url):
            if _database_inside(settings, data_dir):
                for line in crash_stale_runs():
                    notice(line)
            try:
                yield url
            finally:
                drain_workers()
    finally:
        stop_server(process)


def start_server(
    env: Mapping[str, str] | None = None, *, output: IO[bytes] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """The temporary server's process and API URL, not yet healthy (`wait_healthy`), dying
    with the calling thread. Its environment is this one's, or `env`, plus `SERVER_ENV`; its
    output goes to this process's, or to `output`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-P", str(CHILD), str(os.getpid()), str(listener.fileno())],
            env={**(os.environ if env is None else env), **SERVER_ENV},
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            # Its own session: a Ctrl-C on the terminal reaches tally alone, which lets
            # Prefect's workers deliver and then stops the server (`stop_server`).
            start_new_session=True,
        )
    finally:
        listener.close()  # the child has its own copy
    return process, f"http://127.0.0.1:{port}/api"


def wait_healthy(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectServerError(
                f"Prefect's temporary server exited with code {process.returncode} while "
                "starting (see the lines above)"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise PrefectServerError(
        f"Prefect's temporary server did not answer within {timeout:g} s "
        "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
    )


@contextmanager
def _pointed_at(url: str) -> Iterator[None]:
    """Prefect's API is `url` for the block: in this context, in threads started without it
    (Prefect's global settings), and in child processes (the environment)."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    prefect.context.refresh_global_settings_context()
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        prefect.context.refresh_global_settings_context()


def _database_inside(settings: Any, data_dir: Path) -> bool:
    """Whether Prefect's database is a SQLite file inside `data_dir` (so covered by its lock)."""
    secret = settings.server.database.connection_url
    url = secret.get_secret_value() if secret is not None else ""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return False
    path = Path(url.removeprefix(prefix).split("?")[0]).resolve()
    return data_dir.resolve() in path.parents


def crash_stale_runs() -> list[str]:
    """Mark every running, pending or cancelling flow run Crashed; one line for each.

    Only for the data directory's own database with its lock held: then none of them can be
    alive. Prefect must point at that database's server (`_pointed_at`)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    stale = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType(name) for name in STALE_STATES])
        )
    )
    lines: list[str] = []
    marked: set[Any] = set()
    with get_client(sync_client=True) as client:
        # a page at a time (the API caps one); a run marked already means nothing is left
        while runs := [
            r for r in client.read_flow_runs(flow_run_filter=stale) if r.id not in marked
        ]:
            for run in runs:
                marked.add(run.id)
                state = (run.state_name or "?").upper()
                message = CRASHED_MESSAGE.format(state=state)
                client.set_flow_run_state(run.id, Crashed(message=message), force=True)
                since = ""
                if run.start_time is not None:
                    since = f" since {run.start_time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
                lines.append(
                    f"flow run {run.name!r} was left {state}{since} by a killed tally: "
                    "marked Crashed"
                )
    return lines


def drain_workers() -> None:
    """Let Prefect's log and event workers send what they hold while the server still runs."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=DRAIN_SECONDS)
    EventsWorker.drain_all(timeout=DRAIN_SECONDS)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
