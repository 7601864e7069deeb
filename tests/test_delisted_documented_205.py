"""A delisted Bitvavo market refused with an errorCode 205 worded the documented way.

The errors page documents the 205 text as "Invalid parameter: price"
(`recorded/bitvavo_errors.json`); real logs show "price parameter is invalid.". The sandbox
plays both (variant `bitvavo-error-text`). Whatever the wording, `/v2/trades` refusing a market
that `/v2/markets` no longer lists is a gap with its reason and the sync goes on, while a 205
about the span still shrinks the window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sandbox_clients import bitvavo_client as client
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import sandbox_runtime

from pipelines.datasets import FILLS, GAPS
from pipelines.exchanges.bitvavo import MAX_TRADE_SPAN
from pipelines.flows.account_streams import sync_account
from pipelines.http import InvalidRequestError, RetryPolicy
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, 12, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 12
SEED = 31
FAST_RETRY = RetryPolicy(
    max_attempts=8, max_total_seconds=30, base_seconds=0.01, max_backoff_seconds=0.05
)
DOCUMENTED = Variants(bitvavo_error_text="documented")


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)
sandbox = sandbox_fixture(variants=DOCUMENTED)


def test_the_sandbox_words_a_205_as_the_errors_page_documents(
    sandbox: Sandbox, samples_dir: Path
) -> None:
    recorded = json.loads((samples_dir / "recorded" / "bitvavo_errors.json").read_text())
    (documented,) = [e["body"] for e in recorded if "documented" in e["_source"]]
    assert documented["errorCode"] == 205
    assert documented["error"].startswith("Invalid parameter: ")
    with pytest.raises(InvalidRequestError) as caught:
        client(sandbox, retry=FAST_RETRY).trades("NEO-EUR", start=NOW - timedelta(hours=1), end=NOW)
    assert caught.value.code == "205"
    assert str(caught.value).endswith("Invalid parameter: market")
    assert "market parameter" not in str(caught.value)


def test_a_delisted_market_refused_in_the_documented_words_is_a_gap_and_the_sync_goes_on(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    listed = {symbol for exchange, symbol in world.markets if exchange == "bitvavo"}
    assert "NEO-EUR" not in listed and "PHA-EUR" not in listed
    assert not [f for f in world.bitvavo.fills if f.market == "NEO-EUR"], "NEO-EUR is history-only"
    rt = sandbox_runtime(sandbox, tmp_path, now=NOW, retry=FAST_RETRY)
    try:
        results = {r.stream: r for r in sync_account(rt, "bitvavo")}
    finally:
        rt.close()
    (line,) = results["trades bitvavo"].gaps
    assert line.startswith("bitvavo fills NEO-EUR: [")
    gap = rt.lake.scan(GAPS, exchange="bitvavo").collect().row(0, named=True)
    assert (gap["stream"], gap["market"]) == ("fills", "NEO-EUR")
    assert "errorCode 205" in gap["reason"] and "Invalid parameter: market" in gap["reason"]
    fills = rt.lake.scan(FILLS.dataset, exchange="bitvavo").collect()
    neo = fills.filter(pl.col("market") == "NEO-EUR")
    assert set(neo["source"].to_list()) == {"account/history"}
    assert neo.height == sum(
        i.type in ("buy", "sell") and "NEO" in i.traded_assets for i in world.bitvavo.items
    )
    book = fills.filter(pl.col("source") == "trades")
    assert sorted(book["fill_id"].to_list()) == sorted(
        f.fill_id for f in world.bitvavo.fills if f.ts_ms <= NOW_MS
    )


def test_a_span_refusal_in_the_documented_words_still_shrinks_the_window(world: World) -> None:
    variants = Variants(bitvavo_error_text="documented", bitvavo_trades_span="24h")
    market = "BTC-EUR"
    start = NOW - timedelta(days=DAYS + 1)
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        bitvavo = client(sandbox, retry=FAST_RETRY)
        pages = list(bitvavo.trades_window(market, start, NOW))
    got = sorted(f.fill_id for page in pages for f in page.records)
    truth = [f.fill_id for f in world.bitvavo.fills if f.market == market and f.ts_ms <= NOW_MS]
    assert got == sorted(truth) and truth
    assert bitvavo.trade_span.span == MAX_TRADE_SPAN
