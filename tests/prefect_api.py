"""One Prefect server for the tests of a process (the `prefect_api` fixture in conftest.py).

Started as `tally` starts its temporary server (`pipelines/flows/prefect_server.py`: the same
child script and settings, dying with this process), with its PREFECT_HOME (its SQLite
database) and its output in a directory of the session. While it runs, Prefect in this process
points at it (as `prefect_test_harness` did), and a `tally` subprocess uses it when its
environment names it (`PrefectApi.env()`): tally leaves a user's own server alone, so it starts
none of its own (10–20 s of CPU each). Tests of tally's own server (its start, stale-run
marking, what a killed or interrupted tally leaves) keep starting theirs; those not about a
first run start theirs on a copy of this server's database as it was before any test used it
(`PrefectApi.seed`): migrated, so that their server skips the migrations (~5 s of CPU each).
Under xdist only the first worker's server migrates its database: it leaves a copy in the
session's directory, on which the others start theirs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
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
def shared_server(home: Path, session: Path) -> Iterator[PrefectApi]:
    """The server for the block, with this process's Prefect pointed at it. `session` is a
    directory all the session's processes share: the first server to start there leaves its
    migrated database in it, and the others (started after it, in turn) start on a copy."""
    for name, value in {"PREFECT_HOME": str(home), **SETTINGS}.items():
        os.environ.setdefault(name, value)  # as the harness did: Prefect's home in the session
    import prefect.context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.flows.prefect_server import (
        drain_workers,
        start_server,
        stop_server,
        wait_healthy,
    )

    environment = clean_env(PREFECT_HOME=str(home), **SETTINGS)
    template = session / MIGRATED
    with (home / "server.log").open("wb") as output, ExitStack() as first:
        first.enter_context(_locked(session / f"{MIGRATED}.lock"))
        if template.exists():  # migrated by the session's first server: start on a copy
            shutil.copyfile(template, home / DATABASE)
            environment.update(NO_BLOCK_REGISTRATION)
            first.close()
        process, url = start_server(environment, output=output)
        try:
            wait_healthy(process, url, STARTUP_SECONDS)
            _copy_database(home / DATABASE, home / MIGRATED)
            if not template.exists():
                shutil.copyfile(home / MIGRATED, template)
            first.close()
            with (
                temporary_settings(updates={PREFECT_API_URL: url}),
                # threads started without this context (Prefect's own) see it too, as under
                # `prefect_test_harness`
                prefect.context._temporary_global_settings_context(
                    prefect.context.get_settings_context()
                ),
            ):
                try:
                    yield PrefectApi(url=url, home=home)
                finally:
                    drain_workers()
        finally:
            stop_server(process)


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that a running server may be writing."""
    with closing(sqlite3.connect(source)) as reading, closing(sqlite3.connect(target)) as copy:
        reading.backup(copy)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """`path` locked (`flock`) against the session's other processes for the block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file unlocks it
