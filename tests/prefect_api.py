"""One Prefect server for the whole test session (the `prefect_api` fixture in conftest.py).

Started as `tally` starts its temporary server (`pipelines/flows/prefect_server.py`: the same
child script and settings, dying with the thread that started it), with its PREFECT_HOME (its
SQLite database) and its output in a directory of the session. While a test process uses it,
Prefect there points at it (as `prefect_test_harness` did), and a `tally` subprocess uses it
when its environment names it (`PrefectApi.env()`): tally leaves a user's own server alone, so
it starts none of its own (5–10 s of CPU each). Tests of tally's own server (its start,
stale-run marking, what a killed or interrupted tally leaves) keep starting theirs; those not
about a first run start theirs on a copy of this server's database as it was before any test
used it (`PrefectApi.seed`): migrated, so that their server skips the migrations (~5 s of CPU
each).

Under xdist the controller owns the server (`SessionServer`): it starts it when the first worker
asks for it (`borrowed_server`) and stops it when the session ends, so that the workers share
one server (each would cost ~5 s of CPU to start and ~3 s to keep idle). A run without xdist
starts its own (`own_server`).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from cli_runner import clean_env

STARTUP_SECONDS = 90.0
DATABASE = "prefect.db"  # in PREFECT_HOME: Prefect's default SQLite database
MIGRATED = "migrated.db"  # its copy, taken as the server is first healthy (`PrefectApi.seed`)
# A server on a copy of the migrated database finds every block type registered already: Prefect
# registers them again on each start unless told not to (~1 CPU-s), as its memo of them names
# the database's path. A profile in a seeded PREFECT_HOME tells a `tally` child's server.
NO_BLOCK_REGISTRATION = {"PREFECT_API_BLOCKS_REGISTER_ON_START": "false"}
SEEDED_PROFILE = tomli_w.dumps({"active": "seeded", "profiles": {"seeded": NO_BLOCK_REGISTRATION}})
SETTINGS = {  # what `make test` and tally set for a private, local Prefect
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}
# The files by which workers and the controller's `SessionServer` talk, in its directory.
REQUEST = "wanted"  # a worker wants the server
READY = "server.json"  # {"url": ...}: it is healthy
FAILED = "failed"  # why it did not start
POLL_SECONDS = 0.1
CLOSE_SECONDS = 15.0  # `stop_server` waits up to 10 s for the server to end


@dataclass(frozen=True)
class PrefectApi:
    """The shared server: its API URL and its home (database, `server.log`)."""

    url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """`cli_runner.clean_env(...)` with this server as the user's own (PREFECT_API_URL)."""
        return clean_env(PREFECT_API_URL=self.url, **extra)

    def seed(self, prefect_home: Path) -> None:
        """Start `prefect_home` (e.g. `<data_dir>/.prefect`) with the database a first run
        leaves: migrated, block types registered, no flow run. A server started on it then
        skips the migrations, and a profile there (`SEEDED_PROFILE`) has it skip registering
        the block types again; for tests whose claim is not about a first run."""
        prefect_home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.home / MIGRATED, prefect_home / DATABASE)
        (prefect_home / "profiles.toml").write_text(SEEDED_PROFILE, encoding="utf-8")


@contextmanager
def own_server(home: Path) -> Iterator[PrefectApi]:
    """A server of this process's for the block, with this process's Prefect pointed at it."""
    with serving(home) as api, pointed_at(api, home):
        yield api


@contextmanager
def borrowed_server(directory: Path, client_home: Path) -> Iterator[PrefectApi]:
    """The controller's server (`SessionServer` on `directory`), asked for and waited for,
    with this process's Prefect pointed at it; `client_home` is this process's PREFECT_HOME."""
    (directory / REQUEST).touch()
    deadline = time.monotonic() + STARTUP_SECONDS + 30
    while not (directory / READY).exists():
        if (directory / FAILED).exists():
            raise RuntimeError((directory / FAILED).read_text(encoding="utf-8"))
        if time.monotonic() > deadline:
            raise TimeoutError(f"the session's Prefect server ({directory}) did not start")
        time.sleep(POLL_SECONDS)
    url = json.loads((directory / READY).read_text(encoding="utf-8"))["url"]
    api = PrefectApi(url=url, home=directory / "home")
    with pointed_at(api, client_home):
        yield api


class SessionServer:
    """The xdist controller's side of `borrowed_server`: a thread that starts the server in
    `directory` once a worker asks for it, and stops it at `close()` (the server dies with the
    thread that started it, so that thread lives until then)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="prefect-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the server; a thread still starting it is left (a daemon: the server dies with
        it as this process ends)."""
        self._closing.set()
        self._thread.join(timeout=CLOSE_SECONDS)

    def _serve(self) -> None:
        while not (self.directory / REQUEST).exists():
            if self._closing.wait(POLL_SECONDS):
                return
        try:
            with serving(self.directory / "home") as api:
                _write_atomically(self.directory / READY, json.dumps({"url": api.url}))
                self._closing.wait()
        except BaseException as error:  # the workers waiting for it say why
            if not (self.directory / READY).exists():
                _write_atomically(self.directory / FAILED, f"{type(error).__name__}: {error}")
            raise


@contextmanager
def serving(home: Path) -> Iterator[PrefectApi]:
    """A healthy server on a database of its own in `home` for the block; its migrated
    database copied for `PrefectApi.seed` first. Its output goes to `home/server.log`."""
    from pipelines.flows.prefect_server import start_server, stop_server, wait_healthy

    home.mkdir(parents=True, exist_ok=True)
    environment = clean_env(PREFECT_HOME=str(home), **SETTINGS)
    with (home / "server.log").open("wb") as output:
        process, url = start_server(environment, output=output)
        try:
            wait_healthy(process, url, STARTUP_SECONDS)
            _copy_database(home / DATABASE, home / MIGRATED)
            yield PrefectApi(url=url, home=home)
        finally:
            stop_server(process)


@contextmanager
def pointed_at(api: PrefectApi, client_home: Path) -> Iterator[None]:
    """This process's Prefect pointed at `api` for the block, as `prefect_test_harness` did;
    what Prefect's log and event workers hold is delivered on the way out."""
    for name, value in {"PREFECT_HOME": str(client_home), **SETTINGS}.items():
        os.environ.setdefault(name, value)  # as the harness did: Prefect's home in the session
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.flows.prefect_server import drain_workers

    with (
        temporary_settings(updates={PREFECT_API_URL: api.url}),
        # threads started without this context (Prefect's own) see it too, as under
        # `prefect_test_harness`
        prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
    ):
        try:
            yield
        finally:
            drain_workers()


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that a running server may be writing."""
    with closing(sqlite3.connect(source)) as reading, closing(sqlite3.connect(target)) as copy:
        reading.backup(copy)


def _write_atomically(path: Path, text: str) -> None:
    """`path` with `text`, never seen half-written by the workers polling for it."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
