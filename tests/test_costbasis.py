"""The cost-basis engine: every expected number below is worked out by hand in the comment
beside it (HMRC's own examples for uk, CRYPTO22252/22253/22256), never taken from the code.
Events come straight from Event(...) or through `events` over a tiny hand-made warehouse
(in-memory DuckDB tables with the views' columns); the last tests run over a lake synced from
the sandbox."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from synced_lake import Accounts, Candles, SyncedLakeFactory
from view_tables import create_view_tables

from pipelines.config import Settings
from warehouse.connect import connect
from warehouse.costbasis import (
    Event,
    Gain,
    MissingPriceError,
    Result,
    UnsupportedCurrencyError,
    compute,
    events_from_warehouse,
    holdings,
)
from warehouse.costbasis.events import TradeLegs, trade_events
from warehouse.costbasis.prices import PriceBook

D = Decimal
STAMP = "bitstamp/main"
VAVO = "bitvavo/main"


def at(text: str) -> datetime:
    """'2024-03-01 10:00' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def acquire(
    asset: str, quantity: str, when: str, cost: str, ref: str, wallet: str = STAMP
) -> Event:
    return Event("acquire", asset, D(quantity), wallet, at(when), D(cost), reference=ref)


def dispose(
    asset: str,
    quantity: str,
    when: str,
    proceeds: str,
    ref: str,
    fees: str = "0",
    wallet: str = STAMP,
) -> Event:
    return Event(
        "dispose", asset, D(quantity), wallet, at(when), D(proceeds), D(fees), reference=ref
    )


def by_reference(result: Result) -> dict[str, list[Gain]]:
    gains: dict[str, list[Gain]] = defaultdict(list)
    for gain in result.gains:
        gains[gain.reference].append(gain)
    return gains


def lot_quantities(result: Result) -> dict[tuple[str, str], Decimal]:
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for lot in result.open_lots:
        totals[(lot.wallet, lot.asset)] += lot.quantity
    return dict(totals)


# --- fifo / lifo / hifo, fees in the quote currency ---------------------------------------------


def eur_trade(ref: str, when: str, side: str, btc: str, eur: str, fee: str) -> TradeLegs:
    sign = 1 if side == "buy" else -1
    return TradeLegs(
        wallet=STAMP,
        reference=ref,
        at=at(when),
        market="BTC-EUR",
        base_amount=sign * D(btc),
        quote_amount=-sign * D(eur),
        fees=(("EUR", D(fee)),),
    )


@pytest.fixture
def three_buys_one_sale() -> list[Event]:
    prices = PriceBook("EUR")  # EUR trades need no price
    fills = [
        eur_trade("A", "2024-01-01 10:00", "buy", "1", "100", "1"),  # lot A: 1 BTC, 101
        eur_trade("B", "2024-01-02 10:00", "buy", "2", "300", "3"),  # lot B: 2 BTC, 303
        eur_trade("C", "2024-01-03 10:00", "buy", "1", "120", "2"),  # lot C: 1 BTC, 122
        eur_trade("S", "2024-01-05 10:00", "sell", "2.5", "500", "5"),  # 500 - 5 fees
    ]
    events = [event for fill in fills for event in trade_events(fill, prices)]
    assert not prices.missing
    return events


def test_quote_fees_add_to_cost_and_reduce_proceeds(three_buys_one_sale: list[Event]) -> None:
    buys = {e.reference: e for e in three_buys_one_sale if e.kind == "acquire"}
    assert (buys["A"].value, buys["B"].value, buys["C"].value) == (D(101), D(303), D(122))
    (sale,) = [e for e in three_buys_one_sale if e.kind == "dispose"]
    assert (sale.quantity, sale.value, sale.fees) == (D("2.5"), D(500), D(5))
    assert all(e.asset == "BTC" for e in three_buys_one_sale), "EUR has no lots: no EUR event"


@pytest.mark.parametrize(
    ("method", "used", "cost", "gain", "left"),
    [
        # FIFO: A (1, 101) + 1.5 of B: 303 × 1.5 / 2 = 227.25 → cost 328.25,
        # gain 500 - 328.25 - 5 = 166.75; left: B 0.5 (75.75), C 1 (122)
        ("fifo", [("A", "1", "101"), ("B", "1.5", "227.25")], "328.25", "166.75",
         [("B", "0.5", "75.75"), ("C", "1", "122")]),
        # LIFO: C (1, 122) + 1.5 of B (227.25) → 349.25, gain 500 - 349.25 - 5 = 145.75
        ("lifo", [("C", "1", "122"), ("B", "1.5", "227.25")], "349.25", "145.75",
         [("A", "1", "101"), ("B", "0.5", "75.75")]),
        # HIFO: unit costs A 101, B 151.5, C 122 → all of B (303) + 0.5 of C (61) → 364,
        # gain 500 - 364 - 5 = 131
        ("hifo", [("B", "2", "303"), ("C", "0.5", "61")], "364", "131",
         [("A", "1", "101"), ("C", "0.5", "61")]),
    ],
)  # fmt: skip
def test_identified_methods_match_lots_in_their_order(
    three_buys_one_sale: list[Event],
    method: str,
    used: list[tuple[str, str, str]],
    cost: str,
    gain: str,
    left: list[tuple[str, str, str]],
) -> None:
    result = compute(three_buys_one_sale, method=method)
    (sale,) = result.gains
    assert sale.match_type == method
    assert [(u.lot_reference, u.quantity, u.cost) for u in sale.lots] == [
        (ref, D(q), D(c)) for ref, q, c in used
    ]
    assert (sale.quantity, sale.proceeds, sale.fees) == (D("2.5"), D(500), D(5))
    assert (sale.cost, sale.gain, sale.taxable, sale.exempt) == (D(cost), D(gain), D(gain), 0)
    assert [(lot.reference, lot.quantity, lot.cost) for lot in result.open_lots] == [
        (ref, D(q), D(c)) for ref, q, c in left
    ]
    assert all(lot.wallet == "pooled" for lot in result.open_lots)
    assert not result.warnings


