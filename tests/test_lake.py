from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.lake import MONEY, TIMESTAMP, Dataset, Lake, LakeError
from pipelines.leftovers import sweep_temp_files

CANDLES = Dataset(
    name="candles",
    schema={
        "exchange": pl.String(),
        "market": pl.String(),
        "open_time": TIMESTAMP,
        "close": MONEY,
        "volume": MONEY,
    },
    key=("exchange", "market", "open_time"),
    partition_by=("exchange", "market"),
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def candle_frame(closes: list[str], start: int = 0, market: str = "BTC-EUR") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "exchange": ["bitvavo"] * len(closes),
            "market": [market] * len(closes),
            "open_time": [T0 + timedelta(minutes=start + i) for i in range(len(closes))],
            "close": [Decimal(c) for c in closes],
            "volume": [Decimal("0.00000001")] * len(closes),
        }
    )


def test_land_writes_hive_partitions_and_reads_back_exact(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    result = lake.land(CANDLES, candle_frame(["42000.12", "42001.5"]), stem="w1")
    assert result.rows == 2
    assert result.files == (tmp_path / "candles/exchange=bitvavo/market=BTC-EUR/w1.parquet",)
    back = lake.scan(CANDLES).collect()
    assert back["close"].to_list() == [Decimal("42000.12"), Decimal("42001.5")]
    assert back["market"].to_list() == ["BTC-EUR", "BTC-EUR"]
    assert lake.max_of(CANDLES, "open_time") == T0 + timedelta(minutes=1)


def test_relanding_a_window_leaves_one_copy(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.land(CANDLES, candle_frame(["1", "2", "3"]), stem="w1")
    lake.land(CANDLES, candle_frame(["1", "2", "3"]), stem="w1")
    assert lake.scan(CANDLES).collect().height == 3
    assert lake.stems(CANDLES, exchange="bitvavo", market="BTC-EUR") == {"w1"}


def test_duplicate_keys_inside_a_window_keep_the_last(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    frame = pl.concat([candle_frame(["1", "2"]), candle_frame(["9"], start=1)])
    lake.land(CANDLES, frame, stem="w1")
    assert lake.scan(CANDLES).collect()["close"].to_list() == [Decimal("1"), Decimal("9")]


def test_a_window_landed_in_its_partition_keeps_the_last_of_repeated_keys(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    partition = {"exchange": "bitvavo", "market": "BTC-EUR"}
    frame = pl.concat([candle_frame(["1", "2", "3"]), candle_frame(["9"], start=1)])
    result = lake.land(CANDLES, frame, stem="w1", partition=partition)
    assert result.rows == 3
    back = lake.scan(CANDLES, **partition).collect()
    assert back["close"].to_list() == [Decimal("1"), Decimal("9"), Decimal("3")]
    distinct = candle_frame(["5", "6"], start=7)  # no key repeated
    assert lake.land(CANDLES, distinct, stem="w2", partition=partition).rows == 2


def test_a_row_outside_the_partition_given_is_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    partition = {"exchange": "bitvavo", "market": "BTC-EUR"}
    stray = pl.concat([candle_frame(["1", "2"]), candle_frame(["3"], start=2, market="ETH-EUR")])
    missing = candle_frame(["1", "2"]).with_columns(
        pl.when(pl.col("close") == 2).then(None).otherwise(pl.col("market")).alias("market")
    )
    for frame in (stray, missing):
        with pytest.raises(LakeError):
            lake.land(CANDLES, frame, stem="w1", partition=partition)
    assert lake.files(CANDLES) == []


def test_merge_upserts_on_key_newest_wins(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.merge(CANDLES, candle_frame(["1", "2"]))
    lake.merge(CANDLES, candle_frame(["20", "30"], start=1))
    closes = lake.scan(CANDLES).collect().sort("open_time")["close"].to_list()
    assert closes == [Decimal("1"), Decimal("20"), Decimal("30")]
    assert len(lake.files(CANDLES)) == 1


def test_partitions_are_split_per_value(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    frame = pl.concat([candle_frame(["1"]), candle_frame(["2"], market="ETH-EUR")])
    result = lake.land(CANDLES, frame, stem="w1")
    assert len(result.files) == 2
    assert lake.scan(CANDLES, exchange="bitvavo", market="ETH-EUR").collect().height == 1


def test_lossy_decimal_is_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    frame = candle_frame(["1"]).with_columns(pl.Series("close", [Decimal("0.1234567890123456789")]))
    with pytest.raises(LakeError, match="more than 18 decimal places"):
        lake.land(CANDLES, frame, stem="w1")
    with pytest.raises(LakeError, match="exceeds"):
        lake.land(
            CANDLES,
            candle_frame(["1"]).with_columns(pl.Series("close", [Decimal("1e21")])),
            stem="w1",
        )
    assert lake.files(CANDLES) == []


def test_float_money_is_refused(tmp_path: Path) -> None:
    frame = candle_frame(["1"]).with_columns(pl.Series("close", [1.5]))
    with pytest.raises(LakeError, match="expected Decimal"):
        Lake(tmp_path).land(CANDLES, frame, stem="w1")


def test_unsafe_names_are_refused(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    with pytest.raises(LakeError):
        lake.land(CANDLES, candle_frame(["1"]), stem="../escape")
    with pytest.raises(LakeError):
        lake.land(CANDLES, candle_frame(["1"], market="BTC/EUR"), stem="w1")


def test_duckdb_reads_the_glob_with_exact_types(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.land(CANDLES, candle_frame(["42000.12"]), stem="w1")
    rows = duckdb.sql(
        f"select market, close, typeof(close) from read_parquet('{lake.glob(CANDLES)}', "
        "hive_partitioning=true, union_by_name=true)"
    ).fetchall()
    assert rows == [("BTC-EUR", Decimal("42000.12"), "DECIMAL(38,18)")]


WRITER = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from datetime import datetime, timedelta, UTC
    import polars as pl
    sys.path.insert(0, {tests!r})
    from test_lake import CANDLES, candle_frame
    from pipelines.lake import Lake
    lake = Lake({root!r})
    i = 0
    print("ready", flush=True)
    while True:
        lake.land(CANDLES, candle_frame([str(i)] * 20000), stem=f"w{{i % 3}}")
        i += 1
        if i == 1:
            print("landed", flush=True)
    """
)


def test_killed_writer_never_leaves_a_readable_partial_file(tmp_path: Path) -> None:
    script = WRITER.format(tests=str(Path(__file__).parent), root=str(tmp_path / "lake"))
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, env={**os.environ}
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        # kill it somewhere in a later write, however slow the machine: one file is in by now
        assert proc.stdout.readline().strip() == b"landed"
        time.sleep(0.1 + 0.2 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        lake = Lake(tmp_path / "lake")
        for path in lake.files(CANDLES):
            frame = pl.read_parquet(path)
            assert frame.height == 20000
            assert frame["close"].n_unique() == 1
        sweep_temp_files(tmp_path)
        assert not list(tmp_path.rglob("*.tmp"))
    assert lake.files(CANDLES), "the writer landed nothing: the test proved nothing"


def test_an_empty_window_lands_as_an_empty_file(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    partition = {"exchange": "bitvavo", "market": "BTC-EUR"}
    result = lake.land(CANDLES, candle_frame([]), stem="w0", partition=partition)
    assert result.files == (tmp_path / "candles/exchange=bitvavo/market=BTC-EUR/w0.parquet",)
    assert lake.stems(CANDLES, **partition) == {"w0"}
    assert lake.scan(CANDLES).collect().height == 0
    with pytest.raises(LakeError, match="outside partition"):
        lake.land(CANDLES, candle_frame(["1"], market="ETH-EUR"), stem="w1", partition=partition)
