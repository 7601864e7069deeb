"""One writer per data directory: an exclusive `flock` on `<data_dir>/.lock`.

    with data_dir_lock(settings.data_dir, command="sync", wait=None):
        ...  # write the lake, the warehouse

Every command that writes the lake or the warehouse (`tally sync`, `tally warehouse`,
`tally demo`) takes the lock; readers (`tally sql`, `tally status`, `tally export`, the `duckdb`
shell, notebooks) never do, and are never blocked: every file a writer changes is replaced
whole by a rename, so a reader sees the old file or the new one.

The holder writes its pid, command, host and start time into the file, so that a second
writer can say who is in the way, and removes the file when it is done. The kernel releases a
`flock` when its holder dies, even by SIGKILL, so a crashed writer never leaves the directory
locked (only a lock file naming a process that no longer holds it); what it leaves (temp files,
see `leftovers.py`) is swept by the next writer once it holds the lock, the only moment they
are certainly stale. `flock` spans one machine: two hosts sharing the directory over a network
file system are not kept apart.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.exit_codes import ExitCode, OperatorError

LOCK_FILE = ".lock"
POLL_SECONDS = 0.2


class DataDirLockedError(OperatorError):
    """Another writer holds the data directory (and we were not asked to wait, or long enough)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a data directory's lock, as written into its lock file."""

    pid: int
    command: str
    host: str
    since: datetime

    @classmethod
    def me(cls, command: str, now: datetime) -> Holder:
        return cls(os.getpid(), f"tally {command}", socket.gethostname(), now)

    def to_json(self) -> str:
        since = self.since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return json.dumps(
            {"pid": self.pid, "command": self.command, "host": self.host, "since": since}
        )

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        try:
            raw = json.loads(text)
            since = datetime.fromisoformat(str(raw["since"]).replace("Z", "+00:00"))
            return cls(int(raw["pid"]), str(raw["command"]), str(raw["host"]), since)
        except (ValueError, KeyError, TypeError):
            return None  # not written yet (the holder is between its flock and its write)

    def describe(self) -> str:
        """`pid 4242 (tally sync, since 2025-01-15 10:00:03 UTC)`, naming the host if not ours."""
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        since = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid}{where} ({self.command}, since {since})"


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def read_holder(data_dir: Path) -> Holder | None:
    """What the lock file says (its last holder, whether or not it still holds it)."""
    try:
        return Holder.from_json(lock_path(data_dir).read_text(encoding="utf-8"))
    except OSError:
        return None


def refuse_if_locked(data_dir: Path) -> None:
    """Raise `DataDirLockedError` now if another process holds `data_dir`'s lock; creates
    nothing (a command that checks other things before it locks calls this first, so that a
    second writer is told at once, and a first run that fails its checks leaves no directory).
    """
    try:
        fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no lock file: nobody holds it
    try:
        if not _try_lock(fd):
            raise DataDirLockedError(
                f"data directory {data_dir} is in use by {_who(data_dir, time.sleep)}; "
                "pass --wait to wait for it"
            )
    finally:
        os.close(fd)  # releases the lock if we took it


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def data_dir_lock(
    data_dir: Path,
    *,
    command: str,
    wait: float | None = None,
    notice: Callable[[str], None] = _stderr,
    sweep: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Holder]:
    """Hold `data_dir`'s writer lock for the block; yields the holder written into it.

    `wait` None: fail at once (`DataDirLockedError`) when another process holds it; a number
    of seconds (`math.inf`: no limit): wait that long, saying so once through `notice`.
    Once held, stale temp files in the directory are swept (`sweep`; see `leftovers.py`).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(data_dir)
    fd = _acquire(path, data_dir, wait, notice, clock, sleep)
    try:
        holder = Holder.me(command, datetime.now(UTC))
        os.ftruncate(fd, 0)  # a killed holder's line may still be there
        os.pwrite(fd, (holder.to_json() + "\n").encode(), 0)
        if sweep:
            from pipelines.leftovers import sweep_temp_files

            swept = sweep_temp_files(data_dir)
            if swept:
                notice(f"removed {len(swept)} stale temp file(s) left by an interrupted run")
        yield holder
    finally:
        # Removed while still held: a waiter that opened this file sees that it is gone once
        # it gets the lock, and opens the next one (`_open_locked`).
        path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock


def _acquire(
    path: Path,
    data_dir: Path,
    wait: float | None,
    notice: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> int:
    fd = _open_locked(path)
    if fd is not None:
        return fd
    if wait is None:
        raise DataDirLockedError(
            f"data directory {data_dir} is in use by {_who(data_dir, sleep)}; "
            "pass --wait to wait for it"
        )
    limit = "" if math.isinf(wait) else f" (at most {wait:g} s)"
    notice(f"waiting for data directory {data_dir}{limit}: in use by {_who(data_dir, sleep)}")
    deadline = clock() + wait
    while (fd := _open_locked(path)) is None:
        left = deadline - clock()
        if left <= 0:
            raise DataDirLockedError(
                f"data directory {data_dir} is still in use by {_who(data_dir, sleep)} "
                f"after waiting {wait:g} s"
            )
        sleep(min(POLL_SECONDS, left))
    return fd


def _open_locked(path: Path) -> int | None:
    """A descriptor of `path` holding its lock, or None while another process holds it."""
    while True:
        # O_CLOEXEC (also Python's default): a child such as the Prefect server must not
        # inherit the descriptor, or the lock would outlive a killed tally in its child.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            locked = _try_lock(fd)
            if locked and _is_current(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if not locked:
            return None
        # We locked a file its holder removed as it finished: the next writer's is a new one.


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _who(data_dir: Path, sleep: Callable[[float], None]) -> str:
    # A holder that has just taken the lock may not have written its line yet.
    for _ in range(5):
        holder = read_holder(data_dir)
        if holder is not None:
            return holder.describe()
        sleep(0.05)
    return "another tally process"
