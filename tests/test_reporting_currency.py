"""USD and GBP as reporting currencies, over a lake synced from the sandbox: the `prices` view's
USD series (exact decimals, a direct USD candle before the cross rate through EUR-USD) and GBP
series (Bitstamp has GBP-EUR, not EUR-GBP: the EUR price divided by the GBP-EUR close, EUR
itself 1 / that close, each rounded half up once to 18 decimals), the engine's trade values in
USD and GBP (a USD-quoted fill is worth its quote amount, a EUR-quoted one its quote times the
EUR-USD close or times one EUR in GBP), gains exports in USD and GBP, and an unknown currency
refused with its reason. Expected prices are computed here from the landed candles."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sandbox_fixtures import world_fixture
from synced_lake import Accounts, Candles, CandlesAroundOldRows, SyncedLakeFactory
from warehouse_build import build

from pipelines.config import Settings
from pipelines.datasets import CANDLES
from pipelines.exchanges.records import Candle
from pipelines.flows.plan import Window
from pipelines.lake import Lake
from pipelines.sandbox.world import World
from warehouse.connect import connect
from warehouse.costbasis import UnsupportedCurrencyError
from warehouse.costbasis.events import events_from_warehouse
from warehouse.costbasis.model import Event
from warehouse.costbasis.prices import PriceBook
from warehouse.exports.options import ExportOptionError, ExportOptions
from warehouse.exports.run import export

NOW = datetime(2024, 6, 1, tzinfo=UTC)
DAYS = 60  # test_warehouse_checks.py's world: the session syncs its lake once for all three
SEED = 7
TINY = Decimal("1e-18")


def executed_at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(entry["datetime"])).replace(tzinfo=UTC)


def amount(entry: dict[str, Any], key: str) -> Decimal:
    return Decimal(str(entry.get(key) or 0))


def round18(value: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return value.quantize(TINY, rounding=ROUND_HALF_UP)


# --- the synced lake ---------------------------------------------------------------------------


world = world_fixture(seed=SEED, days=DAYS, now_ms=int(NOW.timestamp() * 1000))


@pytest.fixture(scope="module")
def synced(synced_lake: SyncedLakeFactory) -> Settings:
    """Both accounts and every market's 1h candles of the last DAYS (GBP-EUR among them: the
    sandbox config lists the world's markets), plus Bitstamp BTC-USD, EUR-USD and GBP-EUR around
    each older Bitstamp row (so that the whole history has a USD and a GBP price)."""
    old_rows = CandlesAroundOldRows(("BTC-USD", "EUR-USD", "GBP-EUR"))
    lake = synced_lake(seed=SEED, days=DAYS, now=NOW, what=(Accounts(), Candles(), old_rows))
    settings = lake.settings
    assert "GBP-EUR" in settings.exchange("bitstamp").markets
    return settings


@pytest.fixture(scope="module")
def connection(synced: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(synced.data_dir) as opened:
        yield opened


class PricesView:
    """Every row of the `prices` view, computed once for the tests that check its series (the
    view computes hourly rows from 2020 on: a few seconds a read) into a temporary table of the
    module's connection, and read from there as the tests ask (making Python values of all its
    rows would take longer than computing them)."""

    COLUMNS = "currency, asset, priced_at, price, source, observed_at, staleness"

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection
        connection.execute(f"create temp table prices_rows as select {self.COLUMNS} from prices")

    def currencies(self) -> list[str]:
        query = "select distinct currency from prices_rows order by currency"
        return [currency for (currency,) in self.connection.execute(query).fetchall()]

    def assets(self, currency: str) -> set[str]:
        query = "select distinct asset from prices_rows where currency = ?"
        return {asset for (asset,) in self.connection.execute(query, [currency]).fetchall()}

    def row(self, currency: str, asset: str, priced_at: datetime) -> tuple[Any, ...]:
        """The row of (currency, asset, priced_at): (currency, asset, priced_at, price, source,
        observed_at, staleness)."""
        (found,) = self.connection.execute(
            f"select {self.COLUMNS} from prices_rows "
            "where currency = ? and asset = ? and priced_at = ?",
            [currency, asset, priced_at],
        ).fetchall()
        return found


@pytest.fixture(scope="module")
def prices_view(connection: duckdb.DuckDBPyConnection) -> PricesView:
    return PricesView(connection)


@pytest.fixture(scope="module")
def usd_events(connection: duckdb.DuckDBPyConnection) -> dict[str, list[Event]]:
    """The engine's trade events in USD by reference."""
    by_reference: dict[str, list[Event]] = {}
    for event in events_from_warehouse(connection, currency="USD"):
        if event.category == "trade":
            by_reference.setdefault(event.reference, []).append(event)
    return by_reference


