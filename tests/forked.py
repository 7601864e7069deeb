"""Targets of fork children in tests: `ends_with_exit(target)` runs `target` and ends the child
with `os._exit(0)`, as a forked child should end.

A fork child that returns normally runs the exit hooks it inherited from the test process, and
not every hook survives a fork: once a Prefect flow has run in the process (tests/test_flows.py
in the same xdist worker), the threading exit hooks of Prefect's log and event workers assert in
the child (prefect 3.8: `reset_for_fork` clears what `_at_exit` asserts on), and it exits 1 though
its target succeeded. An exception in the target still ends the child with exit code 1
(multiprocessing prints it), so the exit code says whether the target finished, whatever ran
before it in the worker.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any


def ends_with_exit(target: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(target)
    def run(*args: Any) -> None:
        target(*args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    return run


def run_forked(
    context: Any,
    target: Callable[..., None],
    args: tuple[Any, ...],
    children: int,
    *,
    timeout: float,
    started: Callable[[], object] | None = None,
) -> list[int | None]:
    """Fork `children` processes of `target(*args, slot)` (through `ends_with_exit`), call
    `started()` once all are started, wait for each at most `timeout` seconds, and give their
    exit codes in slot order (None: still running at the end, then killed)."""
    processes = [
        context.Process(target=ends_with_exit(target), args=(*args, slot))
        for slot in range(children)
    ]
    for process in processes:
        process.start()
    if started is not None:
        started()
    try:
        for process in processes:
            process.join(timeout)
        return [process.exitcode for process in processes]
    finally:
        for process in processes:
            if process.exitcode is None:
                process.kill()
                process.join()
