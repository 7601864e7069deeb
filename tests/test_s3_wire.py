"""The parts a lake on S3-compatible storage will stand on, proven against moto on loopback.

Groundwork for the object-storage lake (`docs/s3-lake-notes.md`): pyarrow's S3 filesystem writes
a Parquet object whole and lists it with its size and time; polars reads it back through pyarrow
and natively; DuckDB reads hive-partitioned objects through `httpfs` loaded from the
`duckdb-extension-httpfs` package (nothing downloaded or installed) and an S3 secret, in Python
and in the venv's `duckdb` shell; a reader sees an object whole or not at all, while its upload
is under way; and the two ways a writer could still publish half a file or an incremental build
could miss a replaced one are pinned down.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import polars as pl
import pytest
from pyarrow.fs import FileSelector, FileType
from s3_server import S3Server, s3_fixture

s3 = s3_fixture(bucket="tally-wire")

MiB = 1 << 20
PART = 10 * MiB  # pyarrow's multipart part size: an object larger goes up in parts
DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"
CANDLES = "lake/candles/exchange={exchange}/market={market}/interval=1h/{stem}.parquet"
# what DuckDB loads and reads offline: the extension from its package, nothing automatic
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def httpfs_extension() -> Path:
    """The `httpfs` extension file the `duckdb-extension-httpfs` package ships for this DuckDB
    (`<package>/extensions/v<version>/httpfs.duckdb_extension`: no platform directory, so it is
    loaded by path, not found through `extension_directory`)."""
    package = Path(str(resources.files("duckdb_extension_httpfs")))
    return package / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"


def candles(exchange: str, rows: int = 3) -> pl.DataFrame:
    """A few rows typed as the lake types them: exact money, UTC times."""
    opened = [datetime(2024, 1, 1, hour, tzinfo=UTC) for hour in range(rows)]
    return pl.DataFrame(
        {
            "open_time": opened,
            "close": [Decimal(f"42000.{hour:018d}") for hour in range(rows)],
            "raw": [f'{{"exchange":"{exchange}","hour":{hour}}}' for hour in range(rows)],
        },
        schema={
            "open_time": pl.Datetime("us", "UTC"),
            "close": pl.Decimal(38, 18),
            "raw": pl.String,
        },
    )


def parquet_bytes(frame: pl.DataFrame, metadata: dict[str, str] | None = None) -> bytes:
    """The whole file, rendered before anything is sent (as `Lake._write_file` writes it)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True, metadata=metadata)
    return buffer.getvalue()


def put_whole(filesystem: Any, path: str, render: Callable[[BinaryIO], object]) -> None:
    """The object store's `write_with`: the file is rendered in memory first, so a writer that
    fails sends nothing, then goes up in one write and is published when the stream closes
    (one PUT below the part size with `allow_delayed_open`, else a multipart upload that shows
    nothing until it completes)."""
    buffer = io.BytesIO()
    render(buffer)
    with filesystem.open_output_stream(path) as stream:
        stream.write(buffer.getvalue())


def put_bytes(filesystem: Any, path: str, data: bytes) -> None:
    put_whole(filesystem, path, lambda handle: handle.write(data))


def read_whole(filesystem: Any, path: str) -> bytes | None:
    try:
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read())
    except FileNotFoundError:
        return None


def test_pyarrow_writes_a_parquet_object_whole_and_lists_it(s3: S3Server) -> None:
    filesystem = s3.filesystem(allow_delayed_open=True)
    written = {}
    for exchange in ("bitstamp", "bitvavo"):
        key = CANDLES.format(exchange=exchange, market="BTC-EUR", stem="20240101T000000-window")
        data = parquet_bytes(candles(exchange), metadata={"read_at": "2024-01-01T03:00:00Z"})
        put_bytes(filesystem, f"{s3.bucket}/{key}", data)
        written[f"{s3.bucket}/{key}"] = data

    listed = [
        info
        for info in filesystem.get_file_info(FileSelector(f"{s3.bucket}/lake", recursive=True))
        if info.type == FileType.File
    ]
    assert {info.path: info.size for info in listed} == {k: len(v) for k, v in written.items()}
    # S3 gives times to the second: a stamp of (size, mtime) alone cannot tell two versions of
    # one second apart (see the ETag test)
    assert all(info.mtime_ns % 1_000_000_000 == 0 for info in listed)
    assert all(abs(info.mtime.timestamp() - time.time()) < 60 for info in listed)

    path = next(iter(written))
    with filesystem.open_input_file(path) as handle:
        assert pl.read_parquet(handle).equals(candles("bitstamp"))
    with filesystem.open_input_file(path) as handle:
        assert pl.read_parquet_metadata(handle)["read_at"] == "2024-01-01T03:00:00Z"

    # polars' own object-store reader, with the same settings as options
    options = {
        "aws_endpoint_url": s3.endpoint_url,
        "aws_access_key_id": s3.key_id,
        "aws_secret_access_key": s3.secret,
        "aws_region": s3.region,
        "aws_allow_http": "true",
    }
    scanned = pl.scan_parquet(
        s3.url("lake/candles/**/*.parquet"), storage_options=options, hive_partitioning=True
    ).collect()
    assert scanned.height == 6
    assert sorted(scanned["exchange"].unique()) == ["bitstamp", "bitvavo"]
    assert (
        scanned.filter(pl.col("exchange") == "bitvavo")
        .select(candles("bitvavo").columns)
        .equals(candles("bitvavo"))
    )