def test_fifo_reports_the_shortest_holding_period(three_buys_one_sale: list[Event]) -> None:
    (sale,) = compute(three_buys_one_sale, method="fifo").gains
    # lots of 1 and 2 January sold on 5 January: 4 and 3 days; the shortest is 3
    assert sale.holding_days == 3
    assert sale.date == date(2024, 1, 5)


# --- uk: HMRC share matching -------------------------------------------------------------------


def test_uk_same_day_rule_hmrc_example_2() -> None:
    # CRYPTO22252: 5,000 token B in the pool for £500; on 23 June: dispose of 1,000 for £800
    # (morning), acquire 1,600 for £1,000, dispose of 500 for £600 (evening). The morning
    # disposal is at 23:30 UTC on 22 June = 00:30 on 23 June in London (BST): a London day.
    events = [
        acquire("B", "5000", "2022-01-10 12:00", "500", "pool"),
        dispose("B", "1000", "2023-06-22 23:30", "800", "morning"),
        acquire("B", "1600", "2023-06-23 13:00", "1000", "afternoon"),
        dispose("B", "500", "2023-06-23 19:00", "600", "evening"),
    ]
    result = compute(events, method="uk")
    gains = by_reference(result)
    # same day: £1,000 × 1,000 / 1,600 = £625 → gain 800 - 625 = 175
    (morning,) = gains["morning"]
    assert (morning.match_type, morning.date) == ("same-day", date(2023, 6, 23))
    assert (morning.quantity, morning.cost, morning.gain) == (D(1000), D(625), D(175))
    # £1,000 × 500 / 1,600 = £312.50 → gain 600 - 312.5 = 287.5
    (evening,) = gains["evening"]
    assert (evening.match_type, evening.cost, evening.gain) == ("same-day", D("312.5"), D("287.5"))
    # together: 1,400 - 937.5 = 462.5 (HMRC shows £462 after rounding £937.50 up)
    assert morning.gain + evening.gain == D("462.5")
    # the 100 left over join the pool: 5,100 tokens, £500 + £62.50
    (pool,) = result.open_lots
    assert (pool.quantity, pool.cost, pool.reference) == (D(5100), D("562.5"), "section 104 pool")


def test_uk_days_are_london_days_whatever_the_timezone_says() -> None:
    events = [
        acquire("B", "10", "2023-06-22 22:00", "100", "buy"),  # 23:00 BST on 22 June
        dispose("B", "10", "2023-06-22 23:30", "150", "sell"),  # 00:30 BST on 23 June
        acquire("B", "10", "2023-06-23 12:00", "120", "rebuy"),  # 23 June
    ]
    (sale,) = compute(events, method="uk", timezone="UTC").gains
    # London: the sale is on 23 June, the day of "rebuy" (same day, cost 120, gain 30);
    # in UTC it would have been matched with "buy" on 22 June (cost 100)
    assert (sale.match_type, sale.cost, sale.gain) == ("same-day", D(120), D(30))
    assert [use.lot_reference for use in sale.lots] == ["rebuy"]


