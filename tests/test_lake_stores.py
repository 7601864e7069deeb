"""The lake's core behaviours on both stores: a local directory and a prefix of a bucket on the
loopback S3 server (`tests/s3_server.py`), through the same `Lake` API."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import pytest
from s3_server import S3Server, s3_fixture
from test_lake import CANDLES, T0, candle_frame

from pipelines.checks.warehouse import warehouse_rows
from pipelines.config import Settings
from pipelines.datasets import CANDLES as CANDLE_STREAM
from pipelines.lake import Lake, UnreadableFileError
from pipelines.lake_store import ObjectPath, S3Store, list_files, put_file
from pipelines.quarantine import holes, inspect_lake, quarantine_dir, quarantine_lake
from pipelines.s3_settings import S3Settings

s3 = s3_fixture(bucket="tally-lake-stores")
_PREFIXES = itertools.count()
PARTITION = {"exchange": "bitvavo", "market": "BTC-EUR"}


def s3_settings(server: S3Server) -> S3Settings:
    return S3Settings.from_environment(server.environment())


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake[Any]]:
    if request.param == "local":
        yield Lake(tmp_path / "lake")
        return
    server: S3Server = request.getfixturevalue("s3")
    url = server.url(f"t{next(_PREFIXES)}", "lake")
    root = ObjectPath.from_url(url, S3Store(s3_settings(server)))
    yield Lake(root)


def test_land_scan_and_files(lake: Lake[Any]) -> None:
    result = lake.land(CANDLES, candle_frame(["42000.12", "42001.5"]), stem="w1")
    expected = lake.root / "candles/exchange=bitvavo/market=BTC-EUR/w1.parquet"
    assert result.files == (expected,)
    assert str(expected) == f"{lake.location}/candles/exchange=bitvavo/market=BTC-EUR/w1.parquet"
    assert lake.files(CANDLES) == [expected]
    assert lake.files(CANDLES, exchange="bitvavo", market="ETH-EUR") == []
    back = lake.scan(CANDLES).collect()
    assert back["close"].to_list() == [Decimal("42000.12"), Decimal("42001.5")]
    assert back["market"].to_list() == ["BTC-EUR", "BTC-EUR"]
    assert lake.max_of(CANDLES, "open_time") == T0.replace(minute=1)
    assert expected.exists() and expected.parent.is_dir()


def test_relanding_replaces_and_partitions_split(lake: Lake[Any]) -> None:
    lake.land(CANDLES, candle_frame(["1", "2", "3"]), stem="w1")
    lake.land(CANDLES, candle_frame(["4", "5", "6"]), stem="w1")
    frame = pl.concat([candle_frame(["7"], start=10), candle_frame(["8"], market="ETH-EUR")])
    lake.land(CANDLES, frame, stem="w2")
    assert lake.stems(CANDLES, **PARTITION) == {"w1", "w2"}
    closes = lake.scan(CANDLES, **PARTITION).collect().sort("open_time")["close"].to_list()
    assert closes == [Decimal(c) for c in ("4", "5", "6", "7")]
    eth = lake.scan(CANDLES, exchange="bitvavo", market="ETH-EUR").collect()
    assert eth["close"].to_list() == [Decimal("8")]


def test_merge_upserts_newest_wins(lake: Lake[Any]) -> None:
    lake.merge(CANDLES, candle_frame(["1", "2"]))
    lake.merge(CANDLES, candle_frame(["20", "30"], start=1))
    closes = lake.scan(CANDLES).collect().sort("open_time")["close"].to_list()
    assert closes == [Decimal("1"), Decimal("20"), Decimal("30")]
    assert [f.name for f in lake.files(CANDLES)] == ["data.parquet"]


def test_notes_travel_with_the_file(lake: Lake[Any]) -> None:
    (path,) = lake.land(
        CANDLES, candle_frame(["1"]), stem="w1", metadata={"read_at": "2024-01-01T00:00:00Z"}
    ).files
    assert lake.notes(path) == {"read_at": "2024-01-01T00:00:00Z"}


def test_empty_window_lands_and_delete_uncovers_it(lake: Lake[Any]) -> None:
    (path,) = lake.land(CANDLES, candle_frame([]), stem="w0", partition=PARTITION).files
    assert lake.stems(CANDLES, **PARTITION) == {"w0"}
    assert lake.scan(CANDLES).collect().height == 0
    path.unlink()
    path.unlink(missing_ok=True)
    assert not path.exists()
    assert lake.stems(CANDLES, **PARTITION) == set()


def test_a_failing_render_publishes_nothing(
    lake: Lake[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = lake.land(CANDLES, candle_frame(["1", "2"]), stem="w1").files

    def half_then_fail(self: pl.DataFrame, handle: BinaryIO, **options: Any) -> None:
        handle.write(b"PAR1 half a file")
        raise RuntimeError("the render broke")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", half_then_fail)
    with pytest.raises(RuntimeError, match="the render broke"):
        lake.land(CANDLES, candle_frame(["9", "9", "9"]), stem="w1")
    with pytest.raises(RuntimeError, match="the render broke"):
        lake.land(CANDLES, candle_frame(["9"], market="ETH-EUR"), stem="w2")
    monkeypatch.undo()
    assert lake.files(CANDLES) == [path]  # no new file, no temp file, the old one whole
    assert lake.scan(CANDLES).collect()["close"].to_list() == [Decimal("1"), Decimal("2")]
    assert [info.file for info in list_files(lake.root)] == [path]


def test_an_unreadable_file_is_named(lake: Lake[Any]) -> None:
    (path,) = lake.land(CANDLES, candle_frame(["1"]), stem="w1").files
    put_file(path, lambda handle: handle.write(b"not parquet at all"))
    with pytest.raises(UnreadableFileError) as caught:
        lake.scan(CANDLES).collect()
    assert caught.value.path == path
    assert str(path) in str(caught.value)


def test_listing_gives_stamps(lake: Lake[Any]) -> None:
    (path,) = lake.land(CANDLES, candle_frame(["1"]), stem="w1").files
    (info,) = list_files(lake.root)
    assert info.file == path
    assert info.size == len(path.read_bytes()) > 0
    assert info.mtime_ns > 0
    assert (info.version == 0) == isinstance(path, ObjectPath)


def test_secret_never_shows(s3: S3Server) -> None:
    settings = s3_settings(s3)
    assert settings.secret is not None and settings.secret.reveal() == s3.secret
    assert s3.secret not in repr(settings)
    assert settings.endpoint == s3.endpoint and not settings.use_ssl


# --- the check and the quarantine over both stores --------------------------------------------

BROKEN = (
    "candles/exchange=bitvavo/market=BTC-EUR/interval=1h/20240101T000000-20240102T000000.parquet"
)
MISPLACED = "candles/stray.parquet"


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "local":
        return Settings(data_dir=tmp_path / "data")
    server: S3Server = request.getfixturevalue("s3")
    url = server.url(f"t{next(_PREFIXES)}", "lake")
    return Settings(data_dir=tmp_path / "data", lake_url=url, s3=s3_settings(server))


def test_a_damaged_file_is_found_and_quarantined(settings: Settings) -> None:
    lake = Lake.of(settings)
    assert lake.remote == (settings.lake_url is not None)
    put_file(lake.root / BROKEN, lambda handle: handle.write(b"PAR1 cut short"))
    put_file(lake.root / MISPLACED, lambda handle: handle.write(b"anything"))
    found = inspect_lake(settings)
    assert {(bad.relative, bad.kind) for bad in found.unreadable} == {
        (BROKEN, "footer"),
        (MISPLACED, "placement"),
    }
    report = quarantine_lake(settings, now=T0)
    assert {note.path for note in report.moved} == {BROKEN, MISPLACED}
    assert not (lake.root / BROKEN).exists() and not (lake.root / MISPLACED).exists()
    held = quarantine_dir(settings)
    assert (held / BROKEN).read_bytes() == b"PAR1 cut short"
    (note,) = (n for n in report.notes if n.path == BROKEN)
    assert note.sha256 == hashlib.sha256(b"PAR1 cut short").hexdigest() and note.waiting
    assert json.loads((held / f"{BROKEN}.json").read_text())["original"] == str(lake.root / BROKEN)
    # the index is in the lake, and tells the candles stream the hole to fetch again
    (hole,) = holes(
        lake, CANDLE_STREAM.dataset, exchange="bitvavo", market="BTC-EUR", interval="1h"
    )
    assert hole.stem == "20240101T000000-20240102T000000"
    assert inspect_lake(settings).unreadable == ()


def test_the_doctor_sees_a_lake_newer_than_the_warehouse(settings: Settings) -> None:
    lake = Lake.of(settings)
    assert warehouse_rows(settings)[0].status == "skip"
    lake.land(CANDLES, candle_frame(["1"]), stem="w1")
    (row,) = warehouse_rows(settings)
    assert row.status == "fail" and "not built yet" in row.detail


@pytest.fixture
def listed_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's listings say `…T12:00:05.000Z`; MinIO's say `…T12:00:05.789Z`, while the same
    object's `Last-Modified` header has whole seconds: the server made to list as MinIO does."""
    from moto.core.serialize import TimestampSerializer

    # the format moto's listings use (its headers use RFC 1123, whole seconds)
    monkeypatch.setattr(TimestampSerializer, "ISO8601_MICRO_ZEROED", "%Y-%m-%dT%H:%M:%S.789Z")


def test_a_listing_stamp_with_milliseconds_matches_the_header_stamp(
    s3: S3Server, listed_with_milliseconds: None, tmp_path: Path
) -> None:
    url = s3.url(f"t{next(_PREFIXES)}", "lake")
    settings = Settings(data_dir=tmp_path / "data", lake_url=url, s3=s3_settings(s3))
    lake = Lake.of(settings)
    put_file(lake.root / BROKEN, lambda handle: handle.write(b"PAR1 cut short"))
    (listed,) = list(lake.root.listing())
    found, _, mtime_ns = listed
    assert mtime_ns % 1_000_000_000 == 0  # whole seconds, as the header gives them
    assert found.info().mtime_ns == mtime_ns
    report = quarantine_lake(settings, now=T0)
    assert {note.path for note in report.moved} == {BROKEN}
    assert not (lake.root / BROKEN).exists()
