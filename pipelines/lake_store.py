"""Where the lake's files live: a local directory (`pathlib.Path`) or an S3 prefix (`ObjectPath`).

The lake and the flows hold a landed file as a `LakeFile`: a `Path` for a lake in the data
directory (everything as it always was), or an `ObjectPath` for a lake on S3-compatible storage
(`lake_url`). `ObjectPath` answers the part of `Path`'s interface the lake's code uses (`/`,
`name`, `stem`, `parent`, `relative_to`, `exists`, `is_dir`, `unlink`, `glob`, `read_bytes`) over
pyarrow's `S3FileSystem`, so that code reads the same on both; what differs is said here:

- `put_file(file, render)`: locally a temp file renamed over the target (`atomic.write_with`);
  on S3 the file is rendered whole in memory first and sent in one write, which publishes it
  whole when the stream closes (a render that fails sends nothing: an S3 output stream closed
  by an exception would publish what it had).
- `readable(file)`: what polars and pyarrow read: the path itself, or the object's bytes (one GET:
  the lake's files are one window each).
- `list_files(base)`: every file under a directory or prefix with its size, time and version
  (the inode locally; 0 on S3, whose listing gives the time to the second and no ETag).

There is no directory and no temp object on S3: a prefix exists while an object lies under it.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from pipelines.atomic import write_with
from pipelines.s3_settings import S3Settings, split_lake_url
from pipelines.write_guard import check_writes

S3_SCHEME = "s3://"


class S3Store:
    """The object store a lake is on: its settings, and pyarrow's filesystem over them (made on
    first use, once per process: a pickled store makes its own, without the settings' key, from
    the `AWS_*` variables or other default credentials of the process that unpickles it)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = self.settings.filesystem()
        return self._fs

    def __getstate__(self) -> dict[str, Any]:
        # no key in a pickle: the store unpickled signs with its own process's default chain
        return {"settings": self.settings.without_credentials(), "_fs": None}

    def __repr__(self) -> str:
        return f"S3Store({self.settings!r})"


@dataclass(frozen=True, order=True)
class ObjectPath:
    """An object (or a prefix) in a bucket, with the store that reaches it."""

    bucket: str
    key: str  # without a leading or trailing "/"; "" is the bucket itself
    store: S3Store = field(compare=False, repr=False, hash=False)

    @classmethod
    def from_url(cls, url: str, store: S3Store) -> ObjectPath:
        bucket, prefix = split_lake_url(url)
        return cls(bucket, prefix, store)

    @property
    def fs(self) -> Any:
        return self.store.fs

    # -- the path ------------------------------------------------------------------------------

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}" if self.key else f"{S3_SCHEME}{self.bucket}"

    def __truediv__(self, part: str | PurePosixPath) -> ObjectPath:
        tail = str(part).strip("/")
        return ObjectPath(self.bucket, f"{self.key}/{tail}" if self.key else tail, self.store)

    @property
    def path(self) -> str:
        """`bucket/key`, as pyarrow's S3 filesystem names it."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.bucket, self.key.rpartition("/")[0], self.store)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("/")) if self.key else ()

    def relative_to(self, other: ObjectPath) -> PurePosixPath:
        if other.bucket != self.bucket or not (
            not other.key or self.key == other.key or self.key.startswith(f"{other.key}/")
        ):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(self.key[len(other.key) :].lstrip("/") or ".")

    def is_relative_to(self, other: ObjectPath) -> bool:
        try:
            self.relative_to(other)
        except ValueError:
            return False
        return True

    # -- the store -----------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def is_file(self) -> bool:
        from pyarrow.fs import FileType

        return bool(self.fs.get_file_info(self.path).type == FileType.File)

    def is_dir(self) -> bool:
        return any(True for _ in self.listing())

    def unlink(self, missing_ok: bool = False) -> None:
        check_writes()
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return bytes(stream.read())

    def info(self) -> FileInfo:
        """Size and modification time (to the whole second, as `listing()` gives it)."""
        from pyarrow.fs import FileType

        found = self.fs.get_file_info(self.path)
        if found.type != FileType.File:
            raise FileNotFoundError(f"{self} does not exist")
        return FileInfo(self, found.size, whole_seconds(found.mtime_ns), 0)

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Objects under this prefix matching `pattern` segment by segment (`*` stays within a
        segment, as `Path.glob` without `**`)."""
        for found, _, _ in self.matching(pattern):
            yield found

    def matching(self, pattern: str) -> Iterator[tuple[ObjectPath, int, int]]:
        """`glob` with each object's size and modification time (ns, whole seconds)."""
        wanted = pattern.split("/")
        for found, size, mtime_ns in self.listing():
            relative = found.key[len(self.key) :].lstrip("/").split("/")
            if len(relative) == len(wanted) and all(
                fnmatch.fnmatchcase(part, want) for part, want in zip(relative, wanted, strict=True)
            ):
                yield found, size, mtime_ns

    def rglob(self, pattern: str) -> Iterator[ObjectPath]:
        for found, _, _ in self.listing():
            if fnmatch.fnmatchcase(found.name, pattern):
                yield found

    def listing(self) -> Iterator[tuple[ObjectPath, int, int]]:
        """Every object under this prefix: (object, size, mtime_ns to the whole second, as
        `info()` gives it); one request per 1,000."""
        from pyarrow.fs import FileSelector, FileType

        selector = FileSelector(self.path, recursive=True, allow_not_found=True)
        for found in self.fs.get_file_info(selector):
            if found.type == FileType.File:
                bucket, _, key = found.path.partition("/")
                yield ObjectPath(bucket, key, self.store), found.size, whole_seconds(found.mtime_ns)


