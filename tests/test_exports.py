"""The exports over a lake synced from the demo's sandbox world (seed, 400 days to 2025-01-15):
every format's columns, sidecar and byte-identical reruns; the ledger, Koinly and CoinTracking
files tie out to the `ledger` view account by account; own transfers carry one TxHash on both
accounts; --year filters in each method's calendar (uk: Europe/London days, 6 April); gains,
income and holdings agree with the views; BittyTax 0.6.0, run as its own program with no price
source and no network, accepts the BittyTax file, passes its integrity check and finds the same
UK gain as the engine; a missing price is listed and nothing that needed it is written.

The sandbox's oldest Bitstamp rows (2020-2021) lie years before the account window. A lake
whose candles cover only the window ("raw") cannot value the 2021 withdrawal to an outside wallet;
the "priced" lake also has Bitstamp BTC-EUR candles from the account's first row, as `tally sync`
fetches them.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
import view_tables
from synced_lake import Accounts, Candles, CandlesFromFirstRow, SyncedLakeFactory
from warehouse_query import rows as query

from pipelines.cli import main
from pipelines.config import Settings
from pipelines.demo import DEMO_DAYS, DEMO_NOW, DEMO_SEED, export_year
from warehouse.connect import connect
from warehouse.costbasis import compute, events_from_warehouse, holdings
from warehouse.costbasis.history import LEDGER_ORDER, History, between
from warehouse.costbasis.prices import PriceBook
from warehouse.exports.options import ExportOptions
from warehouse.exports.run import export
from warehouse.exports.transactions import LISTING_ORDER, listing_key
from warehouse.exports.transactions import ledger_rows as listed
from warehouse.rows import LEDGER_COLUMNS, LedgerRow

NOW = DEMO_NOW
DAYS = DEMO_DAYS
YEAR = NOW.year - 1  # the last full year: 2024
BITTYTAX = Path(sys.executable).parent / "bittytax"
FIAT = {"EUR", "USD"}
STALENESS = timedelta(days=7)  # the engine's: an older price is missing
QUANTUM = Decimal("1e-18")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COLUMNS = {
    "ledger": "time,day,exchange,account,asset,amount,kind,event_kind,event_type,market,"
    "reference,source,leg,price,value,currency",
    "gains": "date,asset,quantity,proceeds,cost,fees,gain,match_type,lots,holding_days,taxable,"
    "exempt,wallet,reference,note,currency",
    "income": "date,asset,quantity,value,kind,wallet,reference,currency",
    "holdings": "date,wallet,asset,quantity,price,value,currency",
    "koinly": "Date,Sent Amount,Sent Currency,Received Amount,Received Currency,Fee Amount,"
    "Fee Currency,Net Worth Amount,Net Worth Currency,Label,Description,TxHash",
    "cointracking": "Type,Buy Amount,Buy Currency,Sell Amount,Sell Currency,Fee,Fee Currency,"
    "Exchange,Trade-Group,Comment,Date",
    "bittytax": "Type,Buy Quantity,Buy Asset,Buy Value,Sell Quantity,Sell Asset,Sell Value,"
    "Fee Quantity,Fee Asset,Fee Value,Wallet,Timestamp,Note",
}
ALL = tuple(COLUMNS)


# --- helpers -----------------------------------------------------------------------------------


def read(path: Path) -> tuple[str, list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    header = text.split("\n", 1)[0]
    return header, list(csv.DictReader(io.StringIO(text)))


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def number(text: str) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def start_of(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


def run_export(
    settings: Settings, directory: Path, formats: tuple[str, ...], book: PriceBook, **options: Any
):
    """`export`, valuing with `book` (the lake's EUR prices read once: see `priced_book`)."""
    with connect(settings.data_dir) as connection:
        return export(connection, formats, ExportOptions(**options), directory, loaded=book)


class Prices:
    """The `prices` view read once: the newest hourly price at or before a moment, no staler
    than 7 days (the rule the engine documents), looked up here independently of the exports.
    Times are read as microseconds since the epoch and prices as their exact text, made a
    Decimal when looked up (far cheaper to fetch than a timestamp with time zone and a DECIMAL
    per hour)."""

    def __init__(self, settings: Settings) -> None:
        # per asset: the hours (ascending), each hour's price text and observation time
        self.series: dict[str, tuple[list[int], list[str], list[int]]] = {}
        with connect(settings.data_dir) as connection:
            rows = connection.execute(
                "select asset, epoch_us(priced_at), price::varchar, epoch_us(observed_at) "
                "from prices where currency = 'EUR' order by asset, priced_at"
            ).fetchall()
        for asset, priced_at, price, observed_at in rows:
            hours, texts, observed = self.series.setdefault(asset, ([], [], []))
            hours.append(priced_at)
            texts.append(price)
            observed.append(observed_at)

    def at(self, asset: str, moment: datetime) -> Decimal | None:
        if asset == "EUR":
            return Decimal(1)
        hours, texts, observed = self.series.get(asset, ([], [], []))
        micros = (moment - EPOCH) // timedelta(microseconds=1)
        index = bisect_right(hours, micros) - 1
        if index < 0 or micros - observed[index] > STALENESS // timedelta(microseconds=1):
            return None
        return Decimal(texts[index])


def ledger_sums(
    settings: Settings, start: datetime, end: datetime
) -> dict[tuple[str, str], Decimal]:
    return {
        (r["wallet"], r["asset"]): r["total"]
        for r in query(
            settings,
            "select exchange || '/' || account as wallet, asset, sum(amount) as total "
            "from ledger where executed_at >= ? and executed_at < ? group by all",
            start,
            end,
        )
    }


def nonzero(sums: dict[Any, Decimal]) -> dict[Any, Decimal]:
    return {key: value for key, value in sums.items() if value != 0}


# --- the synced lakes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lakes:
    raw: Settings  # 1h candles for the account window only: the 2020-2021 rows have no price
    priced: Settings  # and Bitstamp BTC-EUR 1h from the account's first row, as `tally sync` does


@pytest.fixture(scope="module")
def lakes(synced_lake: SyncedLakeFactory, tmp_path_factory: pytest.TempPathFactory) -> Lakes:
    """Both accounts and every market's 1h candles of the account window, synced at the demo's
    frozen now (`raw`); then the candles of the one market that values the old rows (BTC-EUR)
    back to the account's first row (`priced`). Copies of the shared lakes: an `export.toml`
    is written beside each."""
    window = (Accounts(), Candles())
    first_row = CandlesFromFirstRow("bitstamp", "BTC-EUR")
    found = []
    for name, what in (("raw", window), ("priced", (*window, first_row))):
        lake = synced_lake(seed=DEMO_SEED, days=DAYS, now=NOW, what=what)
        settings = lake.copy(tmp_path_factory.mktemp(name) / "synced").settings
        (settings.data_dir / "export.toml").write_text(f'data_dir = "{settings.data_dir}"\n')
        found.append(settings)
    raw, priced = found
    return Lakes(raw=raw, priced=priced)


@pytest.fixture(scope="module")
def raw(lakes: Lakes) -> Settings:
    return lakes.raw


@pytest.fixture(scope="module")
def priced(lakes: Lakes) -> Settings:
    return lakes.priced


@pytest.fixture(scope="module")
def unpriced(raw: Settings) -> list[dict[str, Any]]:
    """The raw lake's token movements older than the first price of their asset (read by two
    tests: one read of the prices view)."""
    return query(
        raw,
        "select distinct asset, kind, executed_at from ledger "
        "where asset not in ('EUR', 'USD') and executed_at < "
        "(select min(priced_at) from prices where prices.asset = ledger.asset "
        "and prices.currency = 'EUR') "
        "order by executed_at",
    )


@pytest.fixture(scope="module")
def prices(priced: Settings) -> Prices:
    return Prices(priced)


@pytest.fixture(scope="module")
def priced_book(priced: Settings) -> PriceBook:
    """The priced lake's EUR prices as the exports read them, read once for the export runs of
    the fixtures below (each run values with a `fresh()` copy of its own); the CLI and demo runs
    read the view themselves, and the demo's run is byte-identical to `fifo`'s."""
    with connect(priced.data_dir) as connection:
        return PriceBook.load(connection, "EUR")


@pytest.fixture(scope="module")
def fifo(
    priced: Settings, priced_book: PriceBook, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    directory = tmp_path_factory.mktemp("fifo")
    run_export(priced, directory, ALL, priced_book, year=YEAR)
    return directory


@pytest.fixture(scope="module")
def whole(
    priced: Settings, priced_book: PriceBook, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The whole history (no --year)."""
    directory = tmp_path_factory.mktemp("whole")
    formats = ("ledger", "gains", "koinly", "bittytax", "cointracking")
    run_export(priced, directory, formats, priced_book)
    return directory


# One export run per set of options that several fixtures read: a run reads the ledger and
# computes the cost basis once for all its formats.
@pytest.fixture(scope="module")
def uk(priced: Settings, priced_book: PriceBook, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2024-25 in the UK calendar: also the uk holdings of `summaries`."""
    directory = tmp_path_factory.mktemp("uk")
    formats = ("gains", "ledger", "bittytax", "summary", "holdings")
    run_export(priced, directory, formats, priced_book, year=YEAR, method="uk")
    return directory


@pytest.fixture(scope="module")
def uk_before(
    priced: Settings, priced_book: PriceBook, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """2023-24 in the UK calendar: a summary of `summaries` and a year of `uk_tax_years`."""
    directory = tmp_path_factory.mktemp("uk-before")
    formats = ("gains", "summary", "bittytax")
    run_export(priced, directory, formats, priced_book, year=YEAR - 1, method="uk")
    return directory


# --- every format ------------------------------------------------------------------------------


def test_every_format_has_its_exact_columns_and_a_sidecar(fifo: Path) -> None:
    for name, columns in COLUMNS.items():
        sidecar = json.loads(only(fifo, f"{name}-*.json").read_text(encoding="utf-8"))
        assert sidecar["format"] == name
        assert sidecar["currency"] == "EUR"
        assert sidecar["method"] == "fifo"
        assert sidecar["period"]["label"] == str(YEAR)
        assert sidecar["period"]["timezone"] == "UTC"
        expected_files = 2 if name == "koinly" else 1
        assert len(sidecar["files"]) == expected_files
        for described in sidecar["files"]:
            path = fifo / described["name"]
            header, rows = read(path)
            assert header == columns, name
            assert described["rows"] == len(rows) > 0
            assert described["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class DemoExport:
    """What `tally demo`'s last step (`export_year`) wrote from a copy of the priced warehouse."""

    ok: bool
    directory: Path
    printed: str


@pytest.fixture(scope="module")
def demo_export(priced: Settings, tmp_path_factory: pytest.TempPathFactory) -> DemoExport:
    settings = Settings(data_dir=tmp_path_factory.mktemp("demo-export"))
    shutil.copy(priced.warehouse_path, settings.warehouse_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ok = export_year(settings, YEAR)
    return DemoExport(ok, settings.exports_dir, printed.getvalue())


def test_a_second_export_of_the_same_lake_is_byte_identical(
    fifo: Path, demo_export: DemoExport
) -> None:
    """The second export is the demo's: the same year and options through `export_year`."""
    first = {p.name: p.read_bytes() for p in fifo.iterdir()}
    second = {p.name: p.read_bytes() for p in demo_export.directory.iterdir()}
    assert sorted(first) == sorted(second)
    assert len(first) == 15  # 7 sidecars, 8 CSV files (koinly: one per account)
    for name, data in first.items():
        assert second[name] == data, name


# --- ledger, Koinly, CoinTracking tie out to the ledger view -----------------------------------


def test_the_ledger_export_is_every_movement_of_the_year_valued(
    priced: Settings, prices: Prices, fifo: Path
) -> None:
    _, rows = read(only(fifo, "ledger-*.csv"))
    view = query(
        priced,
        "select count(*) as n from ledger where executed_at >= ? and executed_at < ?",
        start_of(YEAR),
        start_of(YEAR + 1),
    )[0]["n"]
    assert len(rows) == view
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        assert row["time"].startswith(str(YEAR)) and row["currency"] == "EUR"
        sums[(f"{row['exchange']}/{row['account']}", row["asset"])] += Decimal(row["amount"])
    assert nonzero(sums) == nonzero(ledger_sums(priced, start_of(YEAR), start_of(YEAR + 1)))
    # values: amount × the price read straight from `prices`, rounded half away from zero to
    # 18 decimals as the export's docstring says
    for row in rows:
        at = datetime.strptime(row["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        price = prices.at(row["asset"], at)
        assert price is not None
        assert Decimal(row["price"]) == price
        with localcontext() as exact:
            exact.prec = 200
            value = (Decimal(row["amount"]) * price).quantize(QUANTUM, rounding=ROUND_HALF_UP)
        assert Decimal(row["value"]) == value
    sidecar = json.loads(only(fifo, "ledger-*.json").read_text(encoding="utf-8"))
    closing = nonzero(ledger_sums(priced, start_of(2000), start_of(YEAR + 1)))
    stated = {
        (wallet, asset): Decimal(b["closing"])
        for wallet, assets in sidecar["totals"]["balances"].items()
        for asset, b in assets.items()
    }
    assert nonzero(stated) == closing


def test_koinly_files_tie_out_to_each_accounts_ledger(priced: Settings, fifo: Path) -> None:
    expected = nonzero(ledger_sums(priced, start_of(YEAR), start_of(YEAR + 1)))
    rewards = Counter(
        r["wallet"]
        for r in query(
            priced,
            "select exchange || '/' || account as wallet from ledger where kind = 'reward' "
            "and executed_at >= ? and executed_at < ?",
            start_of(YEAR),
            start_of(YEAR + 1),
        )
    )
    files = sorted(fifo.glob("koinly-*.csv"))
    assert [p.name.split("-")[1:3] for p in files] == [["bitstamp", "main"], ["bitvavo", "main"]]
    found: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for path in files:
        wallet = "/".join(path.name.split("-")[1:3])
        _, rows = read(path)
        for row in rows:
            assert re.fullmatch(rf"{YEAR}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row["Date"])
            assert row["Label"] in {
                "",
                "reward",
                "add to pool",
                "remove from pool",
                "cost",
                "fee refund",
            }
            found[(wallet, row["Received Currency"])] += number(row["Received Amount"])
            found[(wallet, row["Sent Currency"])] -= number(row["Sent Amount"])
            found[(wallet, row["Fee Currency"])] -= number(row["Fee Amount"])
            if row["Net Worth Amount"]:
                assert row["Net Worth Currency"] == "EUR"
        assert sum(row["Label"] == "reward" for row in rows) == rewards[wallet] > 0
    assert nonzero(found) == expected


def test_own_transfers_carry_one_txhash_on_both_accounts(priced: Settings, fifo: Path) -> None:
    pairs = query(
        priced,
        "select * from internal_transfers where status = 'matched' "
        "and withdrawn_at >= ? and deposited_at < ?",
        start_of(YEAR),
        start_of(YEAR + 1),
    )
    assert len(pairs) >= 2
    files = {
        "/".join(p.name.split("-")[1:3]): read(p)[1] for p in sorted(fifo.glob("koinly-*.csv"))
    }
    for pair in pairs:
        assert pair["txid"]
        sent_from = f"{pair['withdrawal_exchange']}/{pair['withdrawal_account']}"
        sent = [r for r in files[sent_from] if r["TxHash"] == pair["txid"]]
        assert [(Decimal(r["Sent Amount"]), r["Sent Currency"], r["Label"]) for r in sent] == [
            (pair["sent"], pair["asset"], "")
        ]
        assert Decimal(sent[0]["Fee Amount"]) == pair["withdrawal_fee"]
        received_in = f"{pair['deposit_exchange']}/{pair['deposit_account']}"
        got = [r for r in files[received_in] if r["TxHash"] == pair["txid"]]
        assert [
            (Decimal(r["Received Amount"]), r["Received Currency"], r["Label"]) for r in got
        ] == [(pair["deposited"], pair["asset"], "")]


def test_cointracking_ties_out_to_each_accounts_ledger(priced: Settings, fifo: Path) -> None:
    types = {
        "Trade",
        "Deposit",
        "Withdrawal",
        "Staking",
        "Reward / Bonus",
        "Airdrop",
        "Other Fee",
        "Income (non taxable)",
    }
    _, rows = read(only(fifo, "cointracking-*.csv"))
    found: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        assert row["Type"] in types
        assert re.fullmatch(rf"{YEAR}-\d\d-\d\d \d\d:\d\d:\d\d", row["Date"])
        # CoinTracking's amounts include the fee; its Fee column moves nothing
        found[(row["Exchange"], row["Buy Currency"])] += number(row["Buy Amount"])
        found[(row["Exchange"], row["Sell Currency"])] -= number(row["Sell Amount"])
    assert nonzero(found) == nonzero(ledger_sums(priced, start_of(YEAR), start_of(YEAR + 1)))
    assert {row["Type"] for row in rows} >= {"Trade", "Deposit", "Withdrawal", "Staking"}


# --- periods -----------------------------------------------------------------------------------


def test_year_keeps_exactly_the_years_rows(fifo: Path, whole: Path) -> None:
    for pattern, day_of in (
        ("ledger-*.csv", lambda r: r["time"][:10]),
        ("gains-*.csv", lambda r: r["date"]),
    ):
        _, year_rows = read(only(fifo, pattern))
        _, all_rows = read(only(whole, pattern))
        inside = [r for r in all_rows if day_of(r).startswith(str(YEAR))]
        assert year_rows == inside and len(all_rows) > len(inside) > 0, pattern
    for path in sorted(fifo.glob("koinly-*-*-*.csv")):
        _, year_rows = read(path)
        _, all_rows = read(only(whole, path.name.replace(f"-{YEAR}-", "-all-")))
        assert year_rows == [r for r in all_rows if r["Date"].startswith(str(YEAR))]
    # BittyTax needs the history before the year and the 30 days after it (bed and breakfast):
    # 31 December + 30 days = 30 January, so everything before 31 January 00:00 London (GMT)
    _, year_rows = read(only(fifo, "bittytax-*.csv"))
    _, all_rows = read(only(whole, "bittytax-*.csv"))
    until = f"{YEAR + 1}-01-31T00:00:00"
    assert year_rows == [r for r in all_rows if r["Timestamp"] < until]
    assert year_rows[0]["Timestamp"] < str(YEAR) < str(YEAR + 1) < year_rows[-1]["Timestamp"]


def test_uk_counts_london_days_and_the_tax_year(priced: Settings, uk: Path) -> None:
    sidecar = json.loads(only(uk, "gains-*.json").read_text(encoding="utf-8"))
    assert sidecar["period"]["label"] == f"{YEAR}-{(YEAR + 1) % 100}"
    assert sidecar["period"]["timezone"] == "Europe/London"
    assert list(sidecar["totals"]["years"]) == [f"{YEAR}-{(YEAR + 1) % 100}"]
    _, rows = read(only(uk, "gains-*.csv"))
    assert {r["match_type"] for r in rows} <= {"same-day", "bed-and-breakfast", "section-104"}
    times = {
        (r["wallet"], r["reference"]): r["executed_at"]
        for r in query(
            priced,
            "select exchange || '/' || account as wallet, reference, min(executed_at) as "
            "executed_at from ledger group by all",
        )
    }
    london = ZoneInfo("Europe/London")
    for row in rows:
        day = date.fromisoformat(row["date"])
        assert date(YEAR, 4, 6) <= day <= date(YEAR + 1, 4, 5)
        # a row is a part of the token's day: every disposal of that day is on that London day
        wallets = row["wallet"].split(", ")
        for reference in row["reference"].split(", "):
            found = [times[(w, reference)] for w in wallets if (w, reference) in times]
            assert found, (reference, row)
            for at in found:
                assert at.astimezone(london).date() == day, row
    # the ledger's day is the London day too: 23:xx UTC in summer is the next day there
    _, ledger = read(only(uk, "ledger-*.csv"))
    for row in ledger:
        at = datetime.strptime(row["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert row["day"] == at.astimezone(london).date().isoformat()
    assert any(row["day"] != row["time"][:10] for row in ledger)


# --- schedules ---------------------------------------------------------------------------------


def test_gains_add_up_and_are_the_engines_disposals_of_the_year(
    priced: Settings, fifo: Path
) -> None:
    _, rows = read(only(fifo, "gains-*.csv"))
    for row in rows:
        gain = Decimal(row["proceeds"]) - Decimal(row["cost"]) - Decimal(row["fees"])
        assert Decimal(row["gain"]) == gain == Decimal(row["taxable"]) + Decimal(row["exempt"])
        assert row["match_type"] == "fifo" and row["currency"] == "EUR"
    with connect(priced.data_dir) as connection:
        result = compute(events_from_warehouse(connection), method="fifo")
    engine = [g for g in result.gains if g.date.year == YEAR]
    assert len(rows) == len(engine) > 100
    sidecar = json.loads(only(fifo, "gains-*.json").read_text(encoding="utf-8"))
    totals = sidecar["totals"]["years"][str(YEAR)]
    with localcontext() as exact:  # the default 28 digits would round these sums
        exact.prec = 200
        for field in ("proceeds", "cost", "fees", "gain"):
            assert Decimal(totals[field]) == sum((Decimal(r[field]) for r in rows), Decimal(0))
            assert Decimal(totals[field]) == sum((getattr(g, field) for g in engine), Decimal(0))
    assert totals["disposals"] == len(rows)


def test_income_is_every_reward_of_the_year_valued_on_receipt(
    priced: Settings, prices: Prices, fifo: Path
) -> None:
    rewards = query(
        priced,
        "select exchange || '/' || account as wallet, asset, amount, executed_at, reference "
        "from ledger where kind = 'reward' and executed_at >= ? and executed_at < ?",
        start_of(YEAR),
        start_of(YEAR + 1),
    )
    _, rows = read(only(fifo, "income-*.csv"))
    assert len(rows) == len(rewards) > 50
    by_reference = {(r["wallet"], r["reference"]): r for r in rewards}
    for row in rows:
        reward = by_reference[(row["wallet"], row["reference"])]
        assert Decimal(row["quantity"]) == reward["amount"]
        price = prices.at(reward["asset"], reward["executed_at"])
        assert price is not None
        assert Decimal(row["value"]) == reward["amount"] * price
    sidecar = json.loads(only(fifo, "income-*.json").read_text(encoding="utf-8"))
    total = sum((Decimal(r["value"]) for r in rows), Decimal(0))
    assert Decimal(sidecar["totals"]["years"][str(YEAR)]["value"]) == total


def test_holdings_are_the_balances_at_new_year_valued(
    priced: Settings, prices: Prices, fifo: Path
) -> None:
    new_year = start_of(YEAR)
    balances = query(
        priced,
        "select exchange || '/' || account as wallet, asset, sum(amount) as quantity from ledger "
        "where executed_at <= ? and kind <> 'staking' group by all having sum(amount) <> 0",
        new_year,
    )
    _, rows = read(only(fifo, "holdings-*.csv"))
    assert {r["date"] for r in rows} == {f"{YEAR}-01-01"}
    assert {(r["wallet"], r["asset"]): Decimal(r["quantity"]) for r in rows} == {
        (b["wallet"], b["asset"]): b["quantity"] for b in balances
    }
    for row in rows:
        price = prices.at(row["asset"], new_year)
        assert price is not None
        assert Decimal(row["value"]) == Decimal(row["quantity"]) * price
    sidecar = json.loads(only(fifo, "holdings-*.json").read_text(encoding="utf-8"))
    assert Decimal(sidecar["totals"]["value"]) == sum((Decimal(r["value"]) for r in rows), 0)


# --- tax summaries and holdings in each method's calendar ---------------------------------------

LONG_TERM = "long-term: held over one year"
# (method, year, formats): one export run each (one cost basis each); and the uk
# runs of 2023-24 (final: gains, summary) and of 2024-25 (holdings on 6 April 2024 in London:
# ETH in staking) that other fixtures share
SUMMARIES = (
    ("de", YEAR, ("gains", "summary")),
    ("fifo", YEAR, ("gains", "summary")),
    ("nl", YEAR, ("holdings", "ledger", "summary")),  # 1 January in Amsterdam
)


@pytest.fixture(scope="module")
def summaries(
    priced: Settings,
    priced_book: PriceBook,
    uk: Path,
    uk_before: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """Per "method-year", the summary or holdings with the exports they are traced to."""
    found = {f"uk-{YEAR - 1}": uk_before, f"uk-{YEAR}": uk}
    for method, year, formats in SUMMARIES:
        directory = tmp_path_factory.mktemp(f"summary-{method}-{year}")
        run_export(priced, directory, formats, priced_book, year=year, method=method)
        found[f"{method}-{year}"] = directory
    return found


def numbered(text: str) -> list[int]:
    """Data row numbers from the sidecar's ranges: "1-3,5" → [1, 2, 3, 5]."""
    rows: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        rows += range(int(first), int(last or first) + 1)
    return rows


def test_summary_figures_are_sums_of_the_rows_the_sidecar_names(summaries: dict[str, Path]) -> None:
    with localcontext() as exact:
        exact.prec = 200
        for method, directory in summaries.items():
            if not list(directory.glob("summary-*.json")):
                continue
            sidecar = json.loads(only(directory, "summary-*.json").read_text(encoding="utf-8"))
            traced = 0
            for name, figure in sidecar["totals"]["figures"].items():
                if not figure["file"]:
                    continue
                _, rows = read(directory / figure["file"])
                picked = [rows[n - 1] for n in numbered(figure["rows"])]
                column = figure["column"] or ""
                if figure["unit"] == "count" and "," in column:  # distinct (date, asset)
                    keys = [c.strip() for c in column.split(",")]
                    assert figure["value"] == len({tuple(r[k] for k in keys) for r in picked})
                elif figure["unit"] == "count":  # rows
                    assert figure["value"] == len(picked), (method, name)
                else:  # the sum of a column, of "cost + fees", or negated: "-gain"
                    columns = [c.strip() for c in column.removeprefix("-").split("+")]
                    total = sum((Decimal(r[c]) for r in picked for c in columns), Decimal(0))
                    if column.startswith("-"):
                        total = -total
                    assert Decimal(figure["value"]) == total, (method, name)
                traced += 1
            assert traced >= 3, method


def test_summaries_follow_each_returns_rule_over_the_gains_export(
    summaries: dict[str, Path],
) -> None:
    """The figures replayed from the gains rows by the rule each return states."""

    def load(method: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
        directory = summaries[f"{method}-{YEAR - 1 if method == 'uk' else YEAR}"]
        _, rows = read(only(directory, "gains-*.csv"))
        sidecar = json.loads(only(directory, "summary-*.json").read_text(encoding="utf-8"))
        return rows, {k: f["value"] for k, f in sidecar["totals"]["figures"].items()}

    with localcontext() as exact:
        exact.prec = 200
        # uk (SA108): a token's disposals of one day are one disposal; its net gain counts as a
        # gain or a loss (CRYPTO22252)
        rows, got = load("uk")
        net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in rows:
            net[(row["date"], row["asset"])] += Decimal(row["gain"])
        assert got["number_of_disposals"] == len(net) > 50
        assert Decimal(got["gains_before_losses"]) == sum(g for g in net.values() if g > 0)
        assert Decimal(got["losses"]) == -sum(g for g in net.values() if g < 0) > 0
        assert Decimal(got["disposal_proceeds"]) == sum(Decimal(r["proceeds"]) for r in rows)
        assert Decimal(got["allowable_costs"]) == sum(
            Decimal(r["cost"]) + Decimal(r["fees"]) for r in rows
        )
        assert got["provisional"] is False  # 2023-24: the data reach far past 5 May 2024
        # de (Anlage SO): taxable and exempt parts, the 2024 Freigrenze of 1,000
        rows, got = load("de")
        taxable = sum(Decimal(r["taxable"]) for r in rows)
        assert Decimal(got["taxable_gain"]) == taxable
        assert Decimal(got["exempt_gain"]) == sum(Decimal(r["exempt"]) for r in rows)
        assert got["freigrenze"] == "1000"
        assert got["freigrenze_applies"] is (0 < taxable < 1000)
        # fifo: rows noted long-term against the rest
        rows, got = load("fifo")
        long_rows = [r for r in rows if LONG_TERM in r["note"]]
        short_rows = [r for r in rows if LONG_TERM not in r["note"]]
        assert got["long_term_disposals"] == len(long_rows) > 0
        assert got["short_term_disposals"] == len(short_rows) > 0
        for term, part in (("long_term", long_rows), ("short_term", short_rows)):
            assert Decimal(got[f"{term}_gain"]) == sum(Decimal(r["gain"]) for r in part)
        for row in long_rows:  # every lot acquired more than a year before the sale (UTC days)
            sold = date.fromisoformat(row["date"])
            for lot in row["lots"].split("; "):
                acquired = date.fromisoformat(lot[:10])
                try:
                    anniversary = acquired.replace(year=acquired.year + 1)
                except ValueError:  # 29 February: the year ends on 28 February
                    anniversary = date(acquired.year + 1, 2, 28)
                assert sold > anniversary, row


def test_holdings_are_the_ledger_exports_opening_balances_in_each_methods_calendar(
    priced: Settings, summaries: dict[str, Path]
) -> None:
    staking: dict[str, dict[tuple[str, str], Decimal]] = {}
    for method, year, zone in (("nl", YEAR, "Europe/Amsterdam"), ("uk", YEAR, "Europe/London")):
        directory = summaries[f"{method}-{year}"]
        _, rows = read(only(directory, "holdings-*.csv"))
        first = date(year, 4, 6) if method == "uk" else date(year, 1, 1)
        local = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo(zone))
        moment = local.astimezone(UTC)
        assert {r["date"] for r in rows} == {first.isoformat()}
        ledger = json.loads(only(directory, "ledger-*.json").read_text(encoding="utf-8"))
        opening = {
            (wallet, asset): Decimal(b["opening"])
            for wallet, assets in ledger["totals"]["balances"].items()
            for asset, b in assets.items()
            if Decimal(b["opening"]) and asset != "?"
        }
        accounts = {(r["wallet"], r["asset"]): Decimal(r["quantity"]) for r in rows if "(" not in
                    r["wallet"]}  # fmt: skip
        assert accounts == opening, method
        # and the ledger view itself, read independently: movements before the moment
        assert accounts == nonzero(ledger_sums(priced, start_of(2000), moment)), method
        staked = {
            (f"{r['wallet']} (staking)", r["asset"]): -r["total"]
            for r in query(
                priced,
                "select exchange || '/' || account as wallet, asset, sum(amount) as total "
                "from ledger where kind = 'staking' and executed_at < ? group by all",
                moment,
            )
            if r["total"]
        }
        assert {
            (r["wallet"], r["asset"]): Decimal(r["quantity"])
            for r in rows
            if r["wallet"].endswith("(staking)")
        } == staked, method
        staking[method] = staked
    # ETH was in Bitstamp's staking from 1 March to 27 October 2024: on 6 April, not on 1 January
    assert staking["nl"] == {}
    assert list(staking["uk"]) == [("bitstamp/main (staking)", "ETH")]
    assert all(quantity > 0 for quantity in staking["uk"].values())
    # nl: box 3 per asset is every holdings row of the asset, valued on 1 January
    directory = summaries[f"nl-{YEAR}"]
    _, rows = read(only(directory, "holdings-*.csv"))
    summary = json.loads(only(directory, "summary-*.json").read_text(encoding="utf-8"))
    values: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        values[row["asset"]] += Decimal(row["value"])
    figures = summary["totals"]["figures"]
    assert {asset: Decimal(figures[f"value_{asset}"]["value"]) for asset in values} == values
    assert Decimal(figures["value_total"]["value"]) == sum(values.values())


def test_coins_between_the_accounts_at_midnight_are_held_in_transit(priced: Settings) -> None:
    """A demo transfer leaves at 00:00 UTC and lands about an hour later: at 00:00 in Cape Verde
    (UTC-1) it is on its way, counted once, in neither account."""
    [pair] = query(
        priced,
        "select * from internal_transfers where status = 'matched' and withdrawn_at = ?",
        datetime(2024, 4, 10, tzinfo=UTC),
    )
    moment = datetime(2024, 4, 10, 1, tzinfo=UTC)
    assert pair["withdrawn_at"] < moment <= pair["deposited_at"]
    with connect(priced.data_dir) as connection:
        held = holdings(connection, date(2024, 4, 10), zone="Atlantic/Cape_Verde")
    route = f"{pair['withdrawal_exchange']}/{pair['withdrawal_account']} -> "
    route += f"{pair['deposit_exchange']}/{pair['deposit_account']} (in transit)"
    assert [(h.wallet, h.asset, h.quantity) for h in held if h.place == "in transit"] == [
        (route, pair["asset"], pair["sent"])
    ]
    accounts = nonzero(ledger_sums(priced, start_of(2000), moment))
    assert {(h.wallet, h.asset): h.quantity for h in held if h.place == "account"} == accounts


# --- BittyTax ----------------------------------------------------------------------------------


def test_every_bittytax_record_carries_the_values_bittytax_would_look_up(fifo: Path) -> None:
    _, rows = read(only(fifo, "bittytax-*.csv"))
    acquisitions = {"Trade", "Staking", "Referral", "Airdrop", "Income", "Gift-Received"}
    for row in rows:
        if row["Type"] in acquisitions:
            assert row["Buy Value"], row
        if row["Type"] in {"Trade", "Spend"}:
            assert row["Sell Value"], row
        if row["Fee Quantity"]:
            assert row["Fee Value"], row
        for side in ("Buy", "Sell", "Fee"):
            if row[f"{side} Asset"] == "EUR":
                assert row[f"{side} Value"] == row[f"{side} Quantity"], row


@pytest.fixture(scope="module")
def bittytax_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose BittyTax config values in EUR and names no price source at all."""
    home = tmp_path_factory.mktemp("bittytax-home")
    (home / ".bittytax").mkdir()
    (home / ".bittytax" / "bittytax.conf").write_text(
        "local_currency: 'EUR'\n"
        "fiat_list: ['EUR', 'USD', 'GBP']\n"
        "data_source_select: {}\n"
        "data_source_fiat: []\n"
        "data_source_crypto: []\n",
        encoding="utf-8",
    )
    return home


RunBittyTax = Callable[[Path, int], subprocess.CompletedProcess[str]]  # (file, tax year)


@pytest.fixture(scope="module")
def bittytax(bittytax_home: Path) -> RunBittyTax:
    """`run_bittytax` in `bittytax_home`, each (file, tax year) once: the 2024/25 UK file is
    read by two tests."""
    return functools.cache(functools.partial(run_bittytax, bittytax_home))


def run_bittytax(home: Path, path: Path, tax_year: int) -> subprocess.CompletedProcess[str]:
    """BittyTax as its own program: no network namespace where the machine allows one, and a
    dead proxy for every request either way, so a price lookup fails at once (never hangs)."""
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_COLOR": "1",
    }
    command = [str(BITTYTAX), str(path), "--nopdf", "-ty", str(tax_year)]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        command = [unshare, "-n", *command]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def bittytax_amount(output: str, label: str) -> Decimal:
    match = re.search(rf"{re.escape(label)}\s+\*?€(-?[\d,]+\.\d\d)", output)
    assert match, label
    return Decimal(match.group(1).replace(",", ""))


def test_bittytax_accepts_the_export_and_finds_the_engines_uk_gain(
    priced: Settings, uk: Path, bittytax: RunBittyTax
) -> None:
    path = only(uk, "bittytax-*.csv")
    _, rows = read(path)
    done = bittytax(path, YEAR + 1)  # BittyTax names 2024/25 "2025"
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert f"import successful (success={len(rows)}, failure=0)" in output
    assert "integrity check: passed" in output
    assert f"calculating tax year {YEAR}/{(YEAR + 1) % 100}" in output
    assert "WARNING" not in output and "ERROR" not in output, output[-3000:]
    assert "not available" not in output
    # its pools and audit end where the ledger does: every wallet's token balance
    balances = nonzero(ledger_sums(priced, start_of(2000), NOW + timedelta(days=1)))
    for (wallet, asset), quantity in balances.items():
        if asset not in FIAT:
            line = rf"^{re.escape(wallet)}\s+{asset}\s+{re.escape(f'{quantity.normalize():,f}')}$"
            assert re.search(line, output, re.M), (wallet, asset, quantity)
    # an independent UK computation over the same records: the same net gain, to the penny
    # (both state each part of a day's disposal in pence, rounded alike)
    net = bittytax_amount(output, "Gains in the year, before losses:") - bittytax_amount(
        output, "Losses in the year:"
    )
    engine = json.loads(only(uk, "gains-*.json").read_text(encoding="utf-8"))
    gain = Decimal(engine["totals"]["years"][f"{YEAR}-{(YEAR + 1) % 100}"]["gain"])
    assert net == gain, (net, gain)


# --- the receiving tools' own rules -------------------------------------------------------------


def reported_balances(settings: Settings) -> dict[tuple[str, str], Decimal]:
    """What the exchanges report: each account's latest balance snapshot, per asset."""
    return {
        (r["wallet"], r["asset"]): r["reported"]
        for r in query(
            settings,
            "select exchange || '/' || account as wallet, asset, reported from reconcile_balances",
        )
    }


def cointracking_balances(path: Path) -> dict[tuple[str, str], Decimal]:
    """A CoinTracking file replayed by CoinTracking's rule ("Entering fees", support article
    29000007202): a row moves its Buy and Sell amounts, which already include the fee; the Fee
    column is information only and moves nothing."""
    balances: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with localcontext() as exact:
        exact.prec = 200
        for row in read(path)[1]:
            if row["Buy Amount"]:
                balances[(row["Exchange"], row["Buy Currency"])] += Decimal(row["Buy Amount"])
            if row["Sell Amount"]:
                balances[(row["Exchange"], row["Sell Currency"])] -= Decimal(row["Sell Amount"])
    return balances


def koinly_balances(paths: list[Path]) -> dict[tuple[str, str], Decimal]:
    """Koinly universal files (one per wallet) replayed by Koinly's rules: a row adds its
    Received Amount and takes its Sent Amount; a send's or a trade's fee is paid on top of what
    was sent (article 9490025); a deposit cannot have a fee (article 9490022), so a fee on a row
    that sends nothing takes nothing. 'add to pool' sends to Koinly's pool wallet and 'remove
    from pool' receives from it (article 9490056): both move the wallet like any send/receive."""
    balances: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with localcontext() as exact:
        exact.prec = 200
        for path in paths:
            wallet = "/".join(path.name.split("-")[1:3])
            for row in read(path)[1]:
                if row["Received Amount"]:
                    balances[(wallet, row["Received Currency"])] += Decimal(row["Received Amount"])
                if row["Sent Amount"]:
                    balances[(wallet, row["Sent Currency"])] -= Decimal(row["Sent Amount"])
                    if row["Fee Amount"]:
                        balances[(wallet, row["Fee Currency"])] -= Decimal(row["Fee Amount"])
    return balances


@pytest.fixture(scope="module")
def whole_cointracking(whole: Path) -> Path:
    return only(whole, "cointracking-all-*.csv")


def test_cointracking_and_koinly_replayed_by_their_rules_end_at_the_reported_balances(
    priced: Settings, whole: Path, whole_cointracking: Path
) -> None:
    reported = nonzero(reported_balances(priced))
    assert len(reported) >= 8
    # the fees the two tools treat differently all occur: trade fees, withdrawal fees, and a
    # deposit fee (Bitstamp's 7.5 USD on a 10,000 USD deposit in the demo)
    kinds = {r["kind"] for r in query(priced, "select distinct kind from ledger")}
    assert {"fee", "withdrawal_fee", "deposit_fee"} <= kinds
    assert nonzero(cointracking_balances(whole_cointracking)) == reported
    files = sorted(whole.glob("koinly-*-all-*.csv"))
    assert len(files) == 2
    assert nonzero(koinly_balances(files)) == reported


BITTYTAX_DISPOSAL = re.compile(
    r"^(?P<asset>\S+)\s+(?P<day>\d\d/\d\d/\d{4}) "
    r"(?P<rule>Same Day|Bed & Breakfast|Section 104)(?: \((?P<bought>\d\d/\d\d/\d{4})\))?\s+"
    r"(?P<quantity>[\d,.]+)\s+€(?P<cost>-?[\d,]+\.\d\d)\s+€(?P<fees>-?[\d,]+\.\d\d)\s+"
    r"€(?P<proceeds>-?[\d,]+\.\d\d)\s+€(?P<gain>-?[\d,]+\.\d\d)$",
    re.M,
)
RULES = {
    "Same Day": "same-day",
    "Bed & Breakfast": "bed-and-breakfast",
    "Section 104": "section-104",
}


def bittytax_disposals(output: str) -> list[dict[str, Any]]:
    """The rows of BittyTax's capital gains table (one per disposal as it matched it)."""

    def euros(text: str) -> Decimal:
        return Decimal(text.replace(",", ""))

    def day(text: str) -> date:
        return datetime.strptime(text, "%d/%m/%Y").date()

    return [
        {
            "asset": m["asset"],
            "day": day(m["day"]),
            "rule": RULES[m["rule"]],
            "bought": day(m["bought"]) if m["bought"] else None,
            "quantity": euros(m["quantity"]),
            **{field: euros(m[field]) for field in ("cost", "fees", "proceeds", "gain")},
        }
        for m in BITTYTAX_DISPOSAL.finditer(output)
    ]


def tax_year_of(day: date) -> int:
    """The UK tax year a day is in, by the year it starts in (6 April)."""
    return day.year if day >= date(day.year, 4, 6) else day.year - 1


@dataclass(frozen=True)
class UkYear:
    bittytax: Path  # the year's BittyTax file
    gains: list[dict[str, str]]  # the year's rows of `tally export gains --method uk`
    summary: dict[str, Any]  # the year's uk summary figures


@pytest.fixture(scope="module")
def uk_tax_years(
    priced: Settings,
    priced_book: PriceBook,
    uk: Path,
    uk_before: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[int, UkYear]:
    """Every demo UK tax year with a disposal: its BittyTax file, its rows of
    `tally export gains --method uk` (the year's rows of the whole history's schedule) and its
    summary (for 2024/25 and 2023/24 the `uk` and `uk_before` fixtures' own --year exports)."""
    directory = tmp_path_factory.mktemp("uk-years")
    run_export(priced, directory, ("gains",), priced_book, method="uk")
    _, rows = read(only(directory, "gains-all-*.csv"))
    by_year: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_year[tax_year_of(date.fromisoformat(row["date"]))].append(row)
    _, year_rows = read(only(uk, "gains-*.csv"))
    assert year_rows == by_year[YEAR]  # the --year export is the year's rows of the whole
    found = {}
    shared = {YEAR: uk, YEAR - 1: uk_before}
    for year, gains in sorted(by_year.items()):
        where = shared.get(year, directory / str(year))
        if year not in shared:
            run_export(priced, where, ("bittytax", "summary"), priced_book, year=year, method="uk")
        sidecar = json.loads(only(where, "summary-*.json").read_text(encoding="utf-8"))
        summary = {k: f["value"] for k, f in sidecar["totals"]["figures"].items()}
        found[year] = UkYear(only(where, "bittytax-*.csv"), gains, summary)
    return found


def test_bittytax_states_tallys_uk_computation_of_every_disposal_day_of_every_demo_tax_year(
    uk_tax_years: dict[int, UkYear],
    bittytax: RunBittyTax,
) -> None:
    """BittyTax 0.6.0 on each year's UK file states every part of every day's disposal as
    `tally export gains --method uk` does: the same rule, acquisition day and quantity, the same
    proceeds, cost, fees and gain, to the penny; so the same gain on every disposal day, exactly,
    and the same SA108 totals as tally's uk summary. BittyTax treats a token's disposals of a day
    as one (pool_same_day), splits it by quantity between the rules, and states each part with
    its proceeds, cost (without incidental costs) and fees (incidental costs of acquisition and
    disposal) each rounded half to even to the penny (tax_event.py: quantize(Decimal("0.00")),
    Python's default rounding); tally's stated figures are its exact ones so rounded."""
    version = subprocess.run([str(BITTYTAX), "--version"], capture_output=True, text=True)
    assert "0.6.0" in version.stdout + version.stderr
    assert sorted(uk_tax_years) == [2020, 2023, 2024]  # the demo's years with disposals
    penny = Decimal("0.01")
    bought_after_the_year = 0
    for year, found in uk_tax_years.items():
        done = bittytax(found.bittytax, year + 1)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert f"calculating tax year {year}/{(year + 1) % 100:02d}" in output
        assert "integrity check: passed" in output
        assert "WARNING" not in output and "ERROR" not in output, output[-3000:]
        disposals = bittytax_disposals(output)
        stated = re.search(r"^Number of disposals:\s+(\d+)$", output, re.M)
        assert stated and int(stated.group(1)) == len(disposals) > 0  # every row was read
        assert {g["match_type"] for g in found.gains} <= set(RULES.values())

        with localcontext() as exact:
            exact.prec = 200
            ours: dict[tuple[date, str, str, date | None], tuple[Decimal, ...]] = {}
            for g in found.gains:
                figures = [Decimal(g[f]) for f in ("proceeds", "cost", "fees")]
                exact_figures = [Decimal(g[f"exact_{f}"]) for f in ("proceeds", "cost", "fees")]
                # stated: the exact figure rounded half to even to the penny
                assert figures == [
                    e.quantize(penny, rounding=ROUND_HALF_EVEN) for e in exact_figures
                ], g
                assert Decimal(g["gain"]) == figures[0] - figures[1] - figures[2], g
                assert Decimal(g["exact_gain"]) == exact_figures[0] - sum(exact_figures[1:]), g
                # a 30-day part is the day's match with one day's acquisitions: its lots' day
                bought = None
                if g["match_type"] == "bed-and-breakfast":
                    bought = date.fromisoformat(g["lots"][:10])
                    assert {lot[:10] for lot in g["lots"].split("; ")} == {g["lots"][:10]}
                key = (date.fromisoformat(g["date"]), g["asset"], g["match_type"], bought)
                assert key not in ours, key
                ours[key] = (number(g["quantity"]), *figures, Decimal(g["gain"]))
            theirs = {}
            for d in disposals:
                key = (d["day"], d["asset"], d["rule"], d["bought"])
                assert key not in theirs, key
                theirs[key] = tuple(d[f] for f in ("quantity", "proceeds", "cost", "fees", "gain"))
                if d["bought"] is not None and tax_year_of(d["bought"]) > year:
                    bought_after_the_year += 1
            assert theirs == ours, year

            days: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
            for g in found.gains:
                days[date.fromisoformat(g["date"])]["ours"] += Decimal(g["gain"])
            for d in disposals:
                days[d["day"]]["theirs"] += d["gain"]
            for day, t in sorted(days.items()):
                assert t["theirs"] == t["ours"], (day, t)  # to the penny, no tolerance

            # SA108: tally's summary sums the same rows as BittyTax's report does
            summary = found.summary
            assert bittytax_amount(output, "Disposal proceeds:") == Decimal(
                summary["disposal_proceeds"]
            )
            assert bittytax_amount(output, "Allowable costs (including the") == Decimal(
                summary["allowable_costs"]
            )
            # BittyTax counts each part's gain or loss, tally nets a token's day (s.105): the
            # totals differ, their difference does not
            assert bittytax_amount(output, "Gains in the year, before losses:") - bittytax_amount(
                output, "Losses in the year:"
            ) == Decimal(summary["net_gain"])
    # a disposal matched with an acquisition after its tax year's end (the file reaches 30 days
    # past the year): the case a file cut at the year's end gets wrong
    assert bought_after_the_year > 0


# --- failures, the CLI and the demo --------------------------------------------------------------


def test_a_missing_price_is_listed_and_nothing_that_needed_it_is_written(
    raw: Settings,
    unpriced: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = raw.data_dir / "export.toml"
    out = tmp_path / "out"
    code = main(["export", "all", "--year", str(YEAR), "--config", str(config), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    missing = [r for r in unpriced if r["kind"] in ("withdrawal", "withdrawal_fee")]
    assert missing
    for row in missing:
        assert f"{row['asset']} at {row['executed_at'].astimezone(UTC).isoformat()}" in captured.err
    for name in ("gains", "income", "bittytax"):
        assert f"{name}: NOT WRITTEN" in captured.err
        assert not list(out.glob(f"{name}-*"))
    for name in ("ledger", "holdings", "koinly", "cointracking"):
        assert list(out.glob(f"{name}-*.json")), name
        assert str(only(out, f"{name}-*.json")) in captured.out


def test_tally_export_options(
    priced: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(priced.data_dir / "export.toml")
    target = tmp_path / "my-gains.csv"
    args = ["export", "gains", "--year", str(YEAR), "--method", "de", "--config", config]
    assert main([*args, "--out", str(target)]) == 0
    header, rows = read(target)
    assert header == COLUMNS["gains"] and rows
    sidecar = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))
    assert (sidecar["method"], sidecar["files"][0]["name"]) == ("de", target.name)
    capsys.readouterr()
    # This lake landed no GBP-EUR candles: a GBP export names the missing prices, writes nothing.
    assert main([*args, "--currency", "GBP", "--out", str(tmp_path / "gbp")]) == 1
    assert "GBP" in capsys.readouterr().err
    assert not (tmp_path / "gbp").exists()
    assert main([*args, "--timezone", "Mars/Olympus", "--out", str(tmp_path / "tz")]) == 2
    assert "Mars/Olympus" in capsys.readouterr().err
    holdings = ["export", "holdings", "--date", f"{YEAR}-07-01", "--config", config]
    assert main([*holdings, "--out", str(tmp_path)]) == 0
    assert {r["date"] for r in read(only(tmp_path, "holdings-*.csv"))[1]} == {f"{YEAR}-07-01"}


def test_the_demo_writes_every_export_of_the_last_full_year(
    demo_export: DemoExport,
    raw: Settings,
    unpriced: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert demo_export.ok is True
    written = sorted(demo_export.directory.iterdir())
    assert len(written) == 15
    for path in written:
        assert str(path) in demo_export.printed
    settings = Settings(data_dir=tmp_path)
    shutil.copy(raw.warehouse_path, settings.warehouse_path)
    assert export_year(settings, YEAR) is False
    printed = capsys.readouterr().out
    assert "gains: NOT WRITTEN" in printed and "bittytax: NOT WRITTEN" in printed
    for row in unpriced:
        if row["kind"] == "withdrawal":
            assert f"{row['asset']} at {row['executed_at'].astimezone(UTC).isoformat()}" in printed


def test_yearly_totals_in_the_sidecar_are_exact_sums_of_the_rows(fifo: Path) -> None:
    """Python's default 28 significant digits would round these totals; they must not."""
    csv_path = only(fifo, "gains-*.csv")
    _, rows = read(csv_path)
    sidecar = json.loads(csv_path.with_suffix(".json").read_text())
    with localcontext() as exact:
        exact.prec = 200
        for field in ("proceeds", "cost", "fees", "gain"):
            expected = sum((number(row[field]) for row in rows), Decimal(0))
            assert number(sidecar["totals"]["years"][str(YEAR)][field]) == expected, field
    assert len(str(expected).replace("-", "").replace(".", "")) > 20  # long enough to matter


# --- one read of the ledger, every order the exports need --------------------------------------


def sql_ordered(connection: duckdb.DuckDBPyConnection, sql: str) -> list[LedgerRow]:
    return [LedgerRow(*row) for row in connection.execute(sql).fetchall()]


def test_one_read_of_the_demo_ledger_gives_every_order_sql_gives(priced: Settings) -> None:
    """An export run reads `ledger` and `internal_transfers` once (`History`) and derives the
    period's rows, the history's and the listing order in Python: on the demo-seed lake they
    are exactly the rows, in exactly the order, that SQL's WHERE and ORDER BY give."""
    columns = ", ".join(LEDGER_COLUMNS)
    london = ZoneInfo("Europe/London")
    bounds = [
        (None, None),
        (start_of(YEAR), start_of(YEAR + 1)),
        (None, start_of(YEAR)),
        (datetime(YEAR, 4, 6, tzinfo=london), datetime(YEAR + 1, 5, 7, tzinfo=london)),
        (start_of(YEAR + 1), None),
    ]
    with connect(priced.data_dir) as connection:
        history = History.read(connection)
        engine = f"select {columns} from ledger order by {LEDGER_ORDER}"
        assert history.ledger == sql_ordered(connection, engine)
        listing = sorted(history.ledger, key=listing_key)
        assert len(listing) > 8000
        for start, end in bounds:
            # the SQL the exports ran per period before
            assert between(listing, start, end) == listed(connection, start, end)
        [(last,)] = connection.execute("select max(executed_at) from ledger").fetchall()
        assert history.last_movement() == last
        matched = connection.execute(
            "select withdrawal_id from internal_transfers where status = 'matched' "
            "order by withdrawn_at, withdrawal_exchange, withdrawal_account, withdrawal_id"
        ).fetchall()
        assert len(matched) >= 2
        assert [t.withdrawal_id for t in history.matched()] == [m for (m,) in matched]


def test_the_listing_key_orders_nulls_text_and_decimals_as_sql() -> None:
    """`listing_key` is SQL's `order by LISTING_ORDER` (ascending, NULLS LAST, text by its UTF-8
    bytes) on rows that differ in one column at a time: NULL, empty, case, accents, digits as
    text, Decimals of different scales and signs, equal times in two zones."""
    at = datetime(2024, 3, 1, 12, tzinfo=UTC)
    texts = [None, "", "B", "a", "b", "é", "Z", "10", "9", "_", "a b", "ab"]
    base = ("bitstamp", "main", "BTC", Decimal(1), "fee", at, "7", "s", "k", "t", None, None, 1)
    variants: list[tuple[int, list[Any]]] = [
        *((column, texts) for column in (0, 1, 2, 4, 6, 7)),  # exchange … kind, reference, source
        (3, [Decimal(a) for a in ("-1", "-0.5", "0", "1E-18", "0.5", "10", "2")]),
        (5, [None, at - timedelta(microseconds=1), at.astimezone(ZoneInfo("Asia/Tokyo"))]),
        (12, [None, 3, -1, 2]),  # leg
    ]
    rows = []
    for column, values in variants:
        for value in values:
            row = list(base)
            row[column] = value
            rows.append(tuple(row))
    columns = ", ".join(LEDGER_COLUMNS)
    with duckdb.connect() as connection:
        connection.execute(view_tables.LEDGER)
        connection.executemany(f"insert into ledger values ({', '.join('?' * 13)})", rows)
        # every row distinct in the order's columns: no ties (whose order SQL leaves open)
        distinct = f"select count(distinct ({LISTING_ORDER})) = count(*) from ledger"
        assert connection.execute(distinct).fetchone() == (True,)
        expected = sql_ordered(connection, f"select {columns} from ledger order by {LISTING_ORDER}")
        shuffled = sql_ordered(connection, f"select {columns} from ledger order by random()")
    assert len(expected) == 6 * len(texts) + 7 + 3 + 4
    assert sorted(shuffled, key=listing_key) == expected
