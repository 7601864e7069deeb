"""`StateFile`: a small JSON document that the processes of one machine change in turn.

The document is one line of JSON in a file that is `flock`-ed while it is read, changed and
written back in place, never while a caller sleeps or sends a request. It is rewritten in
place rather than replaced (a rename costs a journal flush per request on ext4), and only its
first line counts, so that a writer killed before truncating leaves the old tail after the
newline, not a broken document. The line carries a CRC-32 of the rest of the document, which a
write torn by a crash fails (a prefix of the new document over the old one, which may even
parse). A document that cannot be read is replaced by what the caller's `recover` gives, not by
an empty one: the rate budgets assume that their budget was just spent, as "starting afresh"
would let the processes spend a whole budget again in a window that may be used up already.

The kernel releases a `flock` when its holder dies, so a crashed process never blocks the
others; what it left in the document is judged by the timestamps the callers keep in it. `flock`
spans one machine: a directory on a network file system does not share a lock between hosts.
A child made by fork gets a mutex of its own and drops the descriptor it inherited (which shares
its parent's lock), whatever the parent's threads were doing at the fork.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__package__)

VERSION = 2
"""2: with `checksum`. A document of another version is unreadable (and recovered from)."""
CHECKSUM = "checksum"

_OPEN: weakref.WeakSet[StateFile] = weakref.WeakSet()


class StateFile:
    """A JSON object at `path`, edited under an exclusive lock (threads and processes).

    `recover` gives the document to start from when the file holds one that cannot be read
    (torn, corrupt, of another version); a missing or empty file starts as `{}`.
    """

    def __init__(
        self, path: Path | str, recover: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.path = Path(path)
        self._recover = recover or dict
        self._mutex = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._holder: int | None = None  # the thread inside `edit`
        self._fd: int | None = None
        self._fd_pid = -1
        self._known: tuple[bytes, str] | None = None  # a first line that `_parse` took, its text
        _OPEN.add(self)

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
        """Lock, read the document, yield it, write it back if the block changed it, unlock.
        An exception in the block leaves the document as it was."""
        with self._mutex:
            self._holder = threading.get_ident()
            try:
                fd = self._descriptor()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    state, before, size = self._read(fd)
                    yield state
                    state.pop(CHECKSUM, None)
                    state["version"] = VERSION
                    after = _dump(state)
                    if after != before:
                        line = document_line(state, after)
                        _write(fd, line, size)
                        self._known = (line[:-1], after)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                self._holder = None

    def _read(self, fd: int) -> tuple[dict[str, Any], str | None, int]:
        """The document, its text as `edit` writes it (None when it was recovered: then it must
        be written back), and the file's size."""
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0)
        if not data:
            return {}, "{}", size
        first = data.split(b"\n", 1)[0]
        known = self._known
        if known is not None and first == known[0]:
            # The line this object last wrote or read, checksum and all: what `_parse` would
            # make of it, without dumping the document again to check its checksum.
            state = json.loads(first)
            del state[CHECKSUM]
            return state, known[1], size
        read = _parse(first)
        if read is None:
            logger.warning("%s is torn, corrupt or of another version: recovering", self.path)
            return self._recover(), None, size
        self._known = (first, read[1])
        return read[0], read[1], size

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None and self._fd_pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _after_fork_in_child(self) -> None:
        if self._holder == threading.get_ident():
            return  # forked inside `edit`: this very thread goes on with it
        # The thread that may have held the mutex does not exist here: it would never be
        # released. The inherited descriptor shares the parent's lock: were the parent killed
        # while holding it, this copy would keep it held for as long as the child lives.
        self._mutex = threading.Lock()
        self._holder = None
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None


def document_line(state: dict[str, Any], body: str) -> bytes:
    """`state` (already dumped as `body`) with the CRC-32 of `body`, as one line."""
    member = f'"{CHECKSUM}": "{zlib.crc32(body.encode()):08x}"'
    # `body` with the checksum member where `json.dumps(..., sort_keys=True)` would put it:
    # after the members whose keys sort before it, which begin `body` as they would begin the
    # dump of those members alone.
    head = {key: value for key, value in state.items() if key < CHECKSUM}
    if not head:
        line = "{" + member + ("}" if body == "{}" else ", " + body[1:])
    else:
        cut = len(_dump(head)) - 1
        line = body[:cut] + ", " + member + body[cut:]
    return (line + "\n").encode()


def parse_line(first: bytes) -> dict[str, Any] | None:
    """The document of a first line, or None when it is not one that `document_line` wrote."""
    read = _parse(first)
    return None if read is None else read[0]


def _parse(line: bytes) -> tuple[dict[str, Any], str] | None:
    """`parse_line`, with the document's text as `document_line` was given it (keys sorted,
    no checksum): what the checksum was made of."""
    try:
        state = json.loads(line)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        return None
    checksum = state.pop(CHECKSUM, None)
    body = _dump(state)
    if checksum != f"{zlib.crc32(body.encode()):08x}":
        return None
    return state, body


_dump = json.JSONEncoder(sort_keys=True).encode
"""`json.dumps(..., sort_keys=True)`, without making an encoder each time."""


def _write(fd: int, data: bytes, size: int) -> None:
    """`data` at the start of the file of `size` bytes, which then ends after it."""
    written = 0
    while written < len(data):  # a short write (a full disk) would leave a torn line
        written += os.pwrite(fd, data[written:], written)
    if len(data) < size:  # (no longer: it ends after `data` already)
        os.ftruncate(fd, len(data))


def _after_fork_in_child() -> None:
    for state_file in list(_OPEN):
        state_file._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
