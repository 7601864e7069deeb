"""An S3-compatible server on loopback for the tests of a lake on object storage.

A test module that needs one says

    s3 = s3_fixture(bucket="wire")

and pytest registers the fixture under the name it is assigned to. The fixture is session-scoped
and yields an `S3Server`: the endpoint, the bucket (created empty; a name may be used once per
process, as moto keeps its buckets for the process's life) and the credentials and region to
sign with. Every fixture of a process shares one server, moto's threaded S3 on 127.0.0.1 with a
port the system picks; it is started by the first fixture used and stopped when the last one
is torn down. Nothing here sets an `AWS_*` variable: a test passes the server's settings
explicitly, or hands `environment()` to a child process as a user would set them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "us-east-1"
KEY_ID = "tally-test-key-id"
SECRET = "tally-test-secret"  # moto accepts any key; it only has to be signed with


@dataclass(frozen=True)
class S3Server:
    """Where a test's bucket is served and how to sign for it."""

    endpoint_url: str  # "http://127.0.0.1:PORT"
    bucket: str
    key_id: str
    secret: str
    region: str

    @property
    def endpoint(self) -> str:
        """`host:port`, as DuckDB's S3 secret takes it (`ENDPOINT`, with `USE_SSL false`)."""
        return self.endpoint_url.removeprefix("http://")

    def url(self, *parts: str) -> str:
        """`s3://<bucket>/<parts…>`."""
        return "/".join([f"s3://{self.bucket}", *parts])

    def filesystem(self, **options: Any) -> Any:
        """A `pyarrow.fs.S3FileSystem` on this server (paths are `<bucket>/<key>`)."""
        from pyarrow.fs import S3FileSystem

        return S3FileSystem(
            endpoint_override=self.endpoint_url,
            access_key=self.key_id,
            secret_key=self.secret,
            region=self.region,
            **options,
        )

    def environment(self) -> dict[str, str]:
        """The standard `AWS_*` variables a user would set for this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": self.region,
        }


class _SharedServer:
    """One moto server per process, started on first use and stopped after the last user."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._server: Any = None
        self._endpoint_url = ""
        self.buckets: set[str] = set()  # moto keeps its buckets per process, across restarts

    def acquire(self) -> str:
        with self._lock:
            if self._server is None:
                from moto.server import ThreadedMotoServer

                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                self._server, self._endpoint_url = server, f"http://{host}:{port}"
            self._users += 1
            return self._endpoint_url

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._server is not None:
                server, self._server = self._server, None
                server.stop()  # shuts the listening socket and joins the serving thread


_SHARED = _SharedServer()


@contextmanager
def running_s3(bucket: str) -> Iterator[S3Server]:
    """The shared server with `bucket` created on it, for the duration of the block."""
    if bucket in _SHARED.buckets:
        raise ValueError(f"bucket {bucket!r} is already used in this process: name another")
    _SHARED.buckets.add(bucket)
    endpoint_url = _SHARED.acquire()
    try:
        server = S3Server(endpoint_url, bucket, KEY_ID, SECRET, REGION)
        server.filesystem(allow_bucket_creation=True).create_dir(bucket)
        yield server
    finally:
        _SHARED.release()


def s3_fixture(*, bucket: str) -> Callable[..., Any]:
    """A session-scoped fixture yielding an `S3Server` whose `bucket` was created empty."""

    @pytest.fixture(scope="session")
    def s3() -> Iterator[S3Server]:
        with running_s3(bucket) as server:
            yield server

    return s3
