"""A budget file that cannot be read, and forks: what `StateFile` and the shared budgets do.

A write torn by a crash (or a file of another version) must not reset the budget: the budgets
then take it as spent and nobody sends for one window. A child forked while a thread of its
parent edits the file must not deadlock, nor keep the parent's lock alive. All on an injected
clock; the forks use real processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from forked import ends_with_exit
from test_limiters import FakeClock
from test_shared_budget import Exhausted, never_sleep

from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.http import SharedRequestBudget, SharedWeightBudget
from pipelines.http._statefile import StateFile

T0 = 1_700_000_000.0
WINDOW = 60.0


def request_budget(path: Path, clock: FakeClock) -> SharedRequestBudget:
    """3 requests per minute (and 10 per second), as one process would have it; never waits."""
    return SharedRequestBudget(path, 3, WINDOW, 10, clock=clock, sleep=never_sleep)


def documents(path: Path, clock: FakeClock, later: float) -> tuple[bytes, bytes]:
    """The file after one request, and after a second one `later` seconds on."""
    budget = request_budget(path, clock)
    budget.acquire()
    old = path.read_bytes()
    clock.now += later
    budget.acquire()
    return old, path.read_bytes()


def torn(old: bytes, new: bytes) -> bytes:
    """A crash halfway through writing `new` over `old`: its first half, then the old bytes."""
    half = len(new) // 2
    return new[:half] + old[half:]


def spliced(old: bytes, new: bytes) -> bytes:
    """A write torn just before its last changed byte: with both requests in the same slots,
    that is the count of the minute window (the last key), so the line still parses."""
    assert len(old) == len(new)
    last = max(index for index in range(len(new)) if new[index] != old[index])
    line = new[:last] + old[last:]
    document = json.loads(line.split(b"\n")[0])
    assert isinstance(document, dict) and document.get("windows")  # what a reader accepts
    return line


def zeros(old: bytes, new: bytes) -> bytes:
    """What a file system can show after a power loss: the size was written, the data not."""
    return b"\0" * len(new)


def other_version(old: bytes, new: bytes) -> bytes:
    return json.dumps({"version": 99, "windows": {}}).encode() + b"\n"


DAMAGES = {  # how each damage comes about: the seconds between the two writes, and the bytes
    "torn": (1.5, torn),  # the second document is longer (a second slot)
    "spliced": (0.0, spliced),  # the same length: only counts (and a checksum) change
    "zeros": (1.5, zeros),
    "other version": (1.5, other_version),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_an_unreadable_request_budget_is_taken_as_spent_for_one_window(tmp_path: Path, damage: str):
    path = tmp_path / "b.json"
    clock = FakeClock()
    later, broken = DAMAGES[damage]
    old, new = documents(path, clock, later)  # 2 of 3 sent: one more would fit
    path.write_bytes(broken(old, new))

    with pytest.raises(Exhausted) as waited:
        request_budget(path, clock).acquire()
    assert waited.value.args[0] == pytest.approx(WINDOW)  # not "afresh": 3 more right away

    # The conservative state was written back: another process waits for the same block,
    # rather than starting one of its own later.
    clock.now += 20
    with pytest.raises(Exhausted) as waited:
        request_budget(path, clock).acquire()
    assert waited.value.args[0] == pytest.approx(WINDOW - 20)

    # A window later the budget is whole again.
    clock.now += WINDOW - 20
    budget = request_budget(path, clock)
    for _ in range(3):
        budget.acquire()
    with pytest.raises(Exhausted):
        budget.acquire()


@pytest.mark.parametrize("damage", [torn, zeros])
def test_an_unreadable_weight_budget_waits_a_window_then_probes(
    tmp_path: Path, damage: Callable[[bytes, bytes], bytes]
):
    path = tmp_path / "v.json"
    clock = FakeClock()
    first = SharedWeightBudget(
        path, headers=WEIGHT_HEADERS, reserve=0, pace_below=0.0, clock=clock, sleep=clock.sleep
    )
    first.acquire(1)  # the probe
    old = path.read_bytes()
    first.observe(
        {
            "bitvavo-ratelimit-remaining": "900",
            "bitvavo-ratelimit-resetat": str(round((T0 + 30) * 1000)),
            "bitvavo-ratelimit-limit": "1000",
        },
        1,
    )
    first.acquire(5)
    new = path.read_bytes()  # 900 left, 5 in flight
    path.write_bytes(damage(old, new))

    budget = SharedWeightBudget(
        path, headers=WEIGHT_HEADERS, reserve=0, pace_below=0.0, clock=clock, sleep=never_sleep
    )
    with pytest.raises(Exhausted) as waited:
        budget.acquire(1)
    assert waited.value.args[0] == pytest.approx(60.0)  # Bitvavo's window

    clock.now += 60.0
    budget.acquire(1)  # the probe...
    with pytest.raises(Exhausted):
        budget.acquire(1)  # ...goes alone until its response tells the budget


def test_a_document_stays_readable_across_writes(tmp_path: Path):
    path = tmp_path / "s.json"
    for count in range(1, 4):
        with StateFile(path).edit() as state:
            state["count"] = state.get("count", 0) + 1
            state["note"] = "é" * count  # not ASCII, and the document changes length
    with StateFile(path, recover=lambda: {"recovered": True}).edit() as state:
        assert state["count"] == 3 and "recovered" not in state


def test_a_document_is_written_back_only_when_an_edit_changed_it(tmp_path: Path):
    path = tmp_path / "s.json"
    with StateFile(path).edit() as state:
        state["count"] = 1
    written = path.read_bytes()
    path.write_bytes(written + b"an old tail")  # (only the first line counts)
    with StateFile(path).edit() as state:
        assert state["count"] == 1  # read, not changed: not written
    assert path.read_bytes() == written + b"an old tail"
    with StateFile(path).edit() as state:
        state["count"] = 2
    with StateFile(path, recover=lambda: {"recovered": True}).edit() as state:
        assert state == {"count": 2, "version": 2}
    assert b"an old tail" not in path.read_bytes()


# ------------------------------------------------------------------------------------------ fork


def mark_child(state_file: StateFile, failure: Path) -> None:
    """In a child forked with `state_file` (whose mutex a parent's thread held at the fork);
    what went wrong, if anything, is written to `failure` for the parent's assertion."""
    try:
        with state_file.edit() as state:
            state["child"] = True
    except BaseException:
        failure.write_text(traceback.format_exc(), encoding="utf-8")
        raise


def test_a_child_forked_while_a_thread_edits_is_not_deadlocked(tmp_path: Path):
    state_file = StateFile(tmp_path / "s.json")
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state_file.edit() as state:
            state["parent"] = True
            inside.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(60)
    failure = tmp_path / "child-failure.txt"
    child = multiprocessing.get_context("fork").Process(
        target=ends_with_exit(mark_child), args=(state_file, failure)
    )
    try:
        child.start()  # the mutex and the file's lock are held by the thread right now
        release.set()
        holder.join(60)
        child.join(60)  # a deadlocked child never ends
    finally:
        if child.exitcode is None:
            child.kill()
            child.join()
    assert child.exitcode == 0, failure.read_text() if failure.exists() else "no exception"
    with state_file.edit() as state:
        assert state["parent"] is True and state["child"] is True  # both edits, in turn


def hold_after_forking(path: Path, report: int) -> None:
    """A process that forks a long-lived child, then holds the file's lock until killed.
    Writes the child's pid to `report` once it holds the lock."""
    state_file = StateFile(path)
    with state_file.edit() as state:
        state["n"] = 1  # the descriptor is open now: a child inherits it
    child = os.fork()
    if child == 0:
        time.sleep(60)  # a worker that lives on
        os._exit(0)
    with state_file.edit():
        os.write(report, f"{child}\n".encode())
        time.sleep(600)


def test_a_forked_child_does_not_keep_a_killed_parents_lock(tmp_path: Path):
    path = tmp_path / "s.json"
    read, write = os.pipe()
    parent = os.fork()  # plain forks: a multiprocessing child would wait for its grandchild
    if parent == 0:
        try:
            os.close(read)
            hold_after_forking(path, write)
        finally:
            os._exit(1)
    os.close(write)
    child = 0
    try:
        with os.fdopen(read) as reports:
            child = int(reports.readline())  # the parent holds the lock now
        os.kill(parent, signal.SIGKILL)
        os.waitpid(parent, 0)
        with open(path, "a") as probe:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # not held by the live child
            fcntl.flock(probe, fcntl.LOCK_UN)
    finally:
        for pid in (parent, child):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(parent, 0)