def test_uk_thirty_day_rule_hmrc_example_3() -> None:
    # CRYPTO22253: 2,000 token C in the pool for £1,000
    events = [
        acquire("C", "2000", "2022-01-01 12:00", "1000", "pool"),
        dispose("C", "1000", "2023-03-31 12:00", "400", "31 March"),
        dispose("C", "500", "2023-04-20 12:00", "150", "20 April"),
        acquire("C", "700", "2023-04-21 12:00", "175", "21 April"),
        acquire("C", "500", "2023-04-28 12:00", "100", "28 April"),
        acquire("C", "500", "2023-05-01 12:00", "150", "1 May"),
    ]
    result = compute(events, method="uk")
    gains = by_reference(result)
    # 31 March: 700 of 21 April (£175) + 300 of 28 April (£100 × 300/500 = £60) = £235,
    # gain 400 - 235 = 165. (1 May is 31 days later: outside.)
    (march,) = gains["31 March"]
    assert march.match_type == "bed-and-breakfast"
    assert [(u.lot_reference, u.quantity, u.cost) for u in march.lots] == [
        ("21 April", D(700), D(175)),
        ("28 April", D(300), D(60)),
    ]
    assert (march.cost, march.gain, march.holding_days) == (D(235), D(165), None)
    # 20 April: 200 of 28 April (£40) + 300 of 1 May (£150 × 300/500 = £90) = £130, gain 20
    (april,) = gains["20 April"]
    assert [(u.lot_reference, u.quantity, u.cost) for u in april.lots] == [
        ("28 April", D(200), D(40)),
        ("1 May", D(300), D(90)),
    ]
    assert (april.cost, april.gain) == (D(130), D(20))
    # the pool was never drawn on; the last 200 of 1 May (£60) join it: 2,200 for £1,060
    (pool,) = result.open_lots
    assert (pool.quantity, pool.cost) == (D(2200), D(1060))


def test_uk_thirty_days_means_the_30_days_after_not_31() -> None:
    events = [
        acquire("C", "10", "2022-01-01 12:00", "100", "pool"),
        dispose("C", "3", "2023-03-01 12:00", "60", "sale"),
        acquire("C", "1", "2023-03-31 12:00", "25", "day 30"),
        acquire("C", "1", "2023-04-01 12:00", "30", "day 31"),
    ]
    result = compute(events, method="uk")
    thirty_days, pool_part = result.gains
    # 1 of "day 30": proceeds 60 × 1/3 = 20, cost 25 → -5
    assert (thirty_days.match_type, thirty_days.cost, thirty_days.gain) == (
        "bed-and-breakfast",
        D(25),
        D(-5),
    )
    assert [use.lot_reference for use in thirty_days.lots] == ["day 30"]
    # 2 from the pool (10 for 100): cost 20, proceeds 40 → 20
    assert (pool_part.match_type, pool_part.cost, pool_part.gain) == ("section-104", D(20), D(20))
    # pool: 8 for 80, then "day 31" joins it: 9 for 110
    (pool,) = result.open_lots
    assert (pool.quantity, pool.cost) == (D(9), D(110))


def test_uk_same_day_thirty_days_and_pool_hmrc_example_6() -> None:
    # CRYPTO22256: 100,000 token F in the pool for £300,000
    events = [
        acquire("F", "100000", "2022-01-01 12:00", "300000", "pool"),
        acquire("F", "10000", "2023-07-31 09:00", "45000", "31 July buy"),
        dispose("F", "30000", "2023-07-31 15:00", "150000", "31 July"),
        dispose("F", "20000", "2023-08-05 12:00", "100000", "5 August"),
        acquire("F", "50000", "2023-08-06 12:00", "225000", "6 August buy"),
        dispose("F", "100000", "2023-08-07 12:00", "150000", "7 August"),
    ]
    result = compute(events, method="uk")
    gains = by_reference(result)
    # 31 July: same day 10,000 (£45,000; proceeds 150,000 × 10/30 = 50,000, gain 5,000) and
    # 20,000 of 6 August (£225,000 × 20/50 = £90,000; proceeds 100,000, gain 10,000): 15,000
    same_day, thirty_days = gains["31 July"]
    assert (same_day.match_type, same_day.quantity) == ("same-day", D(10000))
    assert (same_day.proceeds, same_day.cost, same_day.gain) == (D(50000), D(45000), D(5000))
    assert (thirty_days.match_type, thirty_days.quantity) == ("bed-and-breakfast", D(20000))
    assert (thirty_days.proceeds, thirty_days.cost, thirty_days.gain) == (
        D(100000),
        D(90000),
        D(10000),
    )
    # 5 August: 20,000 of 6 August (£90,000), gain 100,000 - 90,000 = 10,000
    (august_5,) = gains["5 August"]
    assert (august_5.match_type, august_5.cost, august_5.gain) == (
        "bed-and-breakfast",
        D(90000),
        D(10000),
    )
    # the pool takes the last 10,000 of 6 August (£45,000): 110,000 for £345,000. 7 August
    # sells 100,000 from it: £345,000 × 100,000 / 110,000 = £313,636.36… (rounded to 18
    # places: …363636|36… → 313636.363636363636363636), a loss of 163,636.363636363636363636
    (august_7,) = gains["7 August"]
    assert august_7.match_type == "section-104"
    assert august_7.cost == D("313636.363636363636363636")
    assert august_7.gain == D("-163636.363636363636363636")
    # what stays in the pool is what was not taken: 345,000 - 313,636.363636363636363636
    (pool,) = result.open_lots
    assert (pool.quantity, pool.cost) == (D(10000), D("31363.636363636363636364"))


