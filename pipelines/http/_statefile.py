"""`StateFile`: a small JSON document that the processes of one machine change in turn.

The document is one line of JSON in a file that is `flock`-ed while it is read, changed and
written back in place, never while a caller sleeps or sends a request. It is rewritten in
place rather than replaced (a rename costs a journal flush per request on ext4), and only its
first line counts, so that a writer killed before truncating leaves the old tail after the
newline, not a broken document. The kernel releases a `flock` when its holder dies, so a
crashed process never blocks the others; what it left in the document is judged by the
timestamps the callers keep in it. `flock` spans one machine: a directory on a network file
system does not share a lock between hosts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__package__)

VERSION = 1


class StateFile:
    """A JSON object at `path`, edited under an exclusive lock (threads and processes)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._mutex = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fd: int | None = None
        self._fd_pid = -1

    def __repr__(self) -> str:
        return f"StateFile({str(self.path)!r})"

    def _descriptor(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():
            # A child made by fork shares its parent's open file description, and with it the
            # parent's lock: open our own.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    @contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Lock, read the document (empty when missing or unreadable), yield it, write it back
        if the block changed it, unlock. An exception in the block leaves the document as it was."""
        with self._mutex:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                state = self._read(fd)
                before = json.dumps(state, sort_keys=True)
                yield state
                state["version"] = VERSION
                after = json.dumps(state, sort_keys=True)
                if after != before:
                    data = (after + "\n").encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _read(self, fd: int) -> dict[str, Any]:
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        if not data:
            return {}
        try:
            state = json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("version") != VERSION:
            logger.warning("%s is unreadable or of another version: starting afresh", self.path)
            return {}
        return state

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = None
