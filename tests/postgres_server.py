"""A throwaway PostgreSQL server for tests (the `postgres` fixture in conftest.py).

`postgres_server()` runs `initdb` into a new directory under the system's temporary directory,
starts `postgres` on a free loopback port with trust authentication (loopback only: initdb's
pg_hba.conf for `--auth=trust` admits local sockets and 127.0.0.1/::1), creates a database,
and yields a `PostgresServer` with its URLs. At the end it stops the server (`pg_ctl stop -m
fast`, then by pid: SIGQUIT, SIGKILL) and removes the directory, whatever happened in between.

PostgreSQL refuses to run as root. When the tests run as root (this machine and CI), the server
runs as an unprivileged user: `postgres` when it exists, else `nobody` (or `TALLY_PG_USER`);
its directory is made theirs. As any other user it runs as that user. The server starts through
`child_of.py`, so that the kernel stops it (SIGINT: a fast shutdown) if the test process dies
without reaching its `finally`; the directory is then left, and the next session removes such
directories whose server is gone (`sweep_leftovers`).

The binaries are found on PATH (`initdb`, resolved through symlinks to their directory), else
in the newest `/usr/lib/postgresql/*/bin` or `/usr/pgsql-*/bin`; `TALLY_PG_BINDIR` names the
directory outright. `find_bindir()` is None when there is none (the fixture skips).

Settings for a test server, not for data: fsync, full-page writes and synchronous commit are
off (a crash loses the database, which the test would lose anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from process_tree import start_time

LAUNCHER = Path(__file__).with_name("child_of.py")
PREFIX = "tally-pg-"  # of the temporary directories (`sweep_leftovers` knows them by it)
SUPERUSER = "postgres"  # the role initdb creates; trust authentication on loopback
START_SECONDS = 60.0
STOP_SECONDS = 30.0
START_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "200",  # a Prefect server's pool (5 + 10 overflow) per process, and more
    "shared_buffers": "32MB",
}


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL server and the database made for the tests."""

    host: str
    port: int
    database: str
    user: str  # the superuser role (trust authentication)
    directory: Path  # the temporary directory: data/, the socket, server.log
    bindir: Path
    version: str  # `postgres --version`'s number, e.g. "15.13"

    def url(self, database: str | None = None, *, driver: str | None = None) -> str:
        """`postgresql://user@host:port/database`, or `postgresql+DRIVER://...`."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{database or self.database}"

    @property
    def asyncpg_url(self) -> str:
        """The database's URL as SQLAlchemy with asyncpg takes it (Prefect's
        `PREFECT_API_DATABASE_CONNECTION_URL`)."""
        return self.url(driver="asyncpg")

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def fetch(self, query: str, *args: Any, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run `query` (asyncpg's $1 placeholders) in a connection of its own; its rows."""
        return asyncio.run(_run(self.url(database), query, args, rows=True))

    def execute(self, query: str, *args: Any, database: str | None = None) -> None:
        """Run `query` (a statement: its rows, if any, are dropped)."""
        asyncio.run(_run(self.url(database), query, args, rows=False))


async def _run(url: str, query: str, args: Sequence[Any], *, rows: bool) -> list[tuple[Any, ...]]:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url)
    try:
        if rows:
            return [tuple(row) for row in await connection.fetch(query, *args)]
        await connection.execute(query, *args)
        return []
    finally:
        await connection.close()


def find_bindir() -> Path | None:
    """The directory of PostgreSQL's server binaries (see the module docstring), or None."""
    named = os.environ.get("TALLY_PG_BINDIR")
    if named:
        return Path(named)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = [
        Path(p)
        for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
        for p in sorted(Path("/").glob(pattern.lstrip("/")))
    ]
    usable = [p for p in found if (p / "initdb").is_file() and (p / "postgres").is_file()]
    return max(usable, key=_major, default=None)


def _major(bindir: Path) -> int:
    digits = re.findall(r"\d+", str(bindir))
    return int(digits[-1]) if digits else 0


def server_user() -> str | None:
    """The user to run PostgreSQL as: None (this one) unless this process is root."""
    if os.geteuid() != 0:
        return None
    named = os.environ.get("TALLY_PG_USER")
    candidates = [named] if named else [SUPERUSER, "nobody"]
    for name in candidates:
        with contextlib.suppress(KeyError):
            if pwd.getpwnam(name).pw_uid != 0:
                return name
    raise RuntimeError(
        "the tests run as root and PostgreSQL refuses to; no unprivileged user to run it as "
        f"(tried {', '.join(candidates)}; set TALLY_PG_USER)"
    )