def test_uk_fees_are_allowable_and_a_fee_paid_in_a_token_is_a_disposal() -> None:
    prices = PriceBook("GBP", [("BNB", at("2023-05-01 00:00"), D(200), at("2023-05-01 00:00"))])
    sale = TradeLegs(
        wallet=STAMP,
        reference="sale",
        at=at("2023-05-01 12:00"),
        market="BTC-GBP",
        base_amount=D(-1),
        quote_amount=D(30000),
        fees=(("BNB", D("0.5")),),  # 0.5 BNB at £200 = £100
    )
    events = [
        acquire("BTC", "1", "2022-01-01 12:00", "20000", "btc"),
        acquire("BNB", "2", "2022-01-01 12:00", "300", "bnb"),
        *trade_events(sale, prices),
    ]
    result = compute(events, method="uk")
    btc = next(g for g in result.gains if g.asset == "BTC")
    # 30,000 - 20,000 - fee £100 = 9,900
    assert (btc.proceeds, btc.cost, btc.fees, btc.gain) == (D(30000), D(20000), D(100), D(9900))
    bnb = next(g for g in result.gains if g.asset == "BNB")
    # the fee itself: 0.5 BNB disposed of for £100 out of a pool of 2 for £300 (cost 75): 25
    assert (bnb.quantity, bnb.proceeds, bnb.cost, bnb.gain) == (D("0.5"), D(100), D(75), D(25))
    assert "fee paid in BNB" in bnb.note


# --- de: one year -----------------------------------------------------------------------------


def test_de_splits_gains_inside_and_outside_one_year() -> None:
    events = [
        # 23:30 UTC on 14 March = 00:30 on 15 March in Berlin (CET)
        acquire("BTC", "2", "2022-03-14 23:30", "60000", "first"),  # 30,000 each
        acquire("BTC", "1", "2023-03-01 12:00", "20000", "second"),
        # 15 March 2023, 23:30 in Berlin: the year from 15 March 2022 ends that day → taxable
        dispose("BTC", "0.5", "2023-03-15 22:30", "12500", "on the day"),
        # 16 March 2023: 1.5 of "first" held over a year, 0.5 of "second" not
        dispose("BTC", "2", "2023-03-16 12:00", "50000", "after", fees="100"),
    ]
    gains = by_reference(compute(events, method="de", timezone="Europe/Berlin"))
    # 0.5 of "first" (cost 15,000) for 12,500: -2,500, all taxable
    (on_the_day,) = gains["on the day"]
    assert (on_the_day.match_type, on_the_day.gain) == ("fifo", D(-2500))
    assert (on_the_day.taxable, on_the_day.exempt, on_the_day.holding_days) == (D(-2500), 0, 365)
    # 2 BTC for 50,000, fees 100; per lot by quantity:
    #   1.5 of "first": cost 45,000, proceeds 37,500, fees 75 → -7,575 exempt
    #   0.5 of "second": cost 10,000, proceeds 12,500, fees 25 → 2,475 taxable
    (after,) = gains["after"]
    assert (after.cost, after.gain) == (D(55000), D(-5100))  # 50,000 - 55,000 - 100
    assert (after.exempt, after.taxable) == (D(-7575), D(2475))
    assert after.holding_days == 15  # 1 → 16 March


def test_de_in_utc_days_would_have_exempted_the_sale_on_the_anniversary() -> None:
    events = [
        acquire("BTC", "1", "2022-03-14 23:30", "30000", "first"),
        dispose("BTC", "1", "2023-03-15 22:30", "25000", "sale"),
    ]
    berlin = compute(events, method="de", timezone="Europe/Berlin").gains[0]
    utc = compute(events, method="de", timezone="UTC").gains[0]
    # Berlin: 15 March → 15 March, one year exactly: taxable. UTC: 14 March → 15 March: exempt
    assert (berlin.taxable, berlin.exempt) == (D(-5000), 0)
    assert (utc.taxable, utc.exempt) == (0, D(-5000))


# --- a tiny warehouse ---------------------------------------------------------------------------

LedgerRow = tuple[str, str, str, str, str, str, str, str | None, str | None]
Transfer = dict[str, Any]
PriceRow = tuple[str, str, str, str]  # asset, priced_at, price, observed_at


def tiny_warehouse(
    ledger: Sequence[LedgerRow],
    prices: Sequence[PriceRow] = (),
    transfers: Sequence[Transfer] = (),
) -> duckdb.DuckDBPyConnection:
    """Tables with the columns of the views `ledger`, `prices` and `internal_transfers`."""
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    create_view_tables(connection)
    for leg, row in enumerate(ledger):
        connection.execute(
            "insert into ledger (exchange, account, asset, amount, kind, executed_at, reference, "
            "event_kind, market, sequence, leg) "
            "values (?, ?, ?, ?::decimal(38, 18), ?, ?, ?, ?, ?, null, ?)",
            [*row[:5], at(row[5]), *row[6:], leg],
        )
    for asset, priced_at, price, observed_at in prices:
        connection.execute(
            "insert into prices values (?, 'EUR', ?::timestamptz, ?::decimal(38, 18), 'test', "
            "?::timestamptz, null)",
            [asset, at(priced_at), price, at(observed_at)],
        )
    for transfer in transfers:
        connection.execute(
            "insert into internal_transfers values ('matched', ?, ?, ?, ?, ?::timestamptz, ?, ?, "
            "?, ?, ?, ?::timestamptz, ?, ?)",
            [
                transfer["asset"],
                *transfer["withdrawal"],
                at(transfer["withdrawn_at"]),
                transfer["withdrawn"],
                transfer["sent"],
                *transfer["deposit"],
                at(transfer["deposited_at"]),
                transfer["received"],
                transfer.get("txid"),
            ],
        )
    return connection


