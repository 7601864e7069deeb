"""Bitvavo trades walks under every reading of the two open trades behaviours (variants.py):
`bitvavo-trades-end` (is a request's `end` inclusive?) and `bitvavo-trades-span` (does account
`/v2/trades` refuse more than 24 h?). Over real HTTP against the sandbox, whose world is the
truth: every public trade and account fill of a window lands exactly once.

Pages of two rows put page boundaries everywhere, and the world has more than a page's worth of
trades in one millisecond (the public tape's bursts; a Bitvavo taker order's fills share its
first fill's millisecond), so the crowded-millisecond path (`tradeIdTo`) is walked too.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sandbox_clients import bitvavo_client as client
from sandbox_fixtures import fresh_sandboxes_fixture, served, world_fixture
from sandbox_runtime import sandbox_runtime

from pipelines.datasets import FILLS, PUBLIC_TRADES
from pipelines.exchanges.bitvavo import MAX_TRADE_SPAN
from pipelines.exchanges.bitvavo_errors import classify_bitvavo
from pipelines.exchanges.bitvavo_walk import MIN_SPAN, TradeSpan, is_span_refusal, walk_backwards
from pipelines.exchanges.paging import Page, PagingLoopError
from pipelines.flows.bitvavo_account import bitvavo_trades
from pipelines.flows.plan import final_cutoff
from pipelines.flows.public_trades import sync_public_trades
from pipelines.http import (
    InvalidRequestError,
    RetryPolicy,
)
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

SEED = 13
DAYS = 14
NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
ACCOUNT_START = NOW - timedelta(days=DAYS + 1)
FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)
RATE_SCALE = 100.0  # budgets and windows x100: the same rate, a budget no walk here exhausts
SPANS = ("none", "24h")
ENDS = ("inclusive", "exclusive")
EVERY = [
    Variants(bitvavo_trades_span=s, bitvavo_trades_end=e) for s, e in itertools.product(SPANS, ENDS)
]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def at(ms_: int) -> datetime:
    return datetime.fromtimestamp(ms_ / 1000, UTC)


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


# A fresh sandbox (and so a fresh rate budget) per call, all over the module's world.
# The budget is scaled up (`RATE_SCALE`): walks in pages of two rows spend more than half of
# Bitvavo's real 1000 a minute, and the client would then pace them to the window's reset,
# up to a minute of waiting that proves nothing here (test_clients_sandbox.py tests pacing).
serve = fresh_sandboxes_fixture(rate_scale=RATE_SCALE)


def account_truth(world: World, market: str) -> list[str]:
    return [f.fill_id for f in world.bitvavo.fills if f.market == market and f.ts_ms <= NOW_MS]


def crowded_ms(world: World, market: str) -> int:
    """The most fills of `market` that share one millisecond."""
    return max(Counter(f.ts_ms for f in world.bitvavo.fills if f.market == market).values())


# --- account fills ----------------------------------------------------------------------------


@pytest.mark.parametrize("variants", EVERY, ids=str)
def test_account_fills_land_once_across_crowded_page_boundaries(
    variants: Variants, serve: Callable[[Variants], Sandbox], world: World
) -> None:
    sandbox = serve(variants)
    bitvavo = client(sandbox)
    markets = world.bitvavo.markets_traded
    assert all(f.ts_ms >= ms(ACCOUNT_START) for f in world.bitvavo.fills)
    by_id_pages = 0
    listed = [m for m in markets if ("bitvavo", m) in world.markets]
    assert len(listed) >= 2
    for market in listed:  # a delisted market was traded in one round trip only
        assert crowded_ms(world, market) > 2, f"{market}: no millisecond holds more than a page"
    for market in markets:
        pages = list(bitvavo.trades_window(market, ACCOUNT_START, NOW, limit=2))
        got = [f.fill_id for page in pages for f in page.records]
        assert len(got) == len(set(got)), market
        assert sorted(got) == sorted(account_truth(world, market)), market
        assert {f.market for page in pages for f in page.records} == {market}
        by_id_pages += sum("tradeIdTo" in page.params for page in pages)
    assert by_id_pages > 0, "no page went by tradeIdTo: the crowded path was not walked"
    refused = served(sandbox)["responses"].get("400", 0)
    if variants.bitvavo_trades_span == "24h":
        assert refused == 1, "the accepted span was not kept for the next markets"
        assert bitvavo.trade_span.span == MAX_TRADE_SPAN
    else:
        assert refused == 0
        assert bitvavo.trade_span.span is None


def test_a_205_about_another_parameter_stays_fatal(serve: Callable[[Variants], Sandbox]) -> None:
    sandbox = serve(Variants(bitvavo_trades_span="24h"))
    bitvavo = client(sandbox)
    with pytest.raises(InvalidRequestError, match="market parameter is invalid") as caught:
        list(bitvavo.trades_window("XRP-EUR", ACCOUNT_START, NOW))
    assert caught.value.code == "205"
    assert served(sandbox)["endpoints"]["trades"]["requests"] == 1
    assert bitvavo.trade_span.span is None


# --- account fills through the flow, span-limited -------------------------------------------


def test_span_limited_sync_lands_every_fill_in_a_bounded_number_of_requests(
    serve: Callable[[Variants], Sandbox], world: World, tmp_path: Path
) -> None:
    sandbox = serve(Variants(bitvavo_trades_span="24h"))
    rt = sandbox_runtime(sandbox, tmp_path, now=NOW, retry=FAST_RETRY)
    settings = rt.settings
    markets = list(world.bitvavo.markets_traded)
    try:
        result = bitvavo_trades(rt, markets, epoch=ACCOUNT_START)
    finally:
        rt.close()
    landed = Lake(settings.lake_dir).scan(FILLS.dataset, exchange="bitvavo").collect()
    for market in markets:
        ids = landed.filter(pl.col("market") == market)["fill_id"].to_list()
        assert sorted(ids) == sorted(account_truth(world, market)), market
    # one request per 24 h piece of each market's window (under 1000 fills a day), and the one
    # request that was refused before the client learnt the span
    pieces = math.ceil((NOW - ACCOUNT_START) / MAX_TRADE_SPAN)
    trades_requests = served(sandbox)["endpoints"]["trades"]["requests"]
    assert trades_requests <= len(markets) * pieces + 1
    assert result.requests == trades_requests
    assert served(sandbox)["responses"].get("400", 0) == 1


# --- public trades --------------------------------------------------------------------------


def crowded_window(world: World) -> tuple[int, int]:
    """[a trade's ms, a later trade's ms) around a millisecond with three or more trades, so
    that both window edges hold a trade and a page of two cannot hold that millisecond."""
    market = world.market("bitvavo", "BTC-EUR")
    trades = market.trades(NOW_MS - 6 * 3_600_000, NOW_MS)
    per_ms = Counter(t.ts_ms for t in trades)
    crowded = next(stamp for stamp, n in sorted(per_ms.items()) if n >= 3)
    index = next(i for i, t in enumerate(trades) if t.ts_ms == crowded)
    return trades[index - 30].ts_ms, trades[index + 30].ts_ms


@pytest.mark.parametrize("end", ENDS)
def test_public_trades_window_is_the_tape_once(
    end: str, serve: Callable[[Variants], Sandbox], world: World
) -> None:
    sandbox = serve(Variants(bitvavo_trades_end=end))
    start_ms, end_ms = crowded_window(world)
    pages = list(client(sandbox).public_trades_window("BTC-EUR", at(start_ms), at(end_ms), limit=2))
    got = [t.trade_id for page in pages for t in page.records]
    market = world.market("bitvavo", "BTC-EUR")
    truth = market.trades(start_ms, end_ms)
    assert truth[0].ts_ms == start_ms and market.trades(end_ms, end_ms + 1)
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(market.trade_uuid(t) for t in truth)
    assert any("tradeIdTo" in page.params for page in pages), "the crowded path was not walked"


@pytest.mark.parametrize("end", ENDS)
def test_public_trades_flow_lands_the_tape_once(
    end: str, serve: Callable[[Variants], Sandbox], world: World, tmp_path: Path
) -> None:
    sandbox = serve(Variants(bitvavo_trades_end=end))
    rt = sandbox_runtime(sandbox, tmp_path, now=NOW, retry=FAST_RETRY)
    settings = rt.settings
    since = NOW.replace(hour=0, minute=0) - timedelta(hours=6)  # crosses a day boundary
    try:
        sync_public_trades(rt, "bitvavo", "BTC-EUR", since=since)
    finally:
        rt.close()
    landed = (
        Lake(settings.lake_dir)
        .scan(PUBLIC_TRADES.dataset, exchange="bitvavo", market="BTC-EUR")
        .collect()["trade_id"]
        .to_list()
    )
    market = world.market("bitvavo", "BTC-EUR")
    cutoff = final_cutoff(NOW, "1m", timedelta(seconds=60))
    truth = market.trades(ms(since), ms(cutoff))
    assert len(landed) == len(set(landed))
    assert sorted(landed) == sorted(market.trade_uuid(t) for t in truth)


# --- what is a span refusal, and the guards that stop a walk ----------------------------------


def test_span_refusals_are_told_from_other_205s_in_recorded_bodies(samples_dir: Path) -> None:
    recorded = json.loads((samples_dir / "recorded" / "bitvavo_errors.json").read_text())
    verdicts = {}
    for entry in recorded:
        body = entry["body"]
        error = classify_bitvavo(entry["http_status"] or 400, body, endpoint="trades")
        assert error is not None
        verdicts[body["error"]] = is_span_refusal(error)
    assert verdicts["start parameter is invalid."] is True
    assert verdicts["price parameter is invalid."] is False
    assert verdicts["symbol parameter is invalid."] is False
    assert verdicts["clientOrderId parameter is invalid"] is False
    assert verdicts["Invalid parameter: price"] is False
    assert verdicts["The signature is invalid."] is False


def test_the_span_shrinks_to_24h_then_halves_and_gives_up_below_a_minute() -> None:
    span = TradeSpan(MAX_TRADE_SPAN)
    refusal = InvalidRequestError(
        "end parameter is invalid.", exchange="bitvavo", endpoint="trades"
    )
    start = NOW - timedelta(days=91)
    assert span.piece_end(start, NOW) == NOW
    span.refused(timedelta(days=91), refusal)
    assert span.span == MAX_TRADE_SPAN
    assert span.piece_end(start, NOW) == start + MAX_TRADE_SPAN
    steps = 0
    with pytest.raises(InvalidRequestError):
        while True:
            assert span.span is not None
            span.refused(span.span, refusal)
            steps += 1
    assert span.span is not None and MIN_SPAN <= span.span < 2 * MIN_SPAN
    assert steps == math.floor(math.log2(MAX_TRADE_SPAN / MIN_SPAN))


class ExchangeIgnoringTradeIdTo:
    """An exchange that serves `limit` rows newest first but ignores `tradeIdTo`."""

    def __init__(self, rows: list[tuple[str, datetime]], limit: int) -> None:
        self.rows = sorted(rows, key=lambda row: row[1], reverse=True)
        self.limit = limit
        self.calls = 0

    def __call__(self, start: datetime, end: datetime, id_to: str | None) -> Page[Any]:
        self.calls += 1
        chosen = [row for row in self.rows if start <= row[1] <= end][: self.limit]
        return Page(chosen, "trades", {"end": end, "tradeIdTo": id_to}, NOW)


def test_a_page_of_nothing_new_stops_the_walk_instead_of_looping() -> None:
    stamp = NOW - timedelta(hours=1)
    rows = [(f"id-{n}", stamp) for n in range(5)] + [("older", stamp - timedelta(seconds=1))]
    exchange = ExchangeIgnoringTradeIdTo(rows, limit=2)
    key: Callable[[tuple[str, datetime]], Hashable] = lambda row: row[0]  # noqa: E731
    walk = walk_backwards(
        exchange,
        NOW - timedelta(hours=2),
        NOW,
        key=key,
        moment=lambda row: row[1],
        trade_id=lambda row: row[0],
        exchange="bitvavo",
        endpoint="trades",
        limit=2,
    )
    with pytest.raises(PagingLoopError, match="brought no new row"):
        list(walk)
    assert exchange.calls <= 3
