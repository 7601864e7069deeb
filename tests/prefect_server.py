"""`prefect server start` on a PostgreSQL database, for tests (the `prefect_on_postgres` fixture
in conftest.py).

`prefect_server_on(postgres, directory)` starts the venv's `prefect server start` on a free
loopback port with `PREFECT_API_DATABASE_CONNECTION_URL` naming the database of `postgres` (a
`postgres_server.PostgresServer`), its PREFECT_HOME and log in `directory`, waits until
`/api/health` answers, and yields a `PrefectServer`; at the end it stops the server by pid
(SIGTERM, then SIGKILL). The server starts through `child_of.py`, so that it is killed if the
test process dies without reaching its `finally`.

The first start on an empty database runs Prefect's migrations (`startup_seconds` says how long
the whole start took). Nothing of the caller's environment that names another Prefect, an
exchange key or a tally setting reaches the server (`cli_runner.clean_env`); `PrefectServer.env`
gives the same environment pointed at this server, for `prefect` CLI subprocesses (workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cli_runner import clean_env
from postgres_server import LAUNCHER, PostgresServer, free_port

START_SECONDS = 120.0  # migrations on an empty database, on two busy cores
STOP_SECONDS = 15.0
START_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
PREFECT = (sys.executable, "-m", "prefect")  # the venv's CLI, wherever its scripts live
SETTINGS = {  # a private, quiet Prefect (as `make test` and tally set it)
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_CLI_PROMPT": "false",
    "PREFECT_CLI_COLORS": "false",
    "PREFECT_CLI_WRAP_LINES": "false",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server on PostgreSQL."""

    url: str  # the API's, e.g. http://127.0.0.1:PORT/api
    home: Path  # its PREFECT_HOME
    log: Path  # its output
    pid: int
    startup_seconds: float  # from starting the process to /api/health answering
    database: PostgresServer
    settings: Mapping[str, str] = field(default_factory=dict)  # given to the server and clients

    def env(self, home: Path | None = None, **extra: str) -> dict[str, str]:
        """An environment for a Prefect client or worker process of this server: a clean one
        (`clean_env`) with PREFECT_API_URL, `home` as its PREFECT_HOME (default: the
        server's) and the quiet settings."""
        return clean_env(
            **SETTINGS,
            **self.settings,
            PREFECT_API_URL=self.url,
            PREFECT_HOME=str(home or self.home),
            **extra,
        )


@contextmanager
def prefect_server_on(
    postgres: PostgresServer, directory: Path, *, settings: Mapping[str, str] | None = None
) -> Iterator[PrefectServer]:
    """A healthy `prefect server start` on `postgres`'s database for the block (see the
    module docstring); `settings` are extra PREFECT_* settings for the server (and for the
    clients `PrefectServer.env` makes)."""
    directory.mkdir(parents=True, exist_ok=True)
    home = directory / "home"
    log = directory / "server.log"
    extra = dict(settings or {})
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = clean_env(
            **SETTINGS,
            **extra,
            PREFECT_HOME=str(home),
            PREFECT_API_DATABASE_CONNECTION_URL=postgres.asyncpg_url,
        )
        command = [
            *PREFECT,
            *("server", "start", "--host", "127.0.0.1", "--port", str(port)),
            *("--no-ui", "--analytics-off"),
        ]
        began = time.monotonic()
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-P", str(LAUNCHER), str(os.getpid()), "KILL", "--", *command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if _wait_healthy(process, url):
                server = PrefectServer(
                    url, home, log, process.pid, time.monotonic() - began, postgres, extra
                )
                yield server
                return
            text = log.read_text(errors="replace")
            if "already in use" not in text or attempt == START_ATTEMPTS:
                raise RuntimeError(
                    f"prefect server did not answer within {START_SECONDS:g} s "
                    f"(rc {process.poll()}):\n{text[-4000:]}"
                )
        finally:
            stop(process)
    raise AssertionError("unreachable")


def _wait_healthy(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return True
        time.sleep(0.2)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, by pid; reaped."""
    for number in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(number)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_SECONDS)