def whole_seconds(mtime_ns: int) -> int:
    """An object's modification time rounded down to the second. A listing's stamp may have
    milliseconds (MinIO's do) where the same object's `Last-Modified` header, which `info()`
    reads, has whole seconds: both are rounded so that one object's stamps compare equal."""
    return mtime_ns - mtime_ns % 1_000_000_000


LakeFile = Path | ObjectPath
"""A landed file (or a directory of them): local, or an object on S3."""


@dataclass(frozen=True)
class FileInfo:
    """A file with its stamp: size, modification time (ns; whole seconds on S3) and version
    (the inode locally; 0 on S3)."""

    file: LakeFile
    size: int
    mtime_ns: int
    version: int


def lake_root(location: str, s3: S3Settings | None = None) -> LakeFile:
    """The lake's root for a location: `s3://bucket/prefix` (reached with `s3`, default the
    `AWS_*` environment) or a directory."""
    if is_object_url(location):
        settings = s3 if s3 is not None else S3Settings.from_environment(os.environ)
        return ObjectPath.from_url(location, s3_store(settings))
    return Path(location).resolve()


@functools.cache
def s3_store(settings: S3Settings) -> S3Store:
    """One store (and one pyarrow filesystem, its connections) per settings in a process."""
    return S3Store(settings)


def is_object_url(location: str) -> bool:
    return location.startswith(S3_SCHEME)


def put_file(target: LakeFile, render: Callable[[BinaryIO], object]) -> LakeFile:
    """Write the file `render` writes, atomically: a reader sees the old file or the new one.
    The checks of `write_guard` pass first (else what they raise)."""
    check_writes()
    if isinstance(target, Path):
        return write_with(target, render)
    buffer = io.BytesIO()
    render(buffer)  # whole in memory first: a failing render sends nothing
    with target.fs.open_output_stream(target.path) as stream:
        stream.write(buffer.getvalue())
    return target


def readable(file: LakeFile) -> Path | IO[bytes]:
    """What a polars or pyarrow reader takes for `file`: the path, or the object's bytes."""
    if isinstance(file, Path):
        return file
    return io.BytesIO(file.read_bytes())


def list_files(base: LakeFile) -> list[FileInfo]:
    """Every file under `base` with its stamp, hidden names included, sorted by name."""
    if isinstance(base, ObjectPath):
        return [FileInfo(*found, 0) for found in sorted(base.listing())]
    found = []
    for directory, _, names in os.walk(base):
        for name in names:
            path = Path(directory) / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append(FileInfo(path, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return sorted(found, key=lambda info: str(info.file))