def last_close(
    connection: duckdb.DuckDBPyConnection, exchange: str, market: str, at: datetime
) -> tuple[Decimal, datetime]:
    """(close, close time) of the newest traded 1h candle of `market` ending at or before `at`
    (the traded 1h candles are read from the `candles` view once per connection, into a
    temporary table: the view reads and deduplicates the lake's files at every query)."""
    connection.execute(
        "create temp table if not exists traded_hours as select exchange, market, close, "
        "close_time from candles where interval = '1h' and volume > 0"
    )
    row = connection.execute(
        "select close, close_time from traded_hours where exchange = ? and market = ? "
        "and close_time <= ? order by close_time desc limit 1",
        [exchange, market, at],
    ).fetchone()
    assert row is not None
    return Decimal(row[0]), row[1]


def rate_close(connection: duckdb.DuckDBPyConnection, market: str, at: datetime) -> Decimal:
    """The close of the newest traded Bitstamp `market` hour ending at or before `at`."""
    return last_close(connection, "bitstamp", market, at)[0]


def eur_usd_close(connection: duckdb.DuckDBPyConnection, at: datetime) -> Decimal:
    return rate_close(connection, "EUR-USD", at)


def gbp_eur_close(connection: duckdb.DuckDBPyConnection, at: datetime) -> Decimal:
    return rate_close(connection, "GBP-EUR", at)


def quotient18(dividend: Decimal, divisor: Decimal) -> Decimal:
    """dividend / divisor rounded half up to 18 decimals (computed to 80 digits first)."""
    with localcontext() as context:
        context.prec = 80
        return round18(dividend / divisor)


def window_trades(world: World, pair: str) -> list[dict[str, Any]]:
    """Bitstamp trade entries of `pair` (e.g. "btc_usd") inside the candle window."""
    start = NOW - timedelta(days=DAYS)
    return [
        e
        for e in world.bitstamp.user_transactions
        if str(e["type"]) == "2" and pair in e and executed_at(e) >= start
    ]


# --- the view ------------------------------------------------------------------------------------


def test_prices_has_no_floating_point_column(
    connection: duckdb.DuckDBPyConnection, prices_view: PricesView
) -> None:
    types = dict(
        connection.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'prices'"
        ).fetchall()
    )
    assert types["price"] == "DECIMAL(38,18)"
    assert not [c for c, t in types.items() if t in ("DOUBLE", "FLOAT", "REAL")], types
    assert prices_view.currencies() == ["EUR", "GBP", "USD"]