def test_a_reader_sees_an_object_whole_or_not_at_all_while_it_uploads(s3: S3Server) -> None:
    """A multipart upload: with its first part on the server the object is still not there for
    a listing or a read; after it completes, both see all of it."""
    path = f"{s3.bucket}/atomic/big.parquet"
    data = os.urandom(PART + 2 * MiB)
    seen: list[str] = []
    uploading = threading.Event()  # a part is on the server, the upload not complete
    completed = threading.Event()

    def reader() -> None:
        filesystem = s3.filesystem()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            during = uploading.is_set() and not completed.is_set()
            info = filesystem.get_file_info(path)  # a listing (HEAD), then a read: each is
            got = read_whole(filesystem, path)  # judged alone, the object may land in between
            if info.type == FileType.NotFound:
                seen.append("nothing listed during upload" if during else "nothing listed")
            else:
                seen.append("whole listed" if info.size == len(data) else f"listed {info.size}")
            if got is None:
                seen.append("nothing read during upload" if during else "nothing read")
            else:
                seen.append("whole read" if got == data else f"read {len(got)} bytes")
                if got == data and completed.is_set():
                    return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    writer = s3.filesystem(background_writes=False)  # each part goes up before `write` returns
    stream = writer.open_output_stream(path)
    for start in range(0, len(data), 4 * MiB):
        stream.write(data[start : start + 4 * MiB])
    assert _uploaded_parts(s3, "atomic/big.parquet") == [PART]
    uploading.set()
    deadline = time.monotonic() + 10
    while seen.count("nothing read during upload") < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.close()
    completed.set()
    for thread in readers:
        thread.join(timeout=30)

    assert [s for s in seen if not s.startswith(("nothing", "whole"))] == []
    assert seen.count("nothing listed during upload") >= 4
    assert seen.count("nothing read during upload") >= 4
    assert seen[-1] == "whole read"


def _uploaded_parts(s3: S3Server, key: str) -> list[int]:
    """The sizes of the parts of `key`'s multipart uploads in progress, as the server holds them
    (asked through boto3, which moto depends on)."""
    import boto3  # type: ignore[import-untyped]

    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.key_id,
        aws_secret_access_key=s3.secret,
        region_name=s3.region,
    )
    uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=key).get("Uploads", [])
    return [
        part["Size"]
        for upload in uploads
        for part in client.list_parts(
            Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        ).get("Parts", [])
    ]


def test_an_output_stream_left_by_an_error_publishes_what_it_was_given(s3: S3Server) -> None:
    """Why the lake renders a file before it opens the stream: pyarrow's S3 stream completes
    its upload when it is closed, and leaving its `with` block by an exception closes it, so a
    writer that fails midway would publish half a file under the final name (no temp name to
    hide behind, no abort in pyarrow's Python API). `put_whole` sends nothing then."""
    filesystem = s3.filesystem(allow_delayed_open=True)
    half = parquet_bytes(candles("bitstamp"))[:100]
    streamed = f"{s3.bucket}/pitfall/streamed.parquet"
    with pytest.raises(RuntimeError), filesystem.open_output_stream(streamed) as stream:
        stream.write(half)
        raise RuntimeError("the writer failed midway")
    assert read_whole(filesystem, streamed) == half

    def failing(handle: BinaryIO) -> None:
        handle.write(half)
        raise RuntimeError("the writer failed midway")

    rendered = f"{s3.bucket}/pitfall/rendered.parquet"
    with pytest.raises(RuntimeError):
        put_whole(filesystem, rendered, failing)
    assert filesystem.get_file_info(rendered).type == FileType.NotFound


def test_a_replaced_object_keeps_its_size_and_second_but_not_its_etag(s3: S3Server) -> None:
    """What an incremental build can stamp an object with: its listing gives size and a time
    to the second, so an object replaced by one of the same size within that second looks
    unchanged; its ETag (a HEAD, or the stream's metadata) tells the versions apart."""
    filesystem = s3.filesystem(allow_delayed_open=True)
    path = f"{s3.bucket}/stamps/window.parquet"
    for _ in range(5):  # the two writes fall in one second almost always; retried if not
        first, second = os.urandom(1000), os.urandom(1000)
        put_bytes(filesystem, path, first)
        before, tag_before = filesystem.get_file_info(path), _etag(filesystem, path)
        put_bytes(filesystem, path, second)
        after, tag_after = filesystem.get_file_info(path), _etag(filesystem, path)
        if before.mtime_ns == after.mtime_ns:
            break
    assert (before.size, before.mtime_ns) == (after.size, after.mtime_ns)
    assert tag_before != tag_after
    assert read_whole(filesystem, path) == second


