"""The market-data views on small hand-made lakes: candles deduplicated, coverage's gaps and
their reasons (a Bitvavo hour without a candle is not a gap), prices exact through EUR-USD, and a
catalog built over a lake with nothing landed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from warehouse_build import build
from warehouse_query import rows as query

from pipelines.config import Settings
from pipelines.datasets import CANDLES
from pipelines.exchanges.records import Candle
from pipelines.flows.plan import Window
from pipelines.flows.public_trades import record_gap
from pipelines.lake import Lake
from warehouse.connect import connect

H0 = datetime(2024, 3, 1, tzinfo=UTC)
FIRST_FETCH = datetime(2024, 3, 2, tzinfo=UTC)
LATER_FETCH = datetime(2024, 3, 3, tzinfo=UTC)


def h(i: int) -> datetime:
    return H0 + timedelta(hours=i)


def candle(exchange: str, market: str, i: int, close: str, volume: str = "1") -> Candle:
    price = Decimal(close)
    return Candle(exchange, market, "1h", h(i), price, price, price, price, Decimal(volume))


def land(lake: Lake, start: int, end: int, candles: Iterable[Candle], fetched: datetime) -> None:
    records = list(candles)
    first = records[0]
    lake.land(
        CANDLES.dataset,
        CANDLES.frame(records, fetched_at=fetched),
        stem=Window(h(start), h(end)).stem,
        partition={"exchange": first.exchange, "market": first.market, "interval": "1h"},
    )


ETH_USD = {0: "3400.5", 1: "3410.25", 2: "3410.25", 3: "3399.99", 6: "3388", 8: "3390.01"}
EUR_USD = {i: f"1.08{i}17" for i in range(9)}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("views") / "data")
    lake = Lake(settings.lake_dir)
    # Bitvavo BTC-EUR: no candle in hours 1-2 (no trades); hour 3 fetched again later, changed
    land(
        lake,
        0,
        4,
        [candle("bitvavo", "BTC-EUR", 0, "61000"), candle("bitvavo", "BTC-EUR", 3, "61100")],
        FIRST_FETCH,
    )
    land(lake, 3, 4, [candle("bitvavo", "BTC-EUR", 3, "61234.5")], LATER_FETCH)
    # Bitstamp ETH-USD: two windows with hours 4-5 between them never landed, hour 7 missing
    # inside the second one, hour 2 a zero-volume filler
    first = [candle("bitstamp", "ETH-USD", i, ETH_USD[i], "0" if i == 2 else "2") for i in range(4)]
    land(lake, 0, 4, first, FIRST_FETCH)
    land(lake, 6, 9, [candle("bitstamp", "ETH-USD", i, ETH_USD[i]) for i in (6, 8)], FIRST_FETCH)
    land(lake, 0, 9, [candle("bitstamp", "EUR-USD", i, EUR_USD[i]) for i in range(9)], FIRST_FETCH)
    record_gap(lake, "BTC-EUR", "hour", h(1), h(2), detected_at=h(3), exchange="bitstamp")
    build(settings)
    return settings


def quotient(numerator: Decimal, denominator: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return (numerator / denominator).quantize(Decimal("1e-18"), rounding=ROUND_HALF_UP)


def test_candles_keep_the_newest_fetch_of_each_candle(settings: Settings) -> None:
    btc = query(
        settings,
        "select open_time, close, close_time from candles where market = 'BTC-EUR' order by 1",
    )
    assert [(r["open_time"], r["close"]) for r in btc] == [
        (h(0), Decimal("61000")),
        (h(3), Decimal("61234.5")),
    ]
    assert btc[0]["close_time"] == h(1)


def test_coverage_lists_each_gap_with_its_reason(settings: Settings) -> None:
    coverage = query(settings, "select * from coverage where dataset <> 'balance_snapshots'")
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for row in coverage:
        by_stream.setdefault(row["stream"], []).append(row)

    (bitvavo,) = by_stream["candles bitvavo BTC-EUR 1h"]
    assert bitvavo["gap_start"] is None, "hours without Bitvavo trades are not gaps"
    assert (bitvavo["rows"], bitvavo["windows"]) == (2, 2)

    eth = by_stream["candles bitstamp ETH-USD 1h"]
    assert [(r["gap_start"], r["gap_end"]) for r in eth] == [(h(4), h(6)), (h(7), h(8))]
    assert "no landed window" in eth[0]["gap_reason"]
    assert "bitstamp" in eth[1]["gap_reason"]
    assert (eth[0]["rows"], eth[0]["first_at"], eth[0]["last_at"]) == (6, h(0), h(8))
    assert (eth[0]["covered_from"], eth[0]["covered_to"]) == (h(0), h(9))

    (eur,) = by_stream["candles bitstamp EUR-USD 1h"]
    assert eur["gap_start"] is None

    (trades,) = by_stream["public_trades bitstamp BTC-EUR"]
    assert (trades["gap_start"], trades["gap_end"], trades["rows"]) == (h(1), h(2), 0)
    assert "rolling window" in trades["gap_reason"]


def test_prices_convert_usd_exactly_and_say_how_stale_they_are(settings: Settings) -> None:
    prices = {
        (r["asset"], r["priced_at"]): r
        for r in query(settings, "select * from prices where currency = 'EUR'")
    }
    eth = prices[("ETH", h(1))]
    assert eth["price"] == quotient(Decimal(ETH_USD[0]), Decimal(EUR_USD[0]))
    assert eth["source"] == "bitstamp ETH-USD 1h / bitstamp EUR-USD 1h"
    assert eth["staleness"] == timedelta(0)
    # hour 2 only has a zero-volume filler: the close of hour 1 stands, an hour old
    filler = prices[("ETH", h(3))]
    assert filler["price"] == quotient(Decimal(ETH_USD[1]), Decimal(EUR_USD[1]))
    assert (filler["observed_at"], filler["staleness"]) == (h(2), timedelta(hours=1))

    usd = prices[("USD", h(5))]
    assert usd["price"] == quotient(Decimal(1), Decimal(EUR_USD[4]))
    assert usd["source"] == "bitstamp EUR-USD 1h (inverted)"

    assert prices[("BTC", h(1))]["price"] == Decimal("61000")
    assert prices[("BTC", h(3))]["staleness"] == timedelta(hours=2)
    assert prices[("BTC", h(4))]["price"] == Decimal("61234.5")
    assert prices[("BTC", h(4))]["source"] == "bitvavo BTC-EUR 1h"
    # the series runs to the end of the landed candles, however stale
    assert prices[("BTC", h(9))]["staleness"] == timedelta(hours=5)
    assert max(at for asset, at in prices if asset == "ETH") == h(9)


def test_a_lake_with_nothing_landed_builds_empty_views(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    result = build(settings)
    assert "reconcile_balances" in result.views
    with connect(settings.data_dir) as connection:
        for view in result.views:
            assert connection.execute(f"select count(*) from {view}").fetchone() == (0,), view
