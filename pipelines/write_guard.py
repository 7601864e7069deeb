"""Checks that must pass before this process writes or deletes a lake file.

    with write_guard(held.check):  # e.g. a fan-out child's stream lock (`stream_lock.HeldLock`)
        ...  # every `put_file` and object `unlink` calls `held.check()` first

A fan-out's child holds its stream's advisory lock on a connection of its own; if that session
drops, another machine may take the lock while this one keeps writing. The lake's writes all go
through `lake_store.put_file` and deletes of objects through `ObjectPath.unlink`: both call
`check_writes()`, which runs every registered check (in the process: the tasks of a flow run are
threads of its process) and lets the first failure abort the write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_checks: list[Callable[[], None]] = []


@contextmanager
def write_guard(check: Callable[[], None]) -> Iterator[None]:
    """Run `check` before every lake write or object delete of this process during the block."""
    with _lock:
        _checks.append(check)
    try:
        yield
    finally:
        with _lock:
            _checks.remove(check)


def check_writes() -> None:
    """Run the registered checks (raising what the first failing one raises)."""
    with _lock:
        checks = tuple(_checks)
    for check in checks:
        check()
