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
