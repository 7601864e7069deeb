"""The data-directory lock's edges: re-entry within a process, a peek of the same instant, a
dead holder's stale lock file, a directory that cannot be written (`pipelines/datadir_lock.py`).

Peeks and holders are real `flock`s on the real lock file: a second descriptor of it in this
process conflicts with the lock exactly as another process's would.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakeclock import FakeClock

from pipelines.cli import main
from pipelines.config_file import write_config
from pipelines.datadir_lock import (
    GRACE_SECONDS,
    DataDirLockedError,
    DataDirUnwritableError,
    Holder,
    data_dir_lock,
    held_here,
    lock_path,
    read_holder,
    refuse_if_locked,
)
from pipelines.exit_codes import ExitCode


@contextmanager
def flocked(data_dir: Path, kind: int) -> Iterator[int]:
    """The lock file opened on a descriptor of its own and locked `kind` (a peek: LOCK_SH)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, kind | fcntl.LOCK_NB)
    try:
        yield fd
    finally:
        os.close(fd)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def stale_lock_file(data_dir: Path) -> Holder:
    """A lock file as a SIGKILLed `tally sync` leaves it: naming a process that is gone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    dead = Holder(dead_pid(), "tally sync", os.uname().nodename, datetime.now(UTC))
    lock_path(data_dir).write_text(dead.to_json() + "\n")
    return dead


def test_the_lock_is_re_entrant_within_a_process_and_released_by_the_outer_block(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "link").symlink_to(data_dir)  # the same directory, spelt otherwise
    outer_notices: list[str] = []
    (data_dir / ".warehouse.duckdb.0123abcd.tmp").write_bytes(
        b"half"
    )  # swept by the outer block only
    with data_dir_lock(data_dir, command="sync", notice=outer_notices.append) as outer:
        (data_dir / ".warehouse.duckdb.4567cdef.tmp").write_bytes(b"being written")
        refuse_if_locked(data_dir)  # this process's own hold is no reason to refuse
        with data_dir_lock(tmp_path / "link", command="flow sync", wait=None) as inner:
            assert inner == outer == read_holder(data_dir)
            assert held_here(data_dir) == outer
        assert (data_dir / ".warehouse.duckdb.4567cdef.tmp").exists(), (
            "the inner block swept the outer's temp file"
        )
        assert lock_path(data_dir).exists() and held_here(data_dir) == outer
        with flocked_attempt(data_dir) as taken:
            assert not taken, "the lock was released by the inner block"
    assert outer_notices == ["removed 1 stale temp file(s) left by an interrupted run"]
    assert held_here(data_dir) is None and not lock_path(data_dir).exists()
    with flocked(data_dir, fcntl.LOCK_EX):  # free for anyone now
        pass


@contextmanager
def flocked_attempt(data_dir: Path) -> Iterator[bool]:
    fd = os.open(lock_path(data_dir), os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def test_a_writer_without_wait_is_not_refused_by_a_peek_of_the_same_instant(
    tmp_path: Path,
) -> None:
    stale_lock_file(tmp_path)  # a killed run's file: a peek opens it and locks it briefly
    peek = os.open(lock_path(tmp_path), os.O_RDWR)
    fcntl.flock(peek, fcntl.LOCK_SH | fcntl.LOCK_NB)
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the peek ends while the writer retries
        naps.append(seconds)
        os.close(peek)

    with data_dir_lock(tmp_path, command="sync", sleep=sleep) as me:
        assert read_holder(tmp_path) == me
    assert len(naps) == 1 and naps[0] <= GRACE_SECONDS


def test_two_peeks_of_the_same_instant_do_not_refuse_each_other(tmp_path: Path) -> None:
    stale_lock_file(tmp_path)
    with flocked(tmp_path, fcntl.LOCK_SH):
        refuse_if_locked(tmp_path)  # no error


def test_a_writer_refused_after_the_grace_never_names_a_dead_holder(tmp_path: Path) -> None:
    dead = stale_lock_file(tmp_path)
    clock = FakeClock()

    # A live holder that has locked the file but not yet written its line over the dead one's.
    with flocked(tmp_path, fcntl.LOCK_EX):
        with pytest.raises(DataDirLockedError) as writer:
            data_dir_lock(
                tmp_path, command="warehouse", clock=clock.monotonic, sleep=clock.sleep
            ).__enter__()
        with pytest.raises(DataDirLockedError) as peek:
            refuse_if_locked(tmp_path)
    assert sum(clock.sleeps) >= GRACE_SECONDS  # retried before refusing
    for refused in (writer.value, peek.value):
        (line,) = refused.lines
        assert f"pid {dead.pid}" not in line
        assert line == (
            f"data directory {tmp_path} is in use by another tally process; "
            "pass --wait to wait for it"
        )


def test_an_unwritable_data_directory_is_one_line_naming_it_and_the_os_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    data_dir = blocker / "data"
    with pytest.raises(DataDirUnwritableError) as raised:
        data_dir_lock(data_dir, command="warehouse").__enter__()
    (line,) = raised.value.lines
    assert line.startswith(f"cannot write the data directory {data_dir}: Not a directory")
    assert raised.value.exit_code == ExitCode.USAGE
    with pytest.raises(DataDirUnwritableError):
        refuse_if_locked(data_dir)

    write_config(tmp_path / "tally.toml", {"data_dir": str(data_dir)})
    code = main(["warehouse", "--config", str(tmp_path / "tally.toml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"tally warehouse: cannot write the data directory {data_dir}: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_shared_holders_run_beside_each_other_and_never_beside_a_writer(tmp_path: Path) -> None:
    """A fan-out's children hold the directory shared (`shared=True`): another shared holder
    (a descriptor of its own, as another process's) is let in, an exclusive one is not, and
    the file stays when a shared holder is done (others may hold it still)."""
    stale = stale_lock_file(tmp_path)
    temp = tmp_path / "lake" / "candles" / ".2024.0123abcd.tmp"  # another child's, being written
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"half")
    with data_dir_lock(tmp_path, command="flow sync-stream", wait=None, shared=True) as me:
        assert me.pid == os.getpid() and held_here(tmp_path) == me
        assert read_holder(tmp_path) == stale  # a shared holder writes no line
        with flocked(tmp_path, fcntl.LOCK_SH):  # another child
            pass
        with flocked_attempt(tmp_path) as taken:
            assert not taken, "an exclusive writer got in beside a shared holder"
        with pytest.raises(RuntimeError, match="held shared"):
            data_dir_lock(tmp_path, command="sync").__enter__()
        with data_dir_lock(tmp_path, command="flow sync-stream", shared=True):  # re-entrant
            pass
        with flocked_attempt(tmp_path) as taken:
            assert not taken, "the inner block released the lock"
    assert temp.exists(), "a shared holder swept a temp file"
    assert lock_path(tmp_path).exists() and held_here(tmp_path) is None
    with data_dir_lock(tmp_path, command="sync", wait=None) as writer:  # free for a writer
        assert read_holder(tmp_path) == writer
    assert not temp.exists(), "a writer sweeps it (its name is a temp file's)"


def test_a_shared_holder_is_refused_while_a_writer_holds_the_directory(tmp_path: Path) -> None:
    clock = FakeClock()
    with flocked(tmp_path, fcntl.LOCK_EX), pytest.raises(DataDirLockedError):
        data_dir_lock(
            tmp_path,
            command="flow sync-stream",
            shared=True,
            clock=clock.monotonic,
            sleep=clock.sleep,
        ).__enter__()
    assert held_here(tmp_path) is None
