"""`python -m benchmarks.ingest_bench`'s parts that decide its figures: the landing replay lands
exactly the candles of the pages it recorded from the sandbox (a replay that dropped or doubled
rows would measure nonsense), the fewest requests of each case, and the "trades" section (a few
days of it: tally lands every trade the sandbox's world holds, ccxt's figures add up)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sandbox_fixtures import sandbox_fixture, world_fixture

from benchmarks.ingest_bench import _minimum, trade_span, trades
from benchmarks.landing_replay import record, replay
from pipelines.datasets import CANDLES
from pipelines.exchanges import bitstamp_parse, bitvavo_parse
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox

NOW_MS = 1_711_843_200_000
DAYS = 3

world = world_fixture(seed=7, days=DAYS + 2, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def candles_sent(bodies: list[bytes], exchange: str) -> dict[datetime, Decimal]:
    """Open time → close of every candle in the bodies, read with the standard library."""
    sent = {}
    for body in bodies:
        decoded = json.loads(body, parse_float=Decimal)
        if exchange == "bitstamp":
            for row in decoded["data"]["ohlc"]:
                sent[datetime.fromtimestamp(int(row["timestamp"]), UTC)] = Decimal(row["close"])
        else:
            for row in decoded:
                sent[datetime.fromtimestamp(int(row[0]) / 1000, UTC)] = Decimal(row[4])
    return sent


@pytest.mark.parametrize("exchange", ["bitstamp", "bitvavo"])
def test_the_replay_lands_every_candle_of_the_recorded_pages(
    sandbox: Sandbox, exchange: str, tmp_path: Path
) -> None:
    bodies = record(sandbox, exchange, "BTC-EUR", days=DAYS, now_s=NOW_MS // 1000)
    sent = candles_sent(bodies, exchange)
    assert len(sent) > DAYS * 1440 // 2  # a few days of minutes (Bitvavo: minutes without trades)

    rows = replay(bodies, exchange, "BTC-EUR", tmp_path)

    landed = Lake(tmp_path).scan(CANDLES.dataset).collect().sort("open_time")
    assert rows == landed.height == len(sent)
    assert dict(zip(landed["open_time"], landed["close"], strict=True)) == sent
    assert landed["raw"].null_count() == 0
    assert landed.select(pl.col("exchange").unique()).to_series().to_list() == [exchange]


def test_the_fewest_requests_of_each_kind_of_case() -> None:
    assert _minimum("pages", 525_599, 1000, 365) == 526
    # Bitvavo counts a candle page in intervals on the sandbox: a year is 365 pages of 1440
    assert _minimum("windows", 467_720, 1440, 365) == 365
    assert _minimum("days", 105_310, 1000, 30) == 106
    assert _minimum("days", 10, 1000, 30) == 30
    assert _minimum("one", 2989, 1000, 1) == 1


@pytest.mark.parametrize("exchange", ["bitstamp", "bitvavo"])
def test_the_sandboxs_pages_read_from_their_body_and_decoded_land_alike(
    sandbox: Sandbox, exchange: str
) -> None:
    """Every recorded page is taken by the body reader; the same page with a space after every
    separator (JSON as Python writes it: no recording says which the exchanges send) is not,
    and decoded it makes the same lake frame, `raw` byte for byte included."""
    bodies = record(sandbox, exchange, "BTC-EUR", days=2, now_s=NOW_MS // 1000)
    if exchange == "bitstamp":

        def read(body: bytes) -> Sequence[Any] | None:
            return bitstamp_parse.read_ohlc(body, step=60, market="BTC-EUR")

        def parse(data: Any) -> Sequence[Any]:
            return bitstamp_parse.parse_ohlc(data, step=60, market="BTC-EUR")

    else:

        def read(body: bytes) -> Sequence[Any] | None:
            return bitvavo_parse.read_candles(body, market="BTC-EUR", interval="1m")

        def parse(data: Any) -> Sequence[Any]:
            return bitvavo_parse.parse_candles(data, market="BTC-EUR", interval="1m")

    at = datetime(2024, 4, 1, tzinfo=UTC)
    for body in bodies:
        decoded = json.loads(body, parse_float=Decimal)
        spaced = json.dumps(decoded).encode()  # (every value a string or an integer: exact)
        assert b'": "' in spaced or b", " in spaced
        read_page = read(body)
        assert read_page is not None and read(spaced) is None
        expected = CANDLES.frame(parse(json.loads(spaced, parse_float=Decimal)), fetched_at=at)
        assert CANDLES.frame(read_page, fetched_at=at).equals(expected)


def test_the_trades_section_holds_tally_and_ccxt_against_the_worlds_trades(
    tmp_path: Path,
) -> None:
    figures = trades(tmp_path, days=DAYS)

    assert set(figures) == {"bitvavo"}
    ours = figures["bitvavo"]
    assert set(ours) == {
        "trades",
        "truth",
        "lost",
        "requests",
        "cpu_s",
        "cpu_us_per_trade",
        "peak_rss_mb",
        "ccxt",
    }
    assert ours["truth"] > DAYS * 1000  # a few days of BTC-EUR trades (about 3500 a day)
    assert ours["lost"] == 0
    assert ours["trades"] == ours["truth"]
    # a page holds at most 1000 trades, and each of a request's at most 24 h
    assert ours["requests"] >= max(ours["truth"] // 1000, DAYS)
    assert ours["cpu_s"] > 0 and ours["peak_rss_mb"] > 0
    assert ours["cpu_us_per_trade"] == pytest.approx(ours["cpu_s"] / ours["trades"] * 1e6)
    theirs = ours["ccxt"]
    assert set(theirs) == {"trades", "lost", "requests", "cpu_s"}
    assert theirs["requests"] > ours["truth"] // 1000
    assert theirs["cpu_s"] > 0
    assert theirs["trades"] + theirs["lost"] == ours["truth"]  # nothing outside the world's


def test_the_trades_span_is_the_flows_own() -> None:
    start, end = trade_span(NOW_MS, 30)
    assert start == NOW_MS - 30 * 86_400_000
    assert end == NOW_MS - 60_000  # the last whole minute at least 60 s old
    start, end = trade_span(NOW_MS + 150_500, 1)  # 2 min 30.5 s past midnight: 1 min 30.5 s
    assert (start, end) == (NOW_MS + 150_500 - 86_400_000, NOW_MS + 60_000)
