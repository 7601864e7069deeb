"""Files written whole or not at all: a hidden temp file beside the target, fsynced, renamed over
it, and the directory fsynced so that the rename survives a crash.

Temp names are `.<name>.<tag>.tmp` (the tag: a random hex unless the caller needs one it can
recognise, e.g. a pid): `*.parquet` and other globs never match them, and `leftovers.py` sweeps
the ones a killed writer left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temp_path(target: Path, tag: str | None = None) -> Path:
    return target.with_name(f".{target.name}.{tag or uuid.uuid4().hex}.tmp")


def write_with(
    target: Path, write: Callable[[BinaryIO], object], *, tag: str | None = None
) -> Path:
    """Write `target` atomically through `write(handle)` (a binary file open on the temp file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temp_path(target, tag)
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target


def write_bytes(target: Path, data: bytes, *, tag: str | None = None) -> Path:
    return write_with(target, lambda handle: handle.write(data), tag=tag)


def write_text(target: Path, text: str, *, tag: str | None = None) -> Path:
    return write_bytes(target, text.encode("utf-8"), tag=tag)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