def test_usd_series_prefers_a_direct_candle_then_the_cross_rate(
    connection: duckdb.DuckDBPyConnection, prices_view: PricesView
) -> None:
    assert "USD" not in prices_view.assets("USD"), "the reporting currency is worth 1"
    hour = NOW - timedelta(days=3)

    # EUR itself: the EUR-USD close, exactly
    assert prices_view.row("USD", "EUR", hour)[3] == eur_usd_close(connection, hour)
    assert prices_view.row("USD", "EUR", hour)[4] == "bitstamp EUR-USD 1h"

    # BTC in an hour with a traded BTC-USD candle: that close, no conversion
    btc = connection.execute(
        "select close, volume from candles where exchange = 'bitstamp' and market = 'BTC-USD' "
        "and interval = '1h' and close_time = ?",
        [hour],
    ).fetchone()
    assert btc is not None
    (btc_close, btc_volume) = btc
    assert btc_volume > 0
    assert prices_view.row("USD", "BTC", hour)[3:6] == (btc_close, "bitstamp BTC-USD 1h", hour)

    # ADA (only ADA-EUR on Bitvavo): the EUR price times EUR-USD, rounded half up once
    for at in (hour, hour + timedelta(hours=7), NOW - timedelta(days=20)):
        price_eur, observed_eur = last_close(connection, "bitvavo", "ADA-EUR", at)
        expected = (price_eur, "bitvavo ADA-EUR 1h", observed_eur)
        assert prices_view.row("EUR", "ADA", at)[3:6] == expected
        rate = eur_usd_close(connection, at)
        _, _, _, price, source, observed, staleness = prices_view.row("USD", "ADA", at)
        assert price == round18(price_eur * rate)
        assert source == "bitvavo ADA-EUR 1h * bitstamp EUR-USD 1h"
        newest_rate = connection.execute(
            "select max(close_time) from candles where market = 'EUR-USD' and volume > 0 "
            "and close_time <= ?",
            [at],
        ).fetchone()
        assert newest_rate is not None
        rate_at = newest_rate[0]
        assert observed == min(observed_eur, rate_at)
        assert staleness == at - observed


def test_gbp_series_divides_the_eur_price_by_gbp_eur(
    connection: duckdb.DuckDBPyConnection, prices_view: PricesView
) -> None:
    closes = connection.execute(
        "select close from candles where exchange = 'bitstamp' and market = 'GBP-EUR' "
        "and interval = '1h' and volume > 0"
    ).fetchall()
    assert len(closes) > 24 * DAYS // 2, "the sandbox serves GBP-EUR candles"
    assert all(Decimal("1.11") <= c <= Decimal("1.21") for (c,) in closes)
    eur_gbp = connection.execute("select count(*) from candles where market = 'EUR-GBP'").fetchone()
    assert eur_gbp is not None
    assert not eur_gbp[0], "Bitstamp has no EUR-GBP market"
    gbp = prices_view.assets("GBP")
    assert gbp and "GBP" not in gbp, "the reporting currency is worth 1"
    assert {"BTC", "ETH", "ADA", "USD", "EUR"} <= gbp
    checked_btc = 0
    for at in (
        NOW - timedelta(days=3),
        NOW - timedelta(days=3, hours=-7),
        NOW - timedelta(days=20),
    ):
        rate, rate_at = last_close(connection, "bitstamp", "GBP-EUR", at)
        # GBP in EUR: the GBP-EUR close itself
        assert prices_view.row("EUR", "GBP", at)[3:6] == (rate, "bitstamp GBP-EUR 1h", rate_at)
        # EUR itself: 1 / the GBP-EUR close, rounded half up to 18 decimals
        assert prices_view.row("GBP", "EUR", at)[3:6] == (
            quotient18(Decimal(1), rate),
            "bitstamp GBP-EUR 1h (inverted)",
            rate_at,
        )
        # every other asset: its EUR price (from the candles) / the GBP-EUR close, rounded once
        usd_rate, usd_at = last_close(connection, "bitstamp", "EUR-USD", at)
        ada, ada_at = last_close(connection, "bitvavo", "ADA-EUR", at)
        expected = {
            "ADA": (ada, "bitvavo ADA-EUR 1h", ada_at),
            "USD": (quotient18(Decimal(1), usd_rate), "bitstamp EUR-USD 1h (inverted)", usd_at),
        }
        btc = connection.execute(
            "select close from candles where exchange = 'bitvavo' and market = 'BTC-EUR' "
            "and interval = '1h' and volume > 0 and close_time = ?",
            [at],
        ).fetchone()
        if btc is not None:  # traded this very hour on Bitvavo: the freshest, first-priority price
            expected["BTC"] = (Decimal(btc[0]), "bitvavo BTC-EUR 1h", at)
            checked_btc += 1
        for asset, (price_eur, source_eur, observed_eur) in expected.items():
            _, _, _, price, source, observed, staleness = prices_view.row("GBP", asset, at)
            assert price == quotient18(price_eur, rate), asset
            assert source == f"{source_eur} / bitstamp GBP-EUR 1h"
            assert observed == min(observed_eur, rate_at)
            assert staleness == at - observed
    assert checked_btc >= 2, "BTC-EUR trades in most hours"


