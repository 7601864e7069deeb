"""The temporary Prefect server process: Prefect's API under uvicorn, dying with its parent.

    python -P prefect_server_child.py PARENT_PID LISTEN_FD

Started by `prefect_server.py` (run as a script: it imports nothing from tally). It serves on
the listening socket it inherits as LISTEN_FD (bound by the parent, so no port can be taken in
between), and dies when PARENT_PID does, even by SIGKILL: on Linux the kernel sends it SIGKILL
when the parent's thread that started it exits (`PR_SET_PDEATHSIG`); elsewhere a thread polls
the parent. If the parent is already gone when the signal is armed, it exits at once.

This replaces Prefect's own `SubprocessASGIServer`, whose uvicorn process outlives a killed
parent for minutes (it is stopped only by an `atexit` hook, which SIGKILL skips).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5


def die_with(parent: int) -> None:
    """Exit when `parent` does (at once if it already has)."""
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def main(argv: list[str]) -> None:
    parent, fd = int(argv[1]), int(argv[2])
    die_with(parent)
    # as `tally` does (pipelines/cycles.py): the default collects cycles over and over while
    # Prefect's server imports, ~10% of its start-up CPU
    gc.set_threshold(10_000, 10, 10)
    import uvicorn

    # What Prefect's SubprocessASGIServer runs (`uvicorn --factory ... --lifespan on`); the
    # environment (PREFECT__SERVER_EPHEMERAL, PREFECT_HOME, …) comes from the parent.
    config = uvicorn.Config(
        "prefect.server.api.server:create_app", factory=True, log_level="error", lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


if __name__ == "__main__":
    main(sys.argv)