def fill(
    exchange: str, ref: str, when: str, side: str, btc: str, eur: str, fee: str
) -> list[LedgerRow]:
    sign = "" if side == "buy" else "-"
    other = "-" if side == "buy" else ""
    return [
        (exchange, "main", "BTC", f"{sign}{btc}", "trade_base", when, ref, "trade", "BTC-EUR"),
        (exchange, "main", "EUR", f"{other}{eur}", "trade_quote", when, ref, "trade", "BTC-EUR"),
        (exchange, "main", "EUR", f"-{fee}", "fee", when, ref, "trade", "BTC-EUR"),
    ]


@pytest.fixture
def own_transfer() -> Iterator[duckdb.DuckDBPyConnection]:
    """Two buys on Bitstamp, 1 BTC sent to Bitvavo (network fee 0.0005), sold there."""
    ledger = [
        *fill("bitstamp", "t1", "2024-03-01 10:00", "buy", "1", "10000", "10"),
        *fill("bitstamp", "t2", "2024-03-02 10:00", "buy", "1", "20000", "20"),
        # Bitstamp: the withdrawal's amount (1.0005) includes the fee, split by the ledger
        ("bitstamp", "main", "BTC", "-1", "withdrawal", "2024-03-05 12:00", "w1", "withdrawal",
         None),
        ("bitstamp", "main", "BTC", "-0.0005", "withdrawal_fee", "2024-03-05 12:00", "w1",
         "withdrawal", None),
        ("bitvavo", "main", "BTC", "1", "deposit", "2024-03-05 12:40", "d1", "deposit", None),
        *fill("bitvavo", "f1", "2024-03-10 10:00", "sell", "1", "30000", "30"),
    ]  # fmt: skip
    transfer = {
        "asset": "BTC",
        "withdrawal": ("bitstamp", "main", "w1"),
        "withdrawn_at": "2024-03-05 12:00",
        "withdrawn": "1.0005",
        "sent": "1",
        "deposit": ("bitvavo", "main", "d1"),
        "deposited_at": "2024-03-05 12:40",
        "received": "1",
        "txid": "abc",
    }
    prices = [("BTC", "2024-03-05 12:00", "40000", "2024-03-05 12:00")]
    connection = tiny_warehouse(ledger, prices, [transfer])
    yield connection
    connection.close()


def test_own_transfer_per_account_moves_lots_and_only_the_fee_is_disposed(
    own_transfer: duckdb.DuckDBPyConnection,
) -> None:
    events = events_from_warehouse(own_transfer)
    result = compute(events, method="fifo", lots="per-account")
    fee, sale = result.gains
    # the move takes t1 (1 BTC, 10,010) to Bitvavo first (moves before disposals at one
    # instant); the fee 0.0005 BTC at 40,000 = 20 comes out of t2: 20,020 × 0.0005 = 10.01
    assert (fee.asset, fee.quantity, fee.proceeds, fee.cost, fee.gain) == (
        "BTC",
        D("0.0005"),
        D(20),
        D("10.01"),
        D("9.99"),
    )
    assert (fee.wallet, fee.reference) == (STAMP, "w1")
    assert "network fee" in fee.note
    # Bitvavo sells the moved lot t1: 30,000 - 10,010 - 30 fee = 19,960
    assert (sale.wallet, sale.cost, sale.gain) == (VAVO, D(10010), D(19960))
    assert [(u.lot_reference, u.acquired_at) for u in sale.lots] == [("t1", at("2024-03-01 10:00"))]
    # left: 0.9995 of t2 on Bitstamp, cost 20,020 - 10.01 = 20,009.99; nothing on Bitvavo
    assert [(lot.wallet, lot.reference, lot.quantity, lot.cost) for lot in result.open_lots] == [
        (STAMP, "t2", D("0.9995"), D("20009.99"))
    ]