def test_a_cross_rate_needing_more_than_18_decimals_is_rounded_half_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    h0 = datetime(2024, 3, 1, tzinfo=UTC)
    closes = {
        ("bitvavo", "SHIB-EUR"): ("0.0000212345678", "0.0000212345677"),
        ("bitstamp", "EUR-USD"): ("1.084567891234", "1.084567891235"),
    }
    for (exchange, market), (first, second) in closes.items():
        candles = [
            Candle(exchange, market, "1h", h0 + timedelta(hours=i), p, p, p, p, Decimal(1))
            for i, p in enumerate((Decimal(first), Decimal(second)))
        ]
        lake.land(
            CANDLES.dataset,
            CANDLES.frame(candles, fetched_at=h0 + timedelta(days=1)),
            stem=Window(h0, h0 + timedelta(hours=2)).stem,
            partition={"exchange": exchange, "market": market, "interval": "1h"},
        )
    build(settings)
    with connect(settings.data_dir) as opened:
        found = opened.execute(
            "select priced_at, price from prices where currency = 'USD' and asset = 'SHIB' "
            "order by 1"
        ).fetchall()
    expected = [
        (h0 + timedelta(hours=i + 1), round18(Decimal(shib) * Decimal(rate)))
        for i, (shib, rate) in enumerate(zip(*closes.values(), strict=True))
    ]
    assert found == expected
    # 25 decimals each: the second one's 19th decimal is 7, so it rounds up, not down
    products = [Decimal(s) * Decimal(r) for s, r in zip(*closes.values(), strict=True)]
    assert expected[1][1] > products[1]


# --- the engine ----------------------------------------------------------------------------------


def test_a_usd_quoted_fill_is_worth_its_quote_amount_in_usd(
    world: World, usd_events: dict[str, list[Event]]
) -> None:
    fills = window_trades(world, "btc_usd")
    assert len(fills) >= 2
    for entry in fills:
        quote, fee = abs(amount(entry, "usd")), amount(entry, "fee")
        (event,) = usd_events[str(entry["id"])]
        assert event.asset == "BTC" and event.quantity == abs(amount(entry, "btc"))
        assert event.fees == fee
        if amount(entry, "btc") > 0:  # a buy: cost = quote + fee
            assert (event.kind, event.value) == ("acquire", quote + fee)
        else:  # a sell: proceeds = quote, the fee allowable
            assert (event.kind, event.value) == ("dispose", quote)


def test_a_eur_quoted_fill_is_worth_its_quote_times_eur_usd(
    world: World, connection: duckdb.DuckDBPyConnection, usd_events: dict[str, list[Event]]
) -> None:
    fills = window_trades(world, "btc_eur")
    assert fills
    eur_book = PriceBook.load(connection, "EUR")
    for entry in fills:
        at = executed_at(entry)
        rate = eur_usd_close(connection, at)
        quote, fee = abs(amount(entry, "eur")), amount(entry, "fee")
        (event,) = usd_events[str(entry["id"])]
        assert event.value is not None  # a trade has a value
        worth = event.value - event.fees if event.kind == "acquire" else event.value
        assert worth == quote * rate  # exact: no rounding on the way
        assert event.fees == fee * rate
        # the same as quote ÷ price_eur(USD), up to that price's own rounding to 18 decimals
        usd_in_eur = eur_book.price("USD", at)
        assert usd_in_eur == round18(1 / rate)
        with localcontext() as context:
            context.prec = 80
            assert abs(worth - quote / usd_in_eur) <= quote * TINY


