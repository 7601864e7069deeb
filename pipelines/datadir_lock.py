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

The lock is re-entrant within a process: `tally sync` holds it and runs `sync_flow`, which takes
it too (as it must when a deployment runs it); the inner block then holds nothing new, and the
lock is released when the last block of the process ends.

A writer of part of the lake only (a fan-out's child flow run: one exchange × stream, see
`pipelines.flows.fanout`) takes the lock *shared* (`shared=True`): such writers run beside each
other, and exclude (and are excluded by) every exclusive writer, whose sweeps and warehouse
rebuilds must see the lake still. A shared holder writes no holder line, sweeps nothing and
leaves the file in place when it is done (other shared holders may still hold it).

`refuse_if_locked` peeks with a shared lock, so that two peeks never refuse each other; a
writer that finds the lock taken without `wait` retries for `GRACE_SECONDS` before it refuses,
so that a peek of that instant is not mistaken for a holder. A refusal names the holder the
lock file names only while that process is alive (the file may be a killed run's).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lock_wait import wait_for

LOCK_FILE = ".lock"
POLL_SECONDS = 0.2
GRACE_SECONDS = 0.1  # how long a writer without `wait` retries (a peek holds the lock briefly)
GRACE_STEP_SECONDS = 0.01


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

    def alive(self) -> bool:
        """Whether the process still runs (one on another host is taken to: it cannot be told)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, another user's
        return True

    def describe(self) -> str:
        """`pid 4242 (tally sync, since 2025-01-15 10:00:03 UTC)`, naming the host if not ours."""
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        since = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"pid {self.pid}{where} ({self.command}, since {since})"


@dataclass
class _Held:
    pid: int  # a forked child inherits the registry, not the right to the lock
    fd: int
    holder: Holder
    depth: int = 1
    shared: bool = False


_HELD: dict[Path, _Held] = {}  # data directories this process holds, by resolved path
_HELD_LOCK = threading.Lock()


class DataDirUnwritableError(OperatorError):
    """The data directory (or its lock file) cannot be created."""

    exit_code = ExitCode.USAGE


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def held_here(data_dir: Path) -> Holder | None:
    """The holder of `data_dir`'s lock when it is this process, else None."""
    with _HELD_LOCK:
        held = _HELD.get(data_dir.resolve())
        return held.holder if held is not None and held.pid == os.getpid() else None


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
    if held_here(data_dir) is not None:
        return
    try:
        fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no lock file: nobody holds it
    except OSError as error:
        raise _unwritable(data_dir, error) from error
    try:
        # Shared: another peek of the same instant is not refused; a writer retries (GRACE).
        if not _try_lock(fd, fcntl.LOCK_SH):
            raise _refusal(data_dir, time.sleep)
    finally:
        os.close(fd)  # releases the lock if we took it


def stderr_line(line: str) -> None:
    """Print `line` on stderr at once (the default `notice` of tally's long-running blocks)."""
    print(line, file=sys.stderr, flush=True)


@contextmanager
def data_dir_lock(
    data_dir: Path,
    *,
    command: str,
    wait: float | None = None,
    notice: Callable[[str], None] = stderr_line,
    sweep: bool = True,
    shared: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Holder]:
    """Hold `data_dir`'s writer lock for the block; yields the holder written into it.

    `wait` None: fail at once (`DataDirLockedError`) when another process holds it; a number
    of seconds (`math.inf`: no limit): wait that long, saying so once through `notice`.
    Once held, stale temp files in the directory are swept (`sweep`; see `leftovers.py`).
    `shared`: held beside other shared holders, never beside an exclusive one; nothing is
    written or swept (see the module docstring).
    When this process holds it already, the block runs inside that hold (nothing is taken,
    written or swept; an exclusive block inside a shared hold is refused: a `RuntimeError`).
    A directory that cannot be created raises `DataDirUnwritableError`.
    """
    if _enter_held(data_dir, shared):
        try:
            yield _HELD[data_dir.resolve()].holder
        finally:
            _leave(data_dir)
        return
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(data_dir, error) from error
    path = lock_path(data_dir)
    kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    fd = _acquire(path, data_dir, wait, notice, clock, sleep, kind)
    if shared:
        with _HELD_LOCK:
            _HELD[data_dir.resolve()] = _Held(
                os.getpid(), fd, Holder.me(command, datetime.now(UTC)), shared=True
            )
        try:
            yield _HELD[data_dir.resolve()].holder
        finally:
            _leave(data_dir)
        return
    try:
        holder = Holder.me(command, datetime.now(UTC))
        os.ftruncate(fd, 0)  # a killed holder's line may still be there
        os.pwrite(fd, (holder.to_json() + "\n").encode(), 0)
        with _HELD_LOCK:
            _HELD[data_dir.resolve()] = _Held(os.getpid(), fd, holder)
    except BaseException:
        path.unlink(missing_ok=True)
        os.close(fd)
        raise
    try:
        if sweep:
            from pipelines.leftovers import sweep_temp_files

            swept = sweep_temp_files(data_dir)
            if swept:
                notice(f"removed {len(swept)} stale temp file(s) left by an interrupted run")
        yield holder
    finally:
        _leave(data_dir)


def _enter_held(data_dir: Path, shared: bool) -> bool:
    """Count one more block in this process's hold of `data_dir`, if it has one."""
    with _HELD_LOCK:
        held = _HELD.get(data_dir.resolve())
        if held is None or held.pid != os.getpid():
            return False
        if held.shared and not shared:
            raise RuntimeError(f"data directory {data_dir} is held shared by this process")
        held.depth += 1
        return True


def _leave(data_dir: Path) -> None:
    """End one block of this process's hold; the last one releases the lock."""
    key = data_dir.resolve()
    with _HELD_LOCK:
        held = _HELD[key]
        held.depth -= 1
        if held.depth:
            return
        del _HELD[key]
        if held.shared:
            os.close(held.fd)  # other shared holders may still hold the file: it stays
            return
        # Removed while still held: a waiter that opened this file sees that it is gone once
        # it gets the lock, and opens the next one (`_open_locked`).
        lock_path(data_dir).unlink(missing_ok=True)
        os.close(held.fd)  # releases the lock


def _unwritable(data_dir: Path, error: OSError) -> DataDirUnwritableError:
    where = f" ({error.filename})" if error.filename and Path(error.filename) != data_dir else ""
    return DataDirUnwritableError(
        f"cannot write the data directory {data_dir}: {error.strerror or error}{where}"
    )


def _refusal(data_dir: Path, sleep: Callable[[float], None]) -> DataDirLockedError:
    return DataDirLockedError(
        f"data directory {data_dir} is in use by {_who(data_dir, sleep)}; "
        "pass --wait to wait for it"
    )


def _acquire(
    path: Path,
    data_dir: Path,
    wait: float | None,
    notice: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    kind: int = fcntl.LOCK_EX,
) -> int:
    fd = _open_locked(path, data_dir, kind)
    if fd is not None:
        return fd
    if wait is None:
        grace_end = clock() + GRACE_SECONDS
        while (left := grace_end - clock()) > 0:
            sleep(min(GRACE_STEP_SECONDS, left))
            if (fd := _open_locked(path, data_dir, kind)) is not None:
                return fd
        raise _refusal(data_dir, sleep)
    return wait_for(
        lambda: _open_locked(path, data_dir, kind),
        what=f"data directory {data_dir}",
        holder=lambda: _who(data_dir, sleep),
        wait=wait,
        notice=notice,
        clock=clock,
        sleep=sleep,
        poll_seconds=POLL_SECONDS,
        refused=DataDirLockedError,
    )


def _open_locked(path: Path, data_dir: Path, kind: int = fcntl.LOCK_EX) -> int | None:
    """A descriptor of `path` holding its lock, or None while another process holds it."""
    while True:
        # O_CLOEXEC (also Python's default): a child such as the Prefect server must not
        # inherit the descriptor, or the lock would outlive a killed tally in its child.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise _unwritable(data_dir, error) from error
        try:
            locked = _try_lock(fd, kind)
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


def _try_lock(fd: int, kind: int = fcntl.LOCK_EX) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _who(data_dir: Path, sleep: Callable[[float], None]) -> str:
    # A holder that has just taken the lock may not have written its line yet (the file is
    # empty, or still names a killed holder, whose pid is never named).
    for _ in range(5):
        holder = read_holder(data_dir)
        if holder is not None and holder.alive():
            return holder.describe()
        sleep(0.05)
    return "another tally process"