def test_own_transfer_pooled_changes_nothing_but_the_fee(
    own_transfer: duckdb.DuckDBPyConnection,
) -> None:
    result = compute(events_from_warehouse(own_transfer), method="fifo", lots="pooled")
    fee, sale = result.gains
    # the fee 0.0005 BTC comes out of t1 (10,010 × 0.0005 = 5.005): 20 - 5.005 = 14.995
    assert (fee.quantity, fee.proceeds, fee.cost, fee.gain) == (
        D("0.0005"),
        D(20),
        D("5.005"),
        D("14.995"),
    )
    # the sale: the rest of t1 (0.9995, 10,004.995) + 0.0005 of t2 (10.01) = 10,015.005;
    # 30,000 - 10,015.005 - 30 = 19,954.995
    assert (sale.cost, sale.gain) == (D("10015.005"), D("19954.995"))
    assert [(lot.wallet, lot.quantity, lot.cost) for lot in result.open_lots] == [
        ("pooled", D("0.9995"), D("20009.99"))
    ]


def test_own_transfer_in_uk_per_account_moves_pool_cost(
    own_transfer: duckdb.DuckDBPyConnection,
) -> None:
    result = compute(events_from_warehouse(own_transfer), method="uk", lots="per-account")
    fee, sale = result.gains
    # Bitstamp's pool: 2 BTC for 30,030. The move takes 1 at 15,015; the fee 0.0005 of the
    # remaining 1 (15,015): 7.5075 → gain 20 - 7.5075 = 12.4925
    assert (fee.match_type, fee.cost, fee.gain) == ("section-104", D("7.5075"), D("12.4925"))
    # Bitvavo's pool: 1 BTC for 15,015 → 30,000 - 15,015 - 30 = 14,955
    assert (sale.wallet, sale.cost, sale.gain) == (VAVO, D(15015), D(14955))
    assert lot_quantities(result) == {(STAMP, "BTC"): D("0.9995")}


def test_transfers_from_and_to_outside_are_valued_at_market_with_a_warning() -> None:
    ledger = [
        ("bitstamp", "main", "ETH", "2", "deposit", "2024-03-01 10:00", "in", "deposit", None),
        # to and from staking: the coins stay the owner's, no event
        ("bitstamp", "main", "ETH", "-1", "staking", "2024-03-02 00:00", "s1", "staking_debit",
         None),
        ("bitstamp", "main", "ETH", "1", "staking", "2024-03-03 00:00", "s2", "staking_credit",
         None),
        ("bitstamp", "main", "ETH", "-1", "withdrawal", "2024-03-04 10:00", "out", "withdrawal",
         None),
        ("bitstamp", "main", "ETH", "-0.01", "withdrawal_fee", "2024-03-04 10:00", "out",
         "withdrawal", None),
    ]  # fmt: skip
    prices = [
        ("ETH", "2024-03-01 10:00", "2000", "2024-03-01 10:00"),
        ("ETH", "2024-03-04 10:00", "2500", "2024-03-04 10:00"),
    ]
    events = events_from_warehouse(tiny_warehouse(ledger, prices))
    assert [(e.kind, e.quantity, e.value) for e in events] == [
        ("acquire", D(2), D(4000)),  # 2 × 2,000
        ("dispose", D(1), D(2500)),  # 1 × 2,500
        ("dispose", D("0.01"), D(25)),  # 0.01 × 2,500
    ]
    result = compute(events, method="fifo")
    withdrawal, fee = result.gains
    # cost 2,000 per ETH: 2,500 - 2,000 = 500; the network fee 25 - 20 = 5
    assert (withdrawal.cost, withdrawal.gain) == (D(2000), D(500))
    assert (fee.cost, fee.gain) == (D(20), D(5))
    assert "network fee" in fee.note
    deposit_warning, withdrawal_warning = result.warnings
    assert "deposit in" in deposit_warning and "acquired at market value" in deposit_warning
    assert "withdrawal out" in withdrawal_warning and "market value" in withdrawal_warning
    # 2 - 1 - 0.01 = 0.99 left, at 4,000 - 2,000 - 20 = 1,980
    assert [(lot.quantity, lot.cost) for lot in result.open_lots] == [(D("0.99"), D(1980))]


def test_a_sale_with_no_acquisition_is_reported_with_a_warning() -> None:
    events = [
        acquire("ETH", "0.5", "2024-01-01 12:00", "500", "half"),
        dispose("ETH", "1", "2024-02-01 12:00", "2000", "sale"),
    ]
    for method in ("fifo", "uk", "de"):
        result = compute(events, method=method)
        matched, unknown = result.gains
        # half of it from the lot: proceeds 1,000 - cost 500 = 500; the other half has no
        # acquisition: proceeds 1,000 at cost 0 = 1,000, said so
        assert (matched.quantity, matched.cost, matched.gain) == (D("0.5"), D(500), D(500))
        assert (unknown.match_type, unknown.quantity) == ("no-acquisition", D("0.5"))
        assert (unknown.proceeds, unknown.cost, unknown.gain) == (D(1000), 0, D(1000))
        (warning,) = result.warnings
        assert "ETH" in warning and "no acquisition" in warning and "sale" in warning


