"""Processes a test starts and must leave nothing of: `Started` and `stop_tree`.

A Prefect process worker starts each flow run in a session of its own, out of reach of a
signal to the worker's process group: `stop_tree` also kills every descendant it saw before
signalling (checked by start time, so that a reused pid is left alone). Linux (/proc); where
/proc is missing only the group is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STOP_SECONDS = 15.0


@dataclass
class Started:
    """A process a test started in a session of its own, its output in `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    sink: IO[bytes]

    @classmethod
    def start(
        cls,
        name: str,
        args: Sequence[str],
        *,
        logs: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> Started:
        log = logs / f"{name}.log"
        sink = log.open("wb")
        process = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(name, process, log, sink)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        self.sink.flush()
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        head = f"--- {self.name} (pid {self.pid}, rc {self.process.poll()}) ---"
        return "\n".join([head, *text])

    def stop(self) -> None:
        stop_tree(self.process)
        self.sink.close()


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it and every descendant seen before; reaped."""
    family = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    kill_seen(family)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_SECONDS)


def kill_seen(family: Mapping[int, str]) -> None:
    """SIGKILL each pid of `family` (pid -> start time) that is still the same process."""
    for pid, started in family.items():
        if start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_time(pid: int) -> str | None:
    """The start time of `pid` from /proc (Linux), None when it is gone or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22; the command name may hold spaces


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of `root`, with its start time (empty where /proc is missing)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parent = int(entry.joinpath("stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        started = start_time(pid)
        if started is not None:
            found[pid] = started
            pending += children.get(pid, [])
    return found
