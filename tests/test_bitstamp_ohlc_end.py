"""Bitstamp OHLC pages that open after the `end` asked for: a pair's listing, or `end` not
honoured.

Before a pair's listing, Bitstamp may answer an `end` with the pair's first candles, all opening
after that `end` (variant `bitstamp-ohlc-before-listing=first`); the walk then ends and the
range before is recorded as before the listing. A server that ignores `end` (always the newest
candles) or clamps it (never earlier than a horizon) answers an early `end` the same way, though
older candles exist: a sync must then fail loudly, naming exchange, endpoint, pair and `end`,
and land neither the window nor a listing gap. Each server here speaks Bitstamp's OHLC over real
HTTP on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.config import load_settings
from pipelines.config_file import config_document, write_config
from pipelines.datasets import CANDLES, GAPS
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.paging import PagingLoopError
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window, final_cutoff
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, RetryPolicy, WeightBudget

NOW = datetime(2024, 6, 30, 13, 7, tzinfo=UTC)
STEP = 3600
SPAN = Window(NOW - timedelta(days=90), NOW)  # 2,160 hours: three pages and more
HISTORY_START = datetime(2023, 1, 1, tzinfo=UTC)  # the pair's first candle, far before SPAN
HORIZON = NOW - timedelta(days=30)  # the clamping server never answers an earlier `end`
LISTED = datetime(2024, 6, 10, tzinfo=UTC)  # the honest server's pair is listed here
FAST_RETRY = RetryPolicy(max_attempts=2, max_total_seconds=5, base_seconds=0.01)
PATH = "/api/v2/ohlc/btceur/"

Anchor = Callable[[int, int], int]
"""`(end_s, last_open_s) → the open time (s) of the newest candle served`."""


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def ohlc_server(httpserver: HTTPServer, first_open: int, anchor: Anchor) -> None:
    """Bitstamp's OHLC for btceur: hourly candles from `first_open` (s), every one traded, the
    last `limit` at or before `anchor(end, last closed)`, oldest first; an `anchor` before
    `first_open` gets the pair's first `limit` candles (as Bitstamp may before a listing)."""
    last_open = (seconds(NOW) // STEP - 1) * STEP  # exclude_current_candle=true

    def answer(request: Request) -> Response:
        step, limit = int(request.args["step"]), int(request.args["limit"])
        assert step == STEP and request.args["exclude_current_candle"] == "true"
        newest = anchor(int(request.args["end"]) // STEP * STEP, last_open)
        if newest < first_open:
            newest = min(first_open + (limit - 1) * STEP, last_open)
        opens = range(max(newest - (limit - 1) * STEP, first_open), newest + STEP, STEP)
        rows = [
            {
                "timestamp": str(t),
                "open": "100.0",
                "high": "101.0",
                "low": "99.0",
                "close": "100.5",
                "volume": "1.25",
            }
            for t in opens
        ]
        body = {"data": {"pair": "BTC/EUR", "ohlc": rows}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request(PATH, method="GET").respond_with_handler(answer)


def runtime(httpserver: HTTPServer, data_dir: Path) -> Runtime:
    config = data_dir / "tally.toml"
    loopback = httpserver.url_for("/").rstrip("/")
    document = config_document(
        bitstamp={"base_url": loopback, "markets": ["BTC-EUR"]},
        bitvavo={"base_url": loopback, "markets": []},
    )
    write_config(config, document)
    settings = load_settings(config, environ={}, data_dir=data_dir / "data")
    limiters = {
        "bitstamp": RequestBudget(*BITSTAMP_PACING),
        "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
    }
    return Runtime(settings, retry=FAST_RETRY, clock=lambda: NOW, limiters=limiters)


def ignores_end(end: int, last_open: int) -> int:
    return last_open


def clamps_end(end: int, last_open: int) -> int:
    return max(min(end, last_open), seconds(HORIZON) // STEP * STEP)


@pytest.mark.parametrize("anchor", [ignores_end, clamps_end], ids=["ignored", "clamped"])
def test_an_end_not_honoured_fails_the_sync_and_records_no_listing(
    httpserver: HTTPServer, tmp_path: Path, anchor: Anchor
) -> None:
    ohlc_server(httpserver, seconds(HISTORY_START), anchor)
    rt = runtime(httpserver, tmp_path)
    with pytest.raises(PagingLoopError) as raised:
        sync_candles(rt, "bitstamp", "BTC-EUR", "1h", SPAN)
    rt.close()
    asked = [{k: request.args[k] for k in ("end", "limit")} for request, _ in httpserver.log]
    # the walk: pages until one holds only candles after its `end`, then one probe at the
    # oldest candle of that page, which did not come back as the newest
    *walk, probe = asked
    assert probe["limit"] == "1"
    last_page_end = int(walk[-1]["end"])
    oldest = int(probe["end"])
    assert oldest > last_page_end
    message = str(raised.value)
    assert message.startswith("bitstamp ohlc: ")
    assert "pair btceur" in message
    assert f"end {last_page_end} " in message
    assert "not the pair's listing" in message
    assert rt.lake.files(GAPS) == [], "a listing gap was recorded"
    assert rt.lake.files(CANDLES.dataset) == [], "a window was landed as covered"


def test_the_first_candles_after_an_end_before_the_listing_end_the_walk(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """The same server, honouring `end`, for a pair listed inside the span: the walk ends at
    the listing after one probe, lands every candle from it and records the range before."""
    ohlc_server(httpserver, seconds(LISTED), lambda end, last_open: min(end, last_open))
    rt = runtime(httpserver, tmp_path)
    result = sync_candles(rt, "bitstamp", "BTC-EUR", "1h", SPAN)
    rt.close()
    cutoff = final_cutoff(NOW, "1h", timedelta(seconds=60))
    held = rt.lake.scan(CANDLES.dataset).collect()["open_time"].sort().to_list()
    hours = (seconds(cutoff) - seconds(LISTED)) // STEP
    assert held == [LISTED + timedelta(hours=k) for k in range(hours)]
    gaps = rt.lake.scan(GAPS).collect()
    assert gaps.select("gap_start", "gap_end").rows() == [(SPAN.start, LISTED)]
    assert "listing" in gaps["reason"][0]
    assert result.requests == len(httpserver.log) == 3  # the page, the one after, the probe
    assert httpserver.log[-1][0].args["limit"] == "1"