def test_a_missing_price_raises_listing_asset_and_time() -> None:
    ledger = [
        # a SOL reward: SOL's only price was observed 8 days before (stale beyond 7 days)
        ("bitvavo", "main", "SOL", "0.1", "reward", "2024-03-10 00:00", "r1", "staking_reward",
         None),
        # a BTC-USD buy with neither a USD nor a BTC price
        ("bitstamp", "main", "BTC", "0.1", "trade_base", "2024-03-11 10:00", "u1", "trade",
         "BTC-USD"),
        ("bitstamp", "main", "USD", "-5000", "trade_quote", "2024-03-11 10:00", "u1", "trade",
         "BTC-USD"),
        # an ETH reward that has a price: not listed
        ("bitvavo", "main", "ETH", "0.01", "reward", "2024-03-10 00:00", "r2", "staking_reward",
         None),
    ]  # fmt: skip
    prices = [
        ("SOL", "2024-03-02 00:00", "100", "2024-03-01 23:00"),
        ("ETH", "2024-03-09 23:00", "3000", "2024-03-09 23:00"),
    ]
    with pytest.raises(MissingPriceError) as caught:
        events_from_warehouse(tiny_warehouse(ledger, prices))
    assert set(caught.value.missing) == {
        ("SOL", at("2024-03-10 00:00")),
        ("USD", at("2024-03-11 10:00")),
        ("BTC", at("2024-03-11 10:00")),
    }
    assert "SOL at 2024-03-10T00:00:00+00:00" in str(caught.value)
    # the engine refuses an unvalued event the same way
    unvalued = Event("income", "SOL", D(1), VAVO, at("2024-03-10 00:00"), None)
    with pytest.raises(MissingPriceError, match="SOL at 2024-03-10"):
        compute([unvalued], method="fifo")


def test_foreign_quotes_and_crypto_for_crypto_are_valued_through_prices() -> None:
    prices = PriceBook(
        "EUR",
        [
            ("USD", at("2024-03-01 10:00"), D("0.9"), at("2024-03-01 10:00")),
            ("BTC", at("2024-03-01 10:00"), D(40000), at("2024-03-01 10:00")),
        ],
    )
    usd = TradeLegs(STAMP, "u", at("2024-03-01 10:30"), "BTC-USD", D("0.1"), D(-5000),
                    (("USD", D(10)),))  # fmt: skip
    (bought,) = trade_events(usd, prices)
    # 5,000 USD × 0.9 = 4,500 EUR, fee 10 USD × 0.9 = 9: cost 4,509
    assert (bought.kind, bought.asset, bought.value, bought.fees) == (
        "acquire",
        "BTC",
        D(4509),
        D(9),
    )
    eth = TradeLegs(STAMP, "x", at("2024-03-01 10:30"), "ETH-BTC", D(10), D("-0.5"),
                    (("BTC", D("0.001")),))  # fmt: skip
    events = {(e.kind, e.asset, e.category): e for e in trade_events(eth, prices)}
    # 0.5 BTC × 40,000 = 20,000 both ways; the 0.001 BTC fee (40) adds to ETH's cost and is a
    # disposal of its own
    assert events[("acquire", "ETH", "trade")].value == D(20040)
    assert events[("dispose", "BTC", "trade")].value == D(20000)
    assert events[("dispose", "BTC", "trade")].quantity == D("0.5")
    assert events[("dispose", "BTC", "trade-fee")].value == D(40)
    assert not prices.missing


def test_gbp_reporting_is_refused_with_its_reason() -> None:
    """Renamed in spirit: GBP is a warehouse currency now; an unknown one is refused."""
    with pytest.raises(UnsupportedCurrencyError, match="CHF is not available yet: no CHF market"):
        events_from_warehouse(tiny_warehouse([]), currency="CHF")


# --- nl: 1 January ----------------------------------------------------------------------------


