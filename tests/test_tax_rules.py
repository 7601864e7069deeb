"""Tax rules by country on small hand-built warehouses: Germany's one year counted in Berlin days
and lots identified per wallet, the Freigrenze, short and long-term parts, the UK's refusal of
per-account lots and its provisional years, holdings at the start of a day in the method's zone
(coins in transit and in staking included), and the summaries a return asks for.

Every expected value is worked out by hand in the comment beside it, from the rule (BMF letter of
10 May 2022, § 23 EStG, BGB §§ 187-188, HMRC CRYPTO22200/22252/22253, IRS Publication 544), never
taken from the code. The warehouses are DuckDB tables with the columns of the views `ledger`,
`prices` and `internal_transfers`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from view_tables import create_view_tables

from pipelines.cli import main
from pipelines.config_file import write_config
from warehouse.costbasis import Event, compute, holdings
from warehouse.exports.options import ExportOptionError, ExportOptions
from warehouse.exports.run import export
from warehouse.exports.summary import freigrenze

D = Decimal
STAMP, VAVO = "bitstamp/main", "bitvavo/main"
LONG = "long-term: held over one year"

Row = tuple[Any, ...]


def at(text: str) -> datetime:
    """'2024-03-01 10:00' in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- a hand-built warehouse ---------------------------------------------------------------------


def leg(
    wallet: str,
    asset: str,
    amount: str,
    kind: str,
    when: str,
    ref: str,
    event_kind: str,
    market: str | None = None,
    number: int = 1,
) -> Row:
    exchange, account = wallet.split("/")
    return (exchange, account, asset, amount, kind, at(when), ref, "test", event_kind,
            event_kind, market, None, number)  # fmt: skip


def trade(
    wallet: str,
    ref: str,
    when: str,
    side: str,
    quantity: str,
    quote: str,
    fee: str = "0",
    market: str = "BTC-EUR",
) -> list[Row]:
    """A fill as the ledger books it: base and quote legs, and the fee in the quote."""
    base, quote_asset = market.split("-")
    bought = side == "buy"
    rows = [
        leg(wallet, base, quantity if bought else f"-{quantity}", "trade_base", when, ref,
            "trade", market, 1),
        leg(wallet, quote_asset, f"-{quote}" if bought else quote, "trade_quote", when, ref,
            "trade", market, 2),
    ]  # fmt: skip
    if D(fee):
        rows.append(leg(wallet, quote_asset, f"-{fee}", "fee", when, ref, "trade", market, 3))
    return rows


