"""The record of where a Bitstamp candle stream starts, when a sync drops fillers before it
(`bitstamp-ohlc-before-listing=zero`).

A sync that reads only zero-volume fillers before the listing stores none of them: the range it
read is then recorded as before the listing (with a reason that says fillers were dropped), so
that the window landed as covered never hides rows the exchange sent. The sync that later finds
the first traded candle replaces that record; a sync that reaches further back widens it. The
stream keeps one record, whatever its start.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from sandbox_fixtures import sandbox_fixture, world_fixture
from test_candles_listing import (
    DAYS,
    MARKET,
    NOW,
    SEED,
    expected,
    held,
    listed,
    moment,
    ms,
    runtime,
)

from pipelines.datasets import CANDLES, GAPS
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

world = world_fixture(seed=SEED, days=DAYS, now_ms=ms(NOW))
sandbox = sandbox_fixture(variants=Variants(bitstamp_ohlc_before_listing="zero"))


def gap_rows(lake: Lake) -> list[tuple[object, ...]]:
    frame = lake.scan(GAPS).collect().sort("gap_start")
    return frame.select("exchange", "stream", "market", "gap_start", "gap_end").rows()


def reasons(lake: Lake) -> list[str]:
    return lake.scan(GAPS).collect().sort("gap_start")["reason"].to_list()


def test_a_sync_of_fillers_only_records_them_then_the_listing_replaces_the_record(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    at = listed(world)
    before = Window(at - timedelta(hours=48), at - timedelta(hours=12))
    rt = runtime(sandbox, tmp_path)
    quiet = sync_candles(rt, "bitstamp", MARKET, "1h", before)

    assert held(rt.lake, "1h") == [] and quiet.rows == {"candles": 0}
    stems = rt.lake.stems(CANDLES.dataset, exchange="bitstamp", market=MARKET, interval="1h")
    assert stems == {before.stem}, "the window read is landed"
    # ... and the fillers it held, not stored, are recorded as before the listing
    assert gap_rows(rt.lake) == [("bitstamp", "candles 1h", MARKET, before.start, before.end)]
    (reason,) = reasons(rt.lake)
    assert "listing" in reason and "zero-volume" in reason and "not stored" in reason
    assert before.end.isoformat() in reason
    assert len(quiet.gaps) == 1 and "zero-volume" in quiet.gaps[0]

    across = Window(before.start, at + timedelta(hours=12))
    found = sync_candles(rt, "bitstamp", MARKET, "1h", across)
    rt.close()
    truth = expected(world, "1h", across)
    assert held(rt.lake, "1h") == truth
    first = moment(truth[0][0])
    assert gap_rows(rt.lake) == [("bitstamp", "candles 1h", MARKET, before.start, first)]
    (reason,) = reasons(rt.lake)
    assert "no candle before" in reason and "zero-volume" not in reason
    assert len(found.gaps) == 1


def test_a_sync_reaching_further_back_widens_the_one_record(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    at = listed(world)
    later = Window(at - timedelta(hours=12), at + timedelta(hours=12))
    rt = runtime(sandbox, tmp_path)
    sync_candles(rt, "bitstamp", MARKET, "1h", later)
    first = rt.lake.scan(CANDLES.dataset).select(pl.col("open_time").min()).collect().item()
    assert gap_rows(rt.lake) == [("bitstamp", "candles 1h", MARKET, later.start, first)]

    earlier = Window(later.start - timedelta(hours=36), later.end)
    widened = sync_candles(rt, "bitstamp", MARKET, "1h", earlier)
    rt.close()
    assert gap_rows(rt.lake) == [("bitstamp", "candles 1h", MARKET, earlier.start, first)]
    assert len(rt.lake.files(GAPS)) == 1
    assert len(widened.gaps) == 1 and earlier.start.isoformat() in widened.gaps[0]
