"""Bitstamp perpetual markets (`btcusd-perp`, `market_type` PERPETUAL, as ccxt documents them):
tally keeps their rows as they came under a name of their own, `BTC-USD-PERP`, never the spot
market's, and one row it cannot name never stops a snapshot. Against the sandbox playing
`bitstamp-perps=on`, and the parser against the recorded fee rows."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import sandbox_runtime

from pipelines.datasets import FEE_SCHEDULES
from pipelines.exchanges import bitstamp_parse as bs
from pipelines.exchanges.bitstamp import pair_symbol
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.bitstamp_account import bitstamp_snapshots
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, RetryPolicy
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, 12, tzinfo=UTC)
TAKEN_AT = datetime(2024, 4, 1, tzinfo=UTC)
FAST_RETRY = RetryPolicy(max_attempts=5, max_total_seconds=20, base_seconds=0.01)


world = world_fixture(seed=29, days=5, now_ms=int(NOW.timestamp() * 1000))
sandbox = sandbox_fixture(variants=Variants(bitstamp_perps="on"))


def runtime(sandbox: Sandbox, directory: Path) -> Runtime:
    limiters = {"bitstamp": RequestBudget(*BITSTAMP_PACING)}
    return sandbox_runtime(sandbox, directory, now=NOW, retry=FAST_RETRY, limiters=limiters)


def recorded_fees(samples_dir: Path) -> list[dict[str, Any]]:
    path = samples_dir / "recorded" / "bitstamp_fees_trading__gocryptotrader_pr1289_excerpt.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return rows


def test_names_keep_a_perpetual_apart_from_its_spot_market() -> None:
    assert bs.bitstamp_market("btcusd-perp") == "BTC-USD-PERP"
    assert bs.bitstamp_market("btcusd") == "BTC-USD"
    assert pair_symbol("BTC-USD-PERP") == "btcusd-perp"
    assert pair_symbol("GBP-EUR") == "gbpeur"
    with pytest.raises(ValueError, match="cannot split"):
        bs.bitstamp_market("btcxyz-perp")


def test_the_market_list_names_the_perpetual_by_itself(sandbox: Sandbox, tmp_path: Path) -> None:
    with closing(runtime(sandbox, tmp_path)) as rt:
        listed = {m.market: m for m in rt.client("bitstamp").markets()}
    perp, spot = listed["BTC-USD-PERP"], listed["BTC-USD"]
    assert (perp.symbol, perp.base_asset, perp.quote_asset) == ("btcusd-perp", "BTC", "USD")
    assert perp.extra["market_type"] == "PERPETUAL" and perp.extra["payoff_type"] == "Linear"
    assert '"market_symbol":"btcusd-perp"' in perp.raw.replace(" ", "")
    assert (spot.symbol, spot.extra["market_type"]) == ("btcusd", "SPOT")
    assert sum(m.symbol.startswith("btcusd") for m in listed.values()) == 2


def test_the_fee_snapshot_keeps_the_perpetual_row_under_its_own_name(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    with closing(runtime(sandbox, tmp_path)) as rt:
        bitstamp_snapshots(rt)
        fees = rt.lake.scan(FEE_SCHEDULES.dataset, exchange="bitstamp").collect()
    perp = fees.filter(pl.col("market") == "BTC-USD-PERP")
    assert perp.height == 1
    assert (Decimal(perp["maker"][0]), Decimal(perp["taker"][0])) == (Decimal(0), Decimal("0.0005"))
    assert json.loads(perp["raw"][0])["market"] == "btcusd-perp"
    spot = {
        row["market"]: (Decimal(row["maker"]), Decimal(row["taker"]))
        for row in fees.filter(pl.col("market") != "BTC-USD-PERP").iter_rows(named=True)
    }
    truth = {
        bs.bitstamp_market(row["market"]): (
            Decimal(row["fees"]["maker"]) / 100,
            Decimal(row["fees"]["taker"]) / 100,
        )
        for row in world.bitstamp.trading_fees
    }
    assert spot == truth, "the spot rows are what they were, BTC-USD among them"


def test_a_fee_row_that_cannot_be_named_is_kept_and_stops_nothing(samples_dir: Path) -> None:
    rows = recorded_fees(samples_dir)
    rows[1] = {**rows[1], "currency_pair": "dogeusd", "market": "dogeusd-perp"}
    rows[2] = {**rows[2], "currency_pair": "zz9", "market": "zz9"}
    schedules = bs.parse_trading_fees(rows, account="main", taken_at=TAKEN_AT)
    assert len(schedules) == len(rows)
    assert [s.market for s in schedules][:3] == ["DOGE-EUR", "DOGE-USD-PERP", "zz9"]
    assert schedules[1].extra == {"currency_pair": "dogeusd"}, "the differing pair is kept"
    assert schedules[2].extra == {} and json.loads(schedules[2].raw)["market"] == "zz9"
    assert all(s.maker == 0 and s.taker == 0 for s in schedules)
    # the symbol map from the markets list wins over splitting
    (mapped,) = bs.parse_trading_fees(
        [rows[2]], account="main", taken_at=TAKEN_AT, symbols={"zz9": "ZZ-NINE"}
    )
    assert mapped.market == "ZZ-NINE"