def warehouse(
    ledger: Sequence[Row],
    prices: Sequence[tuple[str, str, str, str]] = (),
    transfers: Sequence[dict[str, str]] = (),
    *,
    currency: str = "EUR",
    path: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """Tables with the columns of the views; prices are (asset, priced_at, price, observed_at)."""
    connection = duckdb.connect(str(path) if path else ":memory:")
    connection.execute("set TimeZone = 'UTC'")
    create_view_tables(connection)
    connection.executemany(
        "insert into ledger values (?, ?, ?, ?::decimal(38, 18), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [list(row) for row in ledger],
    )
    for asset, priced_at, price, observed_at in prices:
        connection.execute(
            "insert into prices values (?, ?, ?, ?::decimal(38, 18), 'test', ?, null)",
            [asset, currency, at(priced_at), price, at(observed_at)],
        )
    for t in transfers:
        connection.execute(
            "insert into internal_transfers values ('matched', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?)",
            [t["asset"], *t["from"].split("/"), t["withdrawal"], at(t["withdrawn_at"]),
             t["withdrawn"], t["sent"], *t["to"].split("/"), t["deposit"],
             at(t["deposited_at"]), t["received"], t.get("txid")],
        )  # fmt: skip
    return connection


def run(
    connection: duckdb.DuckDBPyConnection, directory: Path, formats: Sequence[str], **options: Any
) -> dict[str, tuple[list[dict[str, str]], dict[str, Any]]]:
    """Export `formats`; per format its CSV rows and its sidecar."""
    written = export(connection, list(formats), ExportOptions(**options), directory)
    found = {}
    for w in written:
        table, sidecar = w.files[0], w.files[-1]
        with table.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        found[w.format] = (rows, json.loads(sidecar.read_text(encoding="utf-8")))
    return found


def figures(sidecar: dict[str, Any]) -> dict[str, Any]:
    return {name: f["value"] for name, f in sidecar["totals"]["figures"].items()}


def rows_of(sidecar: dict[str, Any]) -> dict[str, str]:
    return {name: f["rows"] for name, f in sidecar["totals"]["figures"].items()}


# --- de: the anniversary in Berlin days, lots per wallet ----------------------------------------


def test_de_sale_on_the_anniversary_is_taxable_one_day_later_exempt() -> None:
    # 14 March 2023 23:30 UTC is 15 March 00:30 in Berlin (CET): the year runs from 16 March
    # 2023 to 15 March 2024 (BGB §§ 187(1), 188(2)).
    buy = Event("acquire", "BTC", D(1), STAMP, at("2023-03-14 23:30"), D(20000), reference="b")
    # 15 March 2024 23:30 in Berlin: the anniversary, within the year → taxable
    on_the_day = Event("dispose", "BTC", D(1), STAMP, at("2024-03-15 22:30"), D(25000))
    # 16 March 2024 00:30 in Berlin: one day later → exempt
    day_after = Event("dispose", "BTC", D(1), STAMP, at("2024-03-15 23:30"), D(25000))
    first = compute([buy, on_the_day], method="de")  # no timezone: Berlin days
    later = compute([buy, day_after], method="de")
    assert (first.timezone, first.lots) == ("Europe/Berlin", "per-account")
    (taxable,) = first.gains
    (exempt,) = later.gains
    # 25,000 - 20,000 = 5,000 either way; 15.3.2023 → 15.3.2024 is 366 days (29 February)
    assert (taxable.date, taxable.gain, taxable.taxable, taxable.exempt) == (
        date(2024, 3, 15), D(5000), D(5000), 0)  # fmt: skip
    assert taxable.holding_days == 366
    assert (exempt.date, exempt.gain, exempt.taxable, exempt.exempt) == (
        date(2024, 3, 16), D(5000), 0, D(5000))  # fmt: skip
    assert exempt.holding_days == 367


def test_de_per_wallet_fifo_makes_wallet_twos_sale_taxable() -> None:
    events = [
        Event("acquire", "BTC", D(1), STAMP, at("2023-02-01 10:00"), D(20000), reference="w1"),
        Event("acquire", "BTC", D(1), VAVO, at("2024-01-15 10:00"), D(40000), reference="w2"),
        Event("dispose", "BTC", D(1), VAVO, at("2024-03-10 10:00"), D(50000), reference="sale"),
    ]
    (sale,) = compute(events, method="de").gains
    # wallet 2's own lot (15 January 2024, 40,000): 50,000 - 40,000 = 10,000, held 55 days
    # (16 + 29 + 10): taxable
    assert [use.lot_reference for use in sale.lots] == ["w2"]
    assert (sale.wallet, sale.cost, sale.gain, sale.taxable, sale.exempt) == (
        VAVO, D(40000), D(10000), D(10000), 0)  # fmt: skip
    assert sale.holding_days == 55
    # pooled, FIFO would take wallet 1's lot of 1 February 2023, held over a year:
    # 50,000 - 20,000 = 30,000, exempt. Per wallet that lot stays in wallet 1.
    (pooled,) = compute(events, method="de", lots="pooled").gains
    assert (pooled.cost, pooled.taxable, pooled.exempt) == (D(20000), 0, D(30000))
    left = compute(events, method="de").open_lots
    assert [(lot.wallet, lot.reference, lot.quantity) for lot in left] == [(STAMP, "w1", D(1))]


def test_de_export_counts_berlin_days_and_dates_lots_on_them(tmp_path: Path) -> None:
    ledger = [
        *trade(STAMP, "b1", "2023-03-14 23:30", "buy", "1", "20000"),  # 15 March in Berlin
        *trade(STAMP, "s1", "2024-03-15 22:30", "sell", "0.5", "12500"),  # 15 March, 23:30
        *trade(STAMP, "s2", "2024-03-15 23:30", "sell", "0.5", "13000"),  # 16 March, 00:30
    ]
    found = run(warehouse(ledger), tmp_path, ["gains", "summary"], year=2024, method="de")
    rows, sidecar = found["gains"]
    assert (sidecar["lots"], sidecar["period"]["timezone"]) == ("per-account", "Europe/Berlin")
    # each sale: 0.5 of the lot of 20,000 → cost 10,000, acquired on 15 March (Berlin)
    # s1: 12,500 - 10,000 = 2,500 on the anniversary: taxable
    # s2: 13,000 - 10,000 = 3,000 one day later: exempt
    assert [
        (r["date"], r["lots"], r["gain"], r["taxable"], r["exempt"], r["holding_days"])
        for r in rows
    ] == [
        ("2024-03-15", "2023-03-15 0.5 10000 [b1]", "2500", "2500", "0", "366"),
        ("2024-03-16", "2023-03-15 0.5 10000 [b1]", "3000", "0", "3000", "367"),
    ]
    _, summary = found["summary"]
    # Anlage SO: taxable 2,500 ≥ the Freigrenze of 2024 (1,000): taxable in full
    assert figures(summary) == {
        "taxable_gain": "2500",
        "exempt_gain": "3000",
        "disposals": 2,
        "freigrenze": "1000",
        "freigrenze_applies": False,
        "taxable_income": "2500",
    }
    assert rows_of(summary)["taxable_gain"] == "1"
    assert rows_of(summary)["exempt_gain"] == "2"


@pytest.mark.parametrize(
    ("year", "cost", "proceeds", "gain", "applies", "income"),
    [
        # 2023: Freigrenze 600. 20,599.99 - 20,000 = 599.99 < 600: tax-free
        (2023, "20000", "20599.99", "599.99", True, "0"),
        # 20,600 - 20,000 = 600: not below 600, taxable in full
        (2023, "20000", "20600", "600", False, "600"),
        # 2024: Freigrenze 1,000. 30,999.99 - 30,000 = 999.99: tax-free
        (2024, "30000", "30999.99", "999.99", True, "0"),
        # 31,000 - 30,000 = 1,000: taxable in full
        (2024, "30000", "31000", "1000", False, "1000"),
    ],
)
def test_de_freigrenze_of_the_year(
    tmp_path: Path, year: int, cost: str, proceeds: str, gain: str, applies: bool, income: str
) -> None:
    ledger = [
        *trade(STAMP, "buy", f"{year}-05-01 10:00", "buy", "1", cost),
        *trade(STAMP, "sell", f"{year}-06-01 10:00", "sell", "1", proceeds),
    ]
    found = run(warehouse(ledger), tmp_path, ["summary"], year=year, method="de")
    got = figures(found["summary"][1])
    limit = "600" if year < 2024 else "1000"
    assert (got["taxable_gain"], got["freigrenze"]) == (gain, limit)
    assert (got["freigrenze_applies"], got["taxable_income"]) == (applies, income)


def test_freigrenze_by_year() -> None:
    # § 23 Abs. 3 Satz 5 EStG: 600 EUR from 2008, 1,000 EUR from 2024
    assert [freigrenze(y) for y in (2007, 2008, 2023, 2024, 2030)] == [
        None, D(600), D(600), D(1000), D(1000)]  # fmt: skip


# --- fifo, lifo, hifo: short and long term ------------------------------------------------------


def test_a_lot_sold_on_its_anniversary_is_short_term_a_day_later_long_term() -> None:
    buy = Event("acquire", "BTC", D(1), STAMP, at("2023-03-01 12:00"), D(100), reference="b")
    # IRS Publication 544: counting starts on 2 March 2023; 1 March 2024 is not more than a year
    on_the_day = Event("dispose", "BTC", D(1), STAMP, at("2024-03-01 12:00"), D(150))
    day_after = Event("dispose", "BTC", D(1), STAMP, at("2024-03-02 12:00"), D(150))
    (short,) = compute([buy, on_the_day], method="fifo").gains
    (long,) = compute([buy, day_after], method="fifo").gains
    assert LONG not in short.note
    assert LONG in long.note


@pytest.mark.parametrize(
    ("method", "short", "long"),
    [
        # lots: "old" 1 BTC for 10,000 (10 January 2023), "new" 1 BTC for 30,000 (10 January
        # 2024); sold 1 February 2024: 1.5 BTC for 60,000, fee 30, shared by quantity.
        # fifo: old (1, long: 40,000, fees 20 → 40,000 - 10,000 - 20 = 29,980), then 0.5 of
        # new (short: 20,000, cost 15,000, fees 10 → 4,990)
        ("fifo", ("20000", "15000", "10", "4990"), ("40000", "10000", "20", "29980")),
        # lifo: new (1, short: 40,000 - 30,000 - 20 = 9,980), then 0.5 of old (long: cost
        # 5,000: 20,000 - 5,000 - 10 = 14,990)
        ("lifo", ("40000", "30000", "20", "9980"), ("20000", "5000", "10", "14990")),
    ],
)
def test_short_and_long_term_parts_are_separate_rows_and_summed(
    tmp_path: Path, method: str, short: tuple[str, ...], long: tuple[str, ...]
) -> None:
    ledger = [
        *trade(STAMP, "old", "2023-01-10 10:00", "buy", "1", "10000"),
        *trade(STAMP, "new", "2024-01-10 10:00", "buy", "1", "30000"),
        *trade(STAMP, "sale", "2024-02-01 10:00", "sell", "1.5", "60000", fee="30"),
    ]
    found = run(warehouse(ledger), tmp_path, ["gains", "summary"], year=2024, method=method)
    rows, _ = found["gains"]
    by_term = {LONG in r["note"]: (r["proceeds"], r["cost"], r["fees"], r["gain"]) for r in rows}
    assert by_term == {False: short, True: long}
    _, summary = found["summary"]
    got = figures(summary)
    for term, values in (("short_term", short), ("long_term", long)):
        assert got[f"{term}_disposals"] == 1
        assert tuple(got[f"{term}_{c}"] for c in ("proceeds", "cost", "fees", "gain")) == values
    numbers = rows_of(summary)
    long_row = next(i for i, r in enumerate(rows, start=1) if LONG in r["note"])
    assert numbers["long_term_gain"] == str(long_row)
    assert numbers["short_term_gain"] == str(3 - long_row)


# --- uk: one pool per person, the SA108 figures, provisional years ------------------------------


def test_uk_refuses_per_account_lots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExportOptionError, match="CRYPTO22200"):
        ExportOptions(method="uk", lots="per-account")
    assert ExportOptions(method="uk").lots == "pooled"
    assert ExportOptions(method="de").lots == "per-account"
    config = tmp_path / "tally.toml"
    write_config(config, {"data_dir": str(tmp_path)})
    args = ["export", "gains", "--method", "uk", "--lots", "per-account", "--config", str(config)]
    assert main(args) == 2
    assert "CRYPTO22200" in capsys.readouterr().err