def _etag(filesystem: Any, path: str) -> str:
    with filesystem.open_input_stream(path) as stream:
        return bytes(stream.metadata()["ETag"]).decode()


def _land_hive_objects(s3: S3Server, prefix: str) -> None:
    filesystem = s3.filesystem(allow_delayed_open=True)
    for exchange in ("bitstamp", "bitvavo"):
        for market in ("BTC-EUR", "ETH-EUR"):
            key = CANDLES.format(exchange=exchange, market=market, stem="w1")
            put_bytes(
                filesystem, f"{s3.bucket}/{prefix}/{key}", parquet_bytes(candles(exchange, 2))
            )


def test_duckdb_reads_hive_partitioned_objects_with_httpfs_from_its_package(
    s3: S3Server, tmp_path: Path
) -> None:
    """Offline: `httpfs` is loaded by path from the package (by name it is not found: nothing
    was installed), nothing lands in the extension directory, and the reads go through an S3
    secret naming the loopback server; a guarded connection reads the lake's prefix only."""
    _land_hive_objects(s3, "duck")
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    connection = duckdb.connect(config={**OFFLINE, "extension_directory": str(extensions)})
    with pytest.raises(duckdb.IOException, match="not found"):
        connection.execute("load httpfs")
    connection.execute(f"load '{httpfs_extension()}'")
    assert connection.execute(
        "select loaded, installed from duckdb_extensions() where extension_name = 'httpfs'"
    ).fetchall() == [(True, False)]
    lake = s3.url("duck", "lake") + "/"
    connection.execute(
        "create secret lake (type s3, key_id ?, secret ?, region ?, endpoint ?, "
        "url_style 'path', use_ssl false, scope ?)",
        [s3.key_id, s3.secret, s3.region, s3.endpoint, lake],
    )
    rows = connection.execute(
        "select exchange, market, count(*), min(close), max(filename) from read_parquet("
        f"'{lake}candles/*/*/*/*.parquet', hive_partitioning=true, filename=true) "
        "group by all order by all"
    ).fetchall()
    assert [row[:3] for row in rows] == [
        ("bitstamp", "BTC-EUR", 2),
        ("bitstamp", "ETH-EUR", 2),
        ("bitvavo", "BTC-EUR", 2),
        ("bitvavo", "ETH-EUR", 2),
    ]
    assert rows[0][3] == Decimal("42000.000000000000000000")
    assert rows[0][4] == f"{lake}candles/exchange=bitstamp/market=BTC-EUR/interval=1h/w1.parquet"

    # as `warehouse.connect` guards a connection: the lake's prefix and nothing else
    connection.execute("set allowed_directories = ?", [[lake]])
    connection.execute("set enable_external_access = false")
    connection.execute("set lock_configuration = true")
    count = f"select count(*) from read_parquet('{lake}candles/**/*.parquet')"
    assert connection.execute(count).fetchall() == [(8,)]
    with pytest.raises(duckdb.PermissionException):
        connection.execute(f"select count(*) from read_parquet('{s3.url('elsewhere')}/x.parquet')")
    connection.close()
    assert list(extensions.rglob("*")) == []


def test_the_duckdb_shell_reads_the_objects_with_the_same_secret_settings(
    s3: S3Server, tmp_path: Path
) -> None:
    """The venv's `duckdb` shell loads the same extension file and builds the same secret from
    the standard `AWS_*` variables (`getenv` exists in the shell only): an init file holding no
    key opens the lake."""
    _land_hive_objects(s3, "shell")
    init = tmp_path / "s3.sql"
    init.write_text(
        f"load '{httpfs_extension()}';\n"
        "create secret lake (type s3, key_id getenv('AWS_ACCESS_KEY_ID'), "
        "secret getenv('AWS_SECRET_ACCESS_KEY'), region getenv('AWS_REGION'), "
        "endpoint regexp_replace(getenv('AWS_ENDPOINT_URL'), '^https?://', ''), "
        "url_style 'path', use_ssl starts_with(getenv('AWS_ENDPOINT_URL'), 'https://'));\n"
    )
    query = (
        "select count(*) as n, count(distinct market) as markets from read_parquet("
        f"'{s3.url('shell', 'lake')}/candles/*/*/*/*.parquet', hive_partitioning=true)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **s3.environment()}
    done = subprocess.run(
        [str(DUCKDB_SHELL), "-batch", "-csv", "-init", str(init), "-c", query],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["n,markets", "8,2"]
    assert s3.secret not in init.read_text()