@contextmanager
def postgres_server(
    database: str = "tally", *, base: Path | None = None
) -> Iterator[PostgresServer]:
    """A running server with `database` created, for the block (see the module docstring)."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb, postgres) found")
    user = server_user()
    root = Path(base) if base is not None else Path(tempfile.gettempdir())
    sweep_leftovers(root)
    directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    process: subprocess.Popen[bytes] | None = None
    try:
        (directory / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
        if user is not None:
            _check_reachable(directory, user)
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        version = _version(bindir)
        _initdb(bindir, directory, user)
        process, port = _start(bindir, directory, user)
        _createdb(bindir, directory, port, database)
        yield PostgresServer("127.0.0.1", port, database, SUPERUSER, directory, bindir, version)
    finally:
        try:
            if process is not None:
                _stop(bindir, directory, user, process)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _version(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"(\d+(?:\.\d+)*)", out)
    return found.group(1) if found else out.strip()


def _as(user: str | None) -> dict[str, Any]:
    """subprocess options that run a short-lived binary as `user` (None: as this process)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _initdb(bindir: Path, directory: Path, user: str | None) -> None:
    _tool(
        bindir / "initdb",
        [
            *("-D", str(directory / "data")),
            *("-U", SUPERUSER),
            "--auth=trust",
            *("--encoding", "UTF8"),
            "--locale=C",
            "--no-sync",
        ],
        directory,
        user,
    )


def _createdb(bindir: Path, directory: Path, port: int, database: str) -> None:
    """Create `database` through the server (a client: any user may run it)."""
    args = [*("-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER), database]
    _tool(bindir / "createdb", args, directory, None)


def _tool(program: Path, args: list[str], directory: Path, user: str | None) -> None:
    """Run one of PostgreSQL's binaries to its end (as `user`); its output when it fails."""
    done = subprocess.run(
        [str(program), *args],
        cwd=directory,
        env=_server_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        **_as(user),
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{program.name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )


def _server_env() -> dict[str, str]:
    """The environment of the server's processes: no PG* variable of the caller's."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**kept, "LC_ALL": "C"}


def _start(bindir: Path, directory: Path, user: str | None) -> tuple[subprocess.Popen[bytes], int]:
    """The server's process and port once it accepts connections."""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        options = [f"-c{name}={value}" for name, value in SETTINGS.items()]
        program = [
            str(bindir / "postgres"),
            *("-D", str(directory / "data")),
            *("-p", str(port)),
            f"-cunix_socket_directories={directory}",
            *options,
        ]
        launcher = [sys.executable, "-P", str(LAUNCHER), str(os.getpid()), "INT"]
        if user is not None:
            launcher += ["--user", user]
        with (directory / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [*launcher, "--", *program],
                cwd=directory,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the terminal is for the test process
            )
        if _wait_ready(process, directory, port):
            return process, port
        _kill(process)
        text = (directory / "server.log").read_text(errors="replace")
        if "could not bind" not in text or attempt == START_ATTEMPTS:
            raise RuntimeError(f"PostgreSQL did not start (port {port}):\n{text[-4000:]}")
    raise AssertionError("unreachable")


def _wait_ready(process: subprocess.Popen[bytes], directory: Path, port: int) -> bool:
    """Whether the server came up: postmaster.pid says `ready` and the port answers."""
    deadline = time.monotonic() + START_SECONDS
    pid_file = directory / "data" / "postmaster.pid"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            lines = pid_file.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
        time.sleep(0.05)
    return False


def _stop(
    bindir: Path, directory: Path, user: str | None, process: subprocess.Popen[bytes]
) -> None:
    """`pg_ctl stop -m fast`; then the process itself: SIGQUIT (immediate), SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                [
                    str(bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(directory / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(STOP_SECONDS)),
                ],
                cwd=directory,
                env=_server_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=STOP_SECONDS + 5,
                check=False,
                **_as(user),
            )
    _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Stop the postmaster by pid unless it is gone, and reap it; its backends follow it."""
    for number, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(number)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _check_reachable(directory: Path, user: str) -> None:
    """Refuse a directory whose parents `user` cannot enter (a root-only TMPDIR)."""
    for parent in directory.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise RuntimeError(
                f"{user} cannot enter {parent}: set TMPDIR to a directory everyone can enter"
            )


def sweep_leftovers(root: Path) -> None:
    """Remove the directories of earlier sessions' servers in `root` whose test process and
    server are both gone (a killed session leaves its directory; its server died with it)."""
    for directory in root.glob(f"{PREFIX}*"):
        try:
            pid, started = (directory / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # being made, or not ours
        if start_time(int(pid)) == started:
            continue  # its session still runs
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((directory / "data" / "postmaster.pid").read_text().split()[0])
            if start_time(postmaster) is not None:
                continue  # its server still runs: leave it alone
        shutil.rmtree(directory, ignore_errors=True)