def uk_ledger() -> list[Row]:
    """In pounds: 10 BTC pooled for 1,000; a day of two sales and a buy; a day of a buy and a
    sale with a fee."""
    return [
        *trade(STAMP, "p", "2024-05-01 10:00", "buy", "10", "1000", market="BTC-GBP"),
        *trade(STAMP, "s1", "2024-06-10 09:00", "sell", "2", "300", market="BTC-GBP"),
        *trade(STAMP, "a1", "2024-06-10 11:00", "buy", "1", "110", market="BTC-GBP"),
        *trade(STAMP, "s2", "2024-06-10 14:00", "sell", "1", "120", market="BTC-GBP"),
        *trade(STAMP, "a2", "2024-07-01 08:00", "buy", "1", "200", market="BTC-GBP"),
        *trade(STAMP, "s3", "2024-07-01 09:00", "sell", "2", "250", "5", market="BTC-GBP"),
    ]


def test_uk_summary_counts_a_tokens_day_as_one_disposal(tmp_path: Path) -> None:
    connection = warehouse(uk_ledger(), currency="GBP")
    found = run(connection, tmp_path, ["gains", "summary"], year=2024, method="uk", currency="GBP")
    rows, _ = found["gains"]
    # 10 June: the day's sales are one disposal of 3 BTC for 300 + 120 = 420 (CRYPTO22252), one
    # computation whose consideration its parts share by quantity, matched first with the day's
    # buy (1 BTC, 110), the rest with the pool (100 each):
    #   same day: 420 × 1/3 = 140 - 110 = 30; pool: 420 - 140 = 280 - 200 = 80 → net +110
    # 1 July: s3 (2 BTC for 250, fee 5) matched with a2 (1 BTC, 200) and the pool:
    #   same day: 125 - 200 - 2.5 = -77.5; pool: 125 - 100 - 2.5 = 22.5 → net -55
    assert [(r["date"], r["reference"], r["match_type"], r["gain"]) for r in rows] == [
        ("2024-06-10", "s1, s2", "same-day", "30"),
        ("2024-06-10", "s1, s2", "section-104", "80"),
        ("2024-07-01", "s3", "same-day", "-77.5"),
        ("2024-07-01", "s3", "section-104", "22.5"),
    ]
    rows, summary = found["summary"]
    assert figures(summary) == {
        "number_of_disposals": 2,  # (10 June, BTC), (1 July, BTC)
        "disposal_proceeds": "670",  # 300 + 120 + 250
        "allowable_costs": "615",  # 110 + 100 + 100 + 200 + 100, fees 5
        "gains_before_losses": "110",  # 10 June's net; 1 July's 22.5 is netted away
        "losses": "55",
        "net_gain": "55",  # 670 - 615
        "provisional": True,  # the data end on 1 July 2024, before 6 May 2025
    }
    numbers = rows_of(summary)
    assert (numbers["gains_before_losses"], numbers["losses"]) == ("1-2", "3-4")
    assert numbers["disposal_proceeds"] == "1-4"
    assert summary["provisional"] is True
    assert any("provisional" in warning for warning in summary["warnings"])