def test_a_eur_quoted_fill_is_worth_its_quote_times_one_eur_in_gbp(
    world: World, connection: duckdb.DuckDBPyConnection
) -> None:
    gbp_events: dict[str, list[Event]] = {}
    for event in events_from_warehouse(connection, currency="GBP"):
        if event.category == "trade":
            gbp_events.setdefault(event.reference, []).append(event)
    fills = window_trades(world, "btc_eur")
    assert fills
    for entry in fills:
        eur_in_gbp = quotient18(Decimal(1), gbp_eur_close(connection, executed_at(entry)))
        quote, fee = abs(amount(entry, "eur")), amount(entry, "fee")
        (event,) = gbp_events[str(entry["id"])]
        assert event.value is not None  # a trade has a value
        worth = event.value - event.fees if event.kind == "acquire" else event.value
        assert worth == quote * eur_in_gbp  # exact: the 18-decimal rate, no further rounding
        assert event.fees == fee * eur_in_gbp


# --- exports -------------------------------------------------------------------------------------


def gains_rows(
    connection: duckdb.DuckDBPyConnection, currency: str, directory: Path
) -> list[dict[str, str]]:
    """The rows of the 2024 gains export in `currency`: its sidecar and every row say
    `currency`, and the count it reports is the rows written (at least one)."""
    (written,) = export(
        connection, ["gains"], ExportOptions(currency=currency, year=2024), directory
    )
    table, sidecar = written.files
    assert json.loads(sidecar.read_text())["currency"] == currency
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and written.rows == len(rows)
    for row in rows:
        assert row["currency"] == currency
    return rows


def test_gains_export_in_usd_says_usd_and_writes_exact_decimals(
    connection: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = gains_rows(connection, "USD", tmp_path)
    for row in rows:
        for column in ("proceeds", "cost", "fees", "gain"):
            assert "e" not in row[column].lower(), row[column]
        proceeds, cost, fees, gain = (Decimal(row[c]) for c in ("proceeds", "cost", "fees", "gain"))
        assert gain == proceeds - cost - fees
    # a BTC-USD sale's proceeds are its dollars as the ledger has them
    sold = {
        (abs(Decimal(r["quantity"])), Decimal(r["proceeds"])) for r in rows if r["asset"] == "BTC"
    }
    ledger = connection.execute(
        "select abs(sum(amount) filter (where asset = 'BTC')), "
        "sum(amount) filter (where asset = 'USD' and kind = 'trade_quote') "
        "from ledger where exchange = 'bitstamp' and market = 'BTC-USD' "
        "and kind in ('trade_base', 'trade_quote') group by reference "
        "having sum(amount) filter (where asset = 'BTC') < 0 and min(executed_at) >= ?",
        [datetime(2024, 1, 1, tzinfo=UTC)],
    ).fetchall()
    assert ledger
    for quantity, dollars in ledger:
        assert (quantity, dollars) in sold


def test_gains_export_in_gbp_says_gbp(
    connection: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = gains_rows(connection, "GBP", tmp_path)
    for row in rows:
        proceeds, cost, fees, gain = (Decimal(row[c]) for c in ("proceeds", "cost", "fees", "gain"))
        with localcontext() as context:  # values through 1 / GBP-EUR carry 30+ digits
            context.prec = 80
            assert gain == proceeds - cost - fees


def test_an_unknown_currency_is_refused_with_its_reason(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    message = "CHF is not available yet: no CHF market is landed"
    with pytest.raises(UnsupportedCurrencyError, match=message):
        events_from_warehouse(connection, currency="CHF")
    with pytest.raises(ExportOptionError, match="unknown currency 'CHF'"):
        ExportOptions(currency="CHF")