def test_nl_values_holdings_on_1_january_and_reports_no_gains() -> None:
    ledger = [
        *fill("bitvavo", "b1", "2023-06-01 10:00", "buy", "0.5", "10000", "5"),
        ("bitvavo", "main", "EUR", "20000", "deposit", "2023-05-01 10:00", "e1", "deposit", None),
        ("bitstamp", "main", "ETH", "3", "deposit", "2023-07-01 10:00", "e2", "deposit", None),
        # 2 ETH in staking on 1 January: still held, on a row of their own
        ("bitstamp", "main", "ETH", "-2", "staking", "2023-08-01 00:00", "s1",
         "staking_debit", None),
        # at 00:00 on 1 January exactly: not counted (at the moment measured); a second later
        # neither
        ("bitstamp", "main", "ETH", "0.5", "reward", "2024-01-01 00:00", "r1",
         "staking_reward", None),
        ("bitstamp", "main", "ETH", "0.25", "reward", "2024-01-01 00:00:01", "r2",
         "staking_reward", None),
        *fill("bitvavo", "b2", "2024-01-01 09:00", "sell", "0.5", "11000", "5"),
    ]  # fmt: skip
    prices = [
        ("ETH", "2023-07-01 10:00", "1800", "2023-07-01 10:00"),  # values the ETH deposit
        ("BTC", "2023-12-31 23:00", "38000", "2023-12-31 23:00"),
        ("BTC", "2024-01-01 01:00", "99999", "2024-01-01 01:00"),  # after: not used
        ("ETH", "2023-12-31 23:00", "2100", "2023-12-31 22:00"),
        ("ETH", "2024-01-01 00:00", "2000", "2023-12-31 23:59"),  # latest at 00:00
    ]
    connection = tiny_warehouse(ledger, prices)
    held = {(h.wallet, h.asset): (h.quantity, h.price, h.value) for h in holdings(
        connection, date(2024, 1, 1), "EUR")}  # fmt: skip
    assert held == {
        # the account's ledger: 3 deposited - 2 into staking = 1 × 2,000 = 2,000
        (STAMP, "ETH"): (D(1), D(2000), D(2000)),
        # in staking: 2 × 2,000 = 4,000
        (f"{STAMP} (staking)", "ETH"): (D(2), D(2000), D(4000)),
        # 0.5 × 38,000 = 19,000
        (VAVO, "BTC"): (D("0.5"), D(38000), D(19000)),
        # 20,000 - 10,000 - 5 = 9,995 at 1
        (VAVO, "EUR"): (D(9995), D(1), D(9995)),
    }
    events = events_from_warehouse(connection)
    result = compute(events, method="nl")
    assert result.gains == ()
    assert [(i.asset, i.quantity, i.kind) for i in result.income] == [
        ("ETH", D("0.5"), "staking_reward"),
        ("ETH", D("0.25"), "staking_reward"),
    ]


# --- over a synced lake -------------------------------------------------------------------------

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SEED = 7
DAYS = 60  # test_warehouse_checks.py's world: the session syncs it once for both


@pytest.fixture(scope="module")
def synced(synced_lake: SyncedLakeFactory) -> Settings:
    """Both accounts and the 1h candles of every market, synced from the sandbox, built."""
    return synced_lake(seed=SEED, days=DAYS, now=NOW, what=(Accounts(), Candles())).settings


def test_the_synced_lake_replays_into_lots_that_equal_the_ledger(synced: Settings) -> None:
    with connect(synced.data_dir) as connection:
        first_row = connection.execute("select min(priced_at) from prices").fetchone()
        assert first_row is not None
        first_price = first_row[0]
        # the old rows (2020–2021, before any candle) cannot be valued: named, not zeroed
        with pytest.raises(MissingPriceError) as caught:
            events_from_warehouse(connection)
        assert caught.value.missing
        assert all(moment < first_price for _, moment in caught.value.missing)
        assert ("BTC", at("2021-02-09 10:12:33")) in caught.value.missing

        events = events_from_warehouse(connection, since=first_price)
        balances = connection.execute(
            "select exchange || '/' || account, asset, sum(amount) from ledger "
            "where asset not in ('EUR', 'USD') group by all"
        ).fetchall()
        rewards = connection.execute("select count(*) from ledger where kind = 'reward'").fetchone()
        assert rewards is not None
    ledger = {(wallet, asset): amount for wallet, asset, amount in balances if amount != 0}
    pooled: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (_, asset), amount in ledger.items():
        pooled[("pooled", asset)] += amount
    assert {e.kind for e in events} == {"acquire", "dispose", "move", "income"}

    for method in ("fifo", "hifo", "uk", "de"):
        per_account = compute(events, method=method, lots="per-account")
        assert lot_quantities(per_account) == ledger, method
        pooled_result = compute(events, method=method, lots="pooled")
        assert lot_quantities(pooled_result) == dict(pooled), method
        for result in (per_account, pooled_result):
            assert not [g for g in result.gains if g.match_type == "no-acquisition"]
            for gain in result.gains:
                assert gain.gain == gain.proceeds - gain.cost - gain.fees
                assert gain.taxable + gain.exempt == gain.gain
            assert len(result.income) == rewards[0]


def test_prices_already_loaded_give_the_same_events_and_missing_prices(synced: Settings) -> None:
    """`loaded=`: an export run reads the `prices` view once for its values and its cost basis;
    the events and the missing prices are those of a book read for the events alone."""
    with connect(synced.data_dir) as connection:
        row = connection.execute("select min(priced_at) from prices").fetchone()
        assert row is not None
        first_price = row[0]
        book = PriceBook.load(connection, "EUR")
        book.note_missing("XYZ", first_price)  # the loaded book's own: never the events'
        alone = events_from_warehouse(connection, since=first_price)
        assert alone
        assert events_from_warehouse(connection, since=first_price, loaded=book) == alone
        with pytest.raises(MissingPriceError) as read_alone:
            events_from_warehouse(connection)
        with pytest.raises(MissingPriceError) as given:
            events_from_warehouse(connection, loaded=book)
        assert given.value.missing == read_alone.value.missing
        assert ("XYZ", first_price) not in given.value.missing
        with pytest.raises(ValueError, match="prices in USD given for events in EUR"):
            events_from_warehouse(connection, loaded=PriceBook.load(connection, "USD"))
