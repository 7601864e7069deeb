"""Bitvavo markets the account traded and the exchange has delisted since (the sandbox plays
both realities at once): PHA-EUR's fills are still served by `/v2/trades` and land from there;
`/v2/trades` refuses NEO-EUR (errorCode 205), which is recorded as a gap with its reason (the
`gaps` dataset, the `coverage` view) while its trades land from `/account/history`. Neither
fails the account sync, and every balance still reconciles to the last decimal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import sandbox_runtime
from warehouse_build import build
from warehouse_query import rows

from pipelines.datasets import FILLS, GAPS
from pipelines.flows.account_streams import sync_account
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.http import RetryPolicy
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, 12, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
FAST_RETRY = RetryPolicy(
    max_attempts=8, max_total_seconds=30, base_seconds=0.01, max_backoff_seconds=0.05
)
BV = {"exchange": "bitvavo", "account": "main"}


world = world_fixture(seed=31, days=12, now_ms=NOW_MS)
sandbox = sandbox_fixture()


@pytest.fixture(scope="module")
def synced(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Runtime, list[list[StreamResult]]]:
    """The Bitvavo account synced twice (the second run finds the refusal again)."""
    rt = sandbox_runtime(sandbox, tmp_path_factory.mktemp("delisted"), now=NOW, retry=FAST_RETRY)
    runs = [sync_account(rt, "bitvavo"), sync_account(rt, "bitvavo")]
    rt.close()
    build(rt.settings)
    return rt, runs


def neo_items(world: World) -> list[Any]:
    return [
        item
        for item in world.bitvavo.items
        if item.type in ("buy", "sell") and "NEO" in item.traded_assets
    ]


def test_the_sandbox_serves_one_delisted_market_and_refuses_the_other(
    sandbox: Sandbox, world: World
) -> None:
    listed = {symbol for exchange, symbol in world.markets if exchange == "bitvavo"}
    assert {"PHA-EUR", "NEO-EUR"}.isdisjoint(listed)
    assert [f for f in world.bitvavo.fills if f.market == "PHA-EUR"], "PHA-EUR was traded"
    assert len(neo_items(world)) == 2, "NEO-EUR was bought and sold"


def test_a_served_delisted_market_lands_its_fills_from_the_trades_endpoint(
    synced: tuple[Runtime, list[list[StreamResult]]], world: World
) -> None:
    rt, _ = synced
    book = rt.lake.scan(FILLS.dataset, **BV).filter(pl.col("market") == "PHA-EUR").collect()
    truth = [f for f in world.bitvavo.fills if f.market == "PHA-EUR"]
    assert set(book["source"].to_list()) == {"trades"}
    assert sorted(book["fill_id"].to_list()) == sorted(f.fill_id for f in truth)
    assert sorted(Decimal(a) for a in book["base_amount"].to_list()) == sorted(
        f.amount for f in truth
    )


def test_a_refused_delisted_market_is_a_gap_with_its_reason(
    synced: tuple[Runtime, list[list[StreamResult]]], world: World
) -> None:
    rt, runs = synced
    for run in runs:
        trades = next(r for r in run if r.stream == "trades bitvavo")
        (line,) = trades.gaps
        assert line.startswith("bitvavo fills NEO-EUR: [")
    gaps = rt.lake.scan(GAPS, exchange="bitvavo").collect()
    assert gaps.height == 1, "found again, the same gap is not recorded twice"
    gap = gaps.row(0, named=True)
    first = min(item.ts_ms for item in neo_items(world))
    assert (gap["stream"], gap["market"]) == ("fills", "NEO-EUR")
    assert int(gap["gap_start"].timestamp() * 1000) == first
    assert gap["gap_end"] == NOW == gap["detected_at"]
    assert "errorCode 205" in gap["reason"] and "/v2/markets no longer lists" in gap["reason"]
    assert gap["reason"].endswith("its trades are kept from /account/history")
    coverage = rows(rt.settings, "select * from coverage where market = 'NEO-EUR'")
    assert [(c["dataset"], c["exchange"], c["gap_reason"]) for c in coverage] == [
        ("fills", "bitvavo", gap["reason"])
    ]


def test_the_refused_markets_trades_land_from_the_history_and_balances_reconcile(
    synced: tuple[Runtime, list[list[StreamResult]]], world: World
) -> None:
    rt, _ = synced
    neo = rows(rt.settings, "select * from fills where market = 'NEO-EUR' order by executed_at")
    truth = neo_items(world)
    assert [f["source"] for f in neo] == ["account/history"] * len(truth)
    assert [Decimal(f["base_amount"]) for f in neo] == [
        i.received[1] if i.type == "buy" else i.sent[1] for i in truth
    ]
    verdicts = rows(rt.settings, "select * from reconcile_balances where exchange = 'bitvavo'")
    assert {"PHA", "NEO", "EUR"} <= {v["asset"] for v in verdicts}
    for verdict in verdicts:
        assert (verdict["status"], verdict["difference"]) == ("ok", 0), verdict
