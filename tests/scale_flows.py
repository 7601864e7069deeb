"""Trivial flows that tests deploy to a work pool of process workers (not a test module).

A process worker runs a deployment's flow from this file (entrypoint `scale_flows.py:NAME`,
working directory `tests/`), in a process of its own: the file imports nothing from tally or
the tests, so that it loads wherever the worker runs it.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from prefect import flow


@flow(name="scale-hello")
def hello(seconds: float = 0.0) -> dict[str, Any]:
    """Sleep `seconds`; say which process ran the flow (its pid, its parent's, the host)."""
    time.sleep(seconds)
    return {"pid": os.getpid(), "ppid": os.getppid(), "host": socket.gethostname()}


@flow(name="scale-sleepy")
def sleepy(seconds: float = 60.0, marker: str | None = None) -> dict[str, Any]:
    """Add a line to `marker` (a file path): this process's pid, its parent's (the worker's)
    and the time; then sleep `seconds`. The flow under which tests kill a worker."""
    if marker is not None:
        with open(marker, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {os.getppid()} {time.time():.3f}\n")
    time.sleep(seconds)
    return {"pid": os.getpid(), "ppid": os.getppid(), "host": socket.gethostname()}