@pytest.mark.parametrize(
    ("last", "provisional"),
    [
        # the 30 days after 5 April 2025 end with 5 May; 23:59:59 in London (BST) is 22:59:59 UTC
        ("2025-05-05 22:59:59", True),
        # 00:00 on 6 May in London: the data reach past every acquisition that could match
        ("2025-05-05 23:00:00", False),
    ],
)
def test_uk_year_is_provisional_until_the_data_pass_its_30_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], last: str, provisional: bool
) -> None:
    ledger = [*uk_ledger(), leg(STAMP, "GBP", "1", "deposit", last, "late", "deposit")]
    warehouse(ledger, currency="GBP", path=tmp_path / "warehouse.duckdb").close()
    config = tmp_path / "tally.toml"
    write_config(config, {"data_dir": str(tmp_path)})
    out = tmp_path / "out"
    common = ["--method", "uk", "--year", "2024", "--currency", "GBP", "--config", str(config)]
    for name in ("gains", "bittytax", "summary"):
        assert main(["export", name, *common, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        stem = "bittytax-2024-25-GBP" if name == "bittytax" else f"{name}-2024-25-uk-GBP"
        sidecar = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert sidecar["provisional"] is provisional
        assert ("PROVISIONAL: tax year 2024-25" in printed) is provisional
    # the summary's figures are on screen too
    assert "number_of_disposals  2" in printed
    assert "losses               55 GBP" in printed


# --- holdings at the start of a day, in the method's zone ---------------------------------------


def new_year_ledger() -> tuple[list[Row], list[dict[str, str]]]:
    """1 January 2024 00:00 in Amsterdam is 31 December 2023 23:00 UTC."""
    ledger = [
        leg(STAMP, "EUR", "30000", "deposit", "2023-11-01 10:00", "e1", "deposit"),
        *trade(STAMP, "t1", "2023-12-01 10:00", "buy", "0.5", "15000"),
        *trade(STAMP, "t2", "2023-12-31 22:59:59", "buy", "0.1", "4000"),  # before: counted
        *trade(STAMP, "t3", "2023-12-31 23:00", "buy", "0.2", "8000"),  # at the moment: not
        # 0.3 BTC sent to Bitvavo (fee 0.0005) at 23:30 in Amsterdam, arriving at 00:20
        leg(STAMP, "BTC", "-0.3", "withdrawal", "2023-12-31 22:30", "w1", "withdrawal"),
        leg(STAMP, "BTC", "-0.0005", "withdrawal_fee", "2023-12-31 22:30", "w1", "withdrawal",
            number=3),
        leg(VAVO, "BTC", "0.3", "deposit", "2023-12-31 23:20", "d1", "deposit"),
        # 2 ETH from Bitvavo to Bitstamp: Bitstamp books the deposit (23:50 in Amsterdam) before
        # Bitvavo books the withdrawal (00:10): the clocks differ
        leg(VAVO, "ETH", "5", "deposit", "2023-10-01 10:00", "e2", "deposit"),
        leg(VAVO, "ETH", "-1", "staking", "2023-12-15 10:00", "k1", "staking_debit"),
        leg(STAMP, "ETH", "2", "deposit", "2023-12-31 22:50", "d2", "deposit"),
        leg(VAVO, "ETH", "-2", "withdrawal", "2023-12-31 23:10", "w2", "withdrawal"),
        leg(VAVO, "ETH", "-0.01", "withdrawal_fee", "2023-12-31 23:10", "w2", "withdrawal",
            number=3),
    ]  # fmt: skip
    transfers = [
        {"asset": "BTC", "from": STAMP, "withdrawal": "w1", "withdrawn_at": "2023-12-31 22:30",
         "withdrawn": "0.3005", "sent": "0.3", "to": VAVO, "deposit": "d1",
         "deposited_at": "2023-12-31 23:20", "received": "0.3"},
        {"asset": "ETH", "from": VAVO, "withdrawal": "w2", "withdrawn_at": "2023-12-31 23:10",
         "withdrawn": "2.01", "sent": "2", "to": STAMP, "deposit": "d2",
         "deposited_at": "2023-12-31 22:50", "received": "2"},
    ]  # fmt: skip
    return ledger, transfers


NEW_YEAR_PRICES = [
    ("BTC", "2023-12-31 23:00", "40000", "2023-12-31 22:59"),
    ("ETH", "2023-12-31 23:00", "2000", "2023-12-31 22:59"),
    ("BTC", "2024-01-01 00:00", "99999", "2023-12-31 23:59"),  # after Amsterdam's midnight
]


def test_holdings_on_1_january_in_amsterdam_with_coins_in_transit_and_in_staking() -> None:
    ledger, transfers = new_year_ledger()
    connection = warehouse(ledger, NEW_YEAR_PRICES, transfers)
    held = {
        (h.wallet, h.asset): (h.quantity, h.value, h.place)
        for h in holdings(connection, date(2024, 1, 1), "EUR", zone="Europe/Amsterdam")
    }
    assert held == {
        # 0.5 + 0.1 - 0.3 - 0.0005 = 0.2995 (t3 at the moment left out) × 40,000 = 11,980
        (STAMP, "BTC"): (D("0.2995"), D(11980), "account"),
        # the deposit of 23:50: 2 × 2,000
        (STAMP, "ETH"): (D(2), D(4000), "account"),
        # 30,000 - 15,000 - 4,000
        (STAMP, "EUR"): (D(11000), D(11000), "account"),
        # sent on chain before the moment, credited after it: 0.3 × 40,000
        (f"{STAMP} -> {VAVO} (in transit)", "BTC"): (D("0.3"), D(12000), "in transit"),
        # 5 deposited - 1 into staking (the withdrawal of 00:10 not yet booked) × 2,000
        (VAVO, "ETH"): (D(4), D(8000), "account"),
        (f"{VAVO} (staking)", "ETH"): (D(1), D(2000), "staking"),
        # the 2 ETH credited to Bitstamp are still in Bitvavo's balance: counted once
        (f"{VAVO} -> {STAMP} (in transit)", "ETH"): (D(-2), D(-4000), "in transit"),
    }
    # in all: BTC 0.5995 (23,980), ETH 2 + 4 + 1 - 2 = 5 (10,000), EUR 11,000: 44,980
    assert sum((value for _, value, _ in held.values()), D(0)) == D(44980)


def test_holdings_at_utc_midnight_count_what_was_booked_before_it() -> None:
    ledger, transfers = new_year_ledger()
    connection = warehouse(ledger, NEW_YEAR_PRICES, transfers)
    held = {(h.wallet, h.asset): h.quantity for h in holdings(connection, date(2024, 1, 1))}
    # 00:00 UTC: both transfers are booked on both sides, t3 is in
    assert held == {
        (STAMP, "BTC"): D("0.4995"),  # 0.5 + 0.1 + 0.2 - 0.3005
        (STAMP, "ETH"): D(2),
        (STAMP, "EUR"): D(3000),  # 30,000 - 27,000
        (VAVO, "BTC"): D("0.3"),
        (VAVO, "ETH"): D("1.99"),  # 5 - 1 - 2.01
        (f"{VAVO} (staking)", "ETH"): D(1),
    }


def test_nl_box_3_figures_are_the_holdings_and_accounts_equal_the_ledger_opening(
    tmp_path: Path,
) -> None:
    ledger, transfers = new_year_ledger()
    connection = warehouse(ledger, NEW_YEAR_PRICES, transfers)
    found = run(connection, tmp_path, ["holdings", "ledger", "summary"], year=2024, method="nl")
    rows, sidecar = found["holdings"]
    assert sidecar["totals"]["moment"] == "2024-01-01T00:00:00+01:00"
    assert [(r["wallet"], r["asset"], r["value"]) for r in rows] == [
        (STAMP, "BTC", "11980"),
        (STAMP, "ETH", "4000"),
        (STAMP, "EUR", "11000"),
        (f"{STAMP} -> {VAVO} (in transit)", "BTC", "12000"),
        (VAVO, "ETH", "8000"),
        (f"{VAVO} (staking)", "ETH", "2000"),
        (f"{VAVO} -> {STAMP} (in transit)", "ETH", "-4000"),
    ]
    # the ledger export of the same year opens with exactly the accounts' rows
    _, ledger_sidecar = found["ledger"]
    opening = {
        (wallet, asset): D(b["opening"])
        for wallet, assets in ledger_sidecar["totals"]["balances"].items()
        for asset, b in assets.items()
        if D(b["opening"])
    }
    accounts = {(r["wallet"], r["asset"]): D(r["quantity"]) for r in rows if "(" not in r["wallet"]}
    assert opening == accounts
    _, summary = found["summary"]
    assert figures(summary) == {
        "quantity_BTC": "0.5995",  # 0.2995 + 0.3 in transit
        "value_BTC": "23980",  # 11,980 + 12,000
        "quantity_ETH": "5",  # 2 + 4 + 1 - 2
        "value_ETH": "10000",
        "quantity_EUR": "11000",
        "value_EUR": "11000",
        "value_tokens": "33980",  # 23,980 + 10,000
        "value_fiat": "11000",
        "value_total": "44980",
    }
    numbers = rows_of(summary)
    assert (numbers["value_BTC"], numbers["value_ETH"], numbers["value_tokens"]) == (
        "1,4", "2,5-7", "1-2,4-7")  # fmt: skip
