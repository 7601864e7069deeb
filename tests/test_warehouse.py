"""The warehouse over a lake synced from the sandbox: every reported balance reconciles exactly
with the ledger replayed from the lake (the simulated accounts are the truth), a row taken out
of a copy of the lake is found (exact difference, and where it went missing), the recorded real
Bitstamp ledger replays to zero, and the catalog opens in the `duckdb` shell."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lake_edits import lake_copy, rewrite
from sandbox_fixtures import world_fixture
from synced_lake import Accounts, Candles, SyncedLakeFactory, Trades
from warehouse_build import build
from warehouse_query import close_reader, rows

from pipelines.cli import main
from pipelines.config import Settings
from pipelines.config_file import write_config
from pipelines.datasets import BITSTAMP_LEDGER
from pipelines.exchanges.bitstamp_parse import parse_user_transactions
from pipelines.exchanges.records import LedgerEntry
from pipelines.lake import Lake
from pipelines.sandbox.world import World

NOW = datetime(2024, 6, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 60
SEED = 7
WAREHOUSE = Path(__file__).resolve().parents[1] / "warehouse"
DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"


def utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def verdicts(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["exchange"], r["asset"]): r for r in rows(settings, "select * from reconcile_balances")
    }


# --- the synced lake ---------------------------------------------------------------------------


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module")
def synced(synced_lake: SyncedLakeFactory, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Both accounts, 1h candles and a little public trades synced at a frozen NOW, then built
    (a copy of the shared lake: tests here build the catalog again)."""
    lake = synced_lake(
        seed=SEED, days=DAYS, now=NOW, what=(Accounts(), Candles(), Trades(timedelta(hours=2)))
    )
    return lake.copy(tmp_path_factory.mktemp("warehouse") / "synced").settings


# --- truth from the simulated accounts -------------------------------------------------------


def bitstamp_truth(world: World, at_ms: int) -> dict[str, Decimal]:
    return {c.upper(): v for c, v in world.bitstamp.balance_at(at_ms).items()}


@dataclass(frozen=True)
class Movement:
    ts_ms: int
    entry_id: int
    delta: Decimal  # the entry's whole effect on the currency (fee included)
    moved: Decimal  # the currency column alone (what the ledger books before the fee)
    type_code: int


def bitstamp_movements(world: World) -> dict[str, list[Movement]]:
    by_currency: dict[str, list[Movement]] = defaultdict(list)
    for entry, entry_id in zip(world.bitstamp.entries, world.bitstamp.ids, strict=True):
        for currency, delta in entry.effect().items():
            moved = entry.moves.get(currency, Decimal(0))
            by_currency[currency.upper()].append(
                Movement(entry.ts_ms, entry_id, delta, moved, entry.type_code)
            )
    return by_currency


def overdrawing_deposit(world: World) -> tuple[str, Movement, Movement]:
    """(currency, deposit, row before it): a Bitstamp deposit without which the very next row
    of its currency would take the balance below zero."""
    for currency, moves in sorted(bitstamp_movements(world).items()):
        balance = Decimal(0)
        for i, move in enumerate(moves[:-1]):
            before = balance
            balance += move.delta
            following = moves[i + 1]
            if (
                move.type_code == 0
                and i > 0
                and moves[i - 1].ts_ms < move.ts_ms < following.ts_ms
                and before + following.moved < 0
            ):
                return currency, move, moves[i - 1]
    raise AssertionError("the world has no deposit whose absence overdraws the next row")


# --- reconciliation on the synced lake ---------------------------------------------------------


def test_every_reported_balance_reconciles_exactly(synced: Settings, world: World) -> None:
    found = verdicts(synced)
    assert {exchange for exchange, _ in found} == {"bitstamp", "bitvavo"}
    truth = {
        "bitstamp": bitstamp_truth(world, NOW_MS),
        "bitvavo": world.bitvavo.totals(NOW_MS),
    }
    for (exchange, asset), row in found.items():
        assert row["status"] == "ok", row
        assert row["difference"] == Decimal(0), row
        assert row["diverged_after"] is None
        # the replayed ledger is the simulated account's own balance, exactly
        assert row["computed"] == truth[exchange].get(asset, Decimal(0)), (exchange, asset)
    held = {(e, a) for e, t in truth.items() for a, v in t.items() if v}
    assert held <= set(found), "a held asset is not reconciled"


def test_fills_list_every_fill_once_in_one_shape(synced: Settings, world: World) -> None:
    fills = rows(synced, "select * from fills")
    keys = [(f["exchange"], f["account"], f["market"], f["fill_id"]) for f in fills]
    assert len(keys) == len(set(keys))
    bitvavo = {f["fill_id"]: f for f in fills if f["exchange"] == "bitvavo"}
    book = {f.fill_id for f in world.bitvavo.fills if f.ts_ms <= NOW_MS}
    app = {i.transaction_id for i in world.bitvavo.items if i.type in ("buy", "sell")}
    assert app and set(bitvavo) == book | app
    assert {bitvavo[i]["source"] for i in app} == {"account/history"}
    assert {bitvavo[i]["source"] for i in book} == {"trades"}
    bitstamp = [f for f in fills if f["exchange"] == "bitstamp"]
    assert len(bitstamp) == sum(e.type_code == 2 for e in world.bitstamp.entries)
    for fill in fills:
        assert fill["side"] in ("buy", "sell")
        assert fill["base_amount"] > 0 and fill["quote_amount"] > 0
    unsettled = [f for f in bitvavo.values() if not f["settled"]]
    assert unsettled and all(f["fee"] is None for f in unsettled)


def test_a_transfer_listed_twice_by_bitvavo_moves_the_balance_once(
    synced: Settings, world: World
) -> None:
    transfers = rows(synced, "select * from transfers where exchange = 'bitvavo'")
    truth = [t for t in world.bitvavo.transfers if t.ts_ms <= NOW_MS]
    assert len(transfers) == len(truth)
    assert all(t["matched_source"] == "account/history" for t in transfers)
    ledger = rows(
        synced,
        "select kind, asset, sum(amount) as total from ledger where exchange = 'bitvavo' "
        "and kind in ('deposit', 'withdrawal', 'withdrawal_fee') group by all",
    )
    totals = {(r["kind"], r["asset"]): r["total"] for r in ledger}
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for t in truth:
        sign = 1 if t.kind == "deposit" else -1
        expected[(t.kind, t.symbol)] += sign * t.amount
        if t.fee:
            expected[(f"{t.kind}_fee", t.symbol)] -= t.fee
    assert totals == dict(expected)


def test_an_order_book_fill_also_in_the_account_history_file_counts_once(
    synced: Settings, tmp_path: Path
) -> None:
    copy = lake_copy(synced, tmp_path)
    directory = copy.lake_dir / "fills" / "exchange=bitvavo" / "account=main"
    book_fill = pl.read_parquet(directory / "trades-BTC-EUR.parquet").head(1)
    assert (
        rewrite(
            directory / "account-history.parquet",
            lambda frame: pl.concat(
                [frame, book_fill.with_columns(pl.lit("account/history").alias("source"))],
                how="vertical_relaxed",
            ),
        )
        == -1
    )
    build(copy)
    (kept,) = rows(
        copy,
        "select count(*) as n, max(source) as source from fills where fill_id = ?",
        book_fill["fill_id"][0],
    )
    assert (kept["n"], kept["source"]) == (1, "trades")  # the order-book row wins
    assert all(v["status"] == "ok" for v in verdicts(copy).values())


# --- a row taken out of a copy of the lake -------------------------------------------------------


def test_a_missing_deposit_is_found_with_its_amount_and_place(
    synced: Settings, world: World, tmp_path: Path
) -> None:
    currency, deposit, before = overdrawing_deposit(world)
    copy = lake_copy(synced, tmp_path)
    directory = copy.lake_dir / "bitstamp_ledger" / "account=main"
    lost = sum(
        rewrite(path, lambda f: f.filter(pl.col("entry_id") != deposit.entry_id))
        for path in directory.glob("*.parquet")
    )
    assert lost == 1
    build(copy)
    found = verdicts(copy)
    row = found[("bitstamp", currency)]
    assert row["status"] == "mismatch"
    assert row["difference"] == deposit.delta  # the deposit net of its fee, exactly
    assert row["computed"] == row["reported"] - deposit.delta
    # it went missing right after the row before it: without it the next row overdraws
    assert row["diverged_after"] == str(before.entry_id)
    assert row["diverged_after_at"] == utc_ms(before.ts_ms)
    assert row["divergence_evidence"] == "negative balance"
    (following,) = rows(
        copy,
        "select executed_at from balances_computed where exchange = 'bitstamp' and asset = ? "
        "and position = ?",
        currency,
        row["diverged_after_position"] + 1,
    )
    assert row["diverged_after_at"] < utc_ms(deposit.ts_ms) <= following["executed_at"]
    assert [k for k, v in found.items() if v["status"] != "ok"] == [("bitstamp", currency)]


def test_a_missing_fill_is_found_with_the_exact_amounts(
    synced: Settings, world: World, tmp_path: Path
) -> None:
    fill = next(
        f
        for f in reversed(world.bitvavo.fills)
        if f.market == "BTC-EUR" and f.side == "buy" and f.settle_ms <= NOW_MS
    )
    copy = lake_copy(synced, tmp_path)
    path = copy.lake_dir / "fills" / "exchange=bitvavo" / "account=main" / "trades-BTC-EUR.parquet"
    assert rewrite(path, lambda f: f.filter(pl.col("fill_id") != fill.fill_id)) == 1
    build(copy)
    found = verdicts(copy)
    assert found[("bitvavo", "BTC")]["difference"] == fill.amount
    assert found[("bitvavo", "EUR")]["difference"] == -(fill.amount * fill.price + fill.fee)
    assert {k for k, v in found.items() if v["status"] != "ok"} == {
        ("bitvavo", "BTC"),
        ("bitvavo", "EUR"),
    }
    for asset in ("BTC", "EUR"):
        row = found[("bitvavo", asset)]
        # the fill belongs after every row before its time: inside the bounds given
        (place,) = rows(
            copy,
            "select count(*) as n from balances_computed where exchange = 'bitvavo' "
            "and asset = ? and executed_at < ?",
            asset,
            utc_ms(fill.ts_ms),
        )
        assert row["diverged_not_before_position"] <= place["n"] <= row["diverged_after_position"]


def test_a_missing_fee_is_found(synced: Settings, world: World, tmp_path: Path) -> None:
    fill = next(
        f
        for f in world.bitvavo.fills
        if f.market == "ADA-EUR" and f.fee > 0 and f.settle_ms <= NOW_MS
    )
    copy = lake_copy(synced, tmp_path)
    path = copy.lake_dir / "fills" / "exchange=bitvavo" / "account=main" / "trades-ADA-EUR.parquet"
    rewrite(
        path,
        lambda f: f.with_columns(
            pl.when(pl.col("fill_id") == fill.fill_id)
            .then(None)
            .otherwise(pl.col("fee"))
            .alias("fee")
        ),
    )
    build(copy)
    found = verdicts(copy)
    assert found[("bitvavo", "EUR")]["difference"] == -fill.fee
    assert [k for k, v in found.items() if v["status"] != "ok"] == [("bitvavo", "EUR")]


# --- the recorded real ledger --------------------------------------------------------------------


def total_fee(entries: Sequence[LedgerEntry], kind: str) -> Decimal:
    """The fees of the `kind` entries, summed in order (each of them states its fee)."""
    total = Decimal(0)
    for entry in entries:
        if entry.kind == kind:
            assert entry.fee is not None, entry
            total += entry.fee
    return total


def test_the_recorded_bitstamp_ledger_replays_to_zero(samples_dir: Path, tmp_path: Path) -> None:
    text = (samples_dir / "recorded" / "bitstamp_user_transactions.json").read_text()
    entries = parse_user_transactions(json.loads(text, parse_float=Decimal), account="main")
    settings = Settings(data_dir=tmp_path / "data")
    Lake(settings.lake_dir).land(
        BITSTAMP_LEDGER.dataset,
        BITSTAMP_LEDGER.frame(entries, fetched_at=datetime(2024, 1, 1, tzinfo=UTC)),
        stem="recorded",
    )
    build(settings)  # every other dataset is empty: their views are empty, typed
    totals = rows(settings, "select asset, sum(amount) as total from ledger group by asset")
    assert {r["asset"]: r["total"] for r in totals} == {"USD": Decimal(0), "BTC": Decimal(0)}
    final = rows(
        settings,
        "select asset, balance from balances_computed "
        "qualify position = max(position) over (partition by asset)",
    )
    assert {r["asset"]: r["balance"] for r in final} == {"USD": Decimal(0), "BTC": Decimal(0)}
    fees = rows(
        settings,
        "select kind, sum(amount) as total from ledger where kind like '%fee' group by kind",
    )
    assert {r["kind"]: r["total"] for r in fees} == {
        "fee": -total_fee(entries, "trade"),
        "deposit_fee": -total_fee(entries, "deposit"),
    }
    assert rows(settings, "select count(*) as n from reconcile_balances") == [{"n": 0}]
    assert rows(settings, "select count(*) as n from candles") == [{"n": 0}]


# --- the catalog file ---------------------------------------------------------------------------


def test_the_duckdb_shell_opens_the_catalog_from_another_directory(
    synced: Settings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell = subprocess.run(
        [
            str(DUCKDB_SHELL),
            "-readonly",
            "-csv",
            "-noheader",
            str(synced.warehouse_path),
            "-c",
            "select count(*) from fills",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    (python,) = rows(synced, "select count(*) as n from fills")
    assert python["n"] > 0
    assert int(shell.stdout.strip()) == python["n"]


def test_no_column_of_any_model_is_floating_point(synced: Settings) -> None:
    columns = rows(
        synced,
        "select table_name, column_name, data_type from duckdb_columns() "
        "where schema_name = 'main' and not internal",
    )
    assert {c["table_name"] for c in columns} >= {
        "candles",
        "fills",
        "ledger",
        "balances_computed",
        "reconcile_balances",
        "prices",
    }
    floating = [c for c in columns if c["data_type"] in ("DOUBLE", "FLOAT", "REAL")]
    assert floating == []
    money = {"amount", "price", "fee", "balance", "reported", "computed", "difference", "close"}
    money |= {"base_amount", "quote_amount", "open", "high", "low", "volume", "balance_change"}
    for column in columns:
        if column["column_name"] in money:
            assert column["data_type"] == "DECIMAL(38,18)", column


def test_build_replaces_the_catalog_whole(synced: Settings) -> None:
    before = synced.warehouse_path.stat().st_ino
    result = build(synced, full=True)
    assert synced.warehouse_path.stat().st_ino != before  # renamed over, not edited in place
    assert result.views[:2] == ("candles", "public_trades")
    leftovers = [p.name for p in synced.data_dir.iterdir() if p.name.startswith(".warehouse")]
    assert leftovers == []
    assert all(v["status"] == "ok" for v in verdicts(synced).values())


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture()
def config(synced: Settings, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "tally.toml"
    write_config(path, {"data_dir": str(synced.data_dir)})
    yield path


def test_tally_warehouse_prints_every_view_and_its_rows(
    config: Path, synced: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    close_reader(synced.data_dir)  # tally counts the rows of the catalog it builds, not a kept one
    assert main(["warehouse", "--config", str(config)]) == 0
    printed = dict(
        line.split()[:2] for line in capsys.readouterr().out.splitlines() if "Warehouse" not in line
    )
    (fills,) = rows(synced, "select count(*) as n from fills")
    assert printed["fills"] == str(fills["n"])
    assert {"ledger", "reconcile_balances", "prices", "coverage"} <= set(printed)


def test_tally_sql_prints_table_csv_and_json(
    config: Path, synced: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    query = (
        "select exchange, asset, reported, difference, status, taken_at "
        "from reconcile_balances order by exchange, asset"
    )
    expected = rows(synced, query)

    assert main(["sql", "--config", str(config), query, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["exchange"], r["asset"], Decimal(r["reported"])) for r in parsed] == [
        (r["exchange"], r["asset"], r["reported"]) for r in expected
    ]
    assert datetime.fromisoformat(parsed[0]["taken_at"]) == expected[0]["taken_at"]

    assert main(["sql", "--config", str(config), query, "--format", "json"]) == 0
    objects = json.loads(capsys.readouterr().out, parse_float=Decimal)
    assert [(o["asset"], o["reported"], o["status"]) for o in objects] == [
        (r["asset"], r["reported"], r["status"]) for r in expected
    ]

    assert main(["sql", "--config", str(config), query]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["exchange", "asset", "reported", "difference", "status", "taken_at"]
    assert len(lines) == len(expected) + 3  # header, rule, rows, count
    assert lines[-1] == f"({len(expected)} rows)"

    assert (
        main(["sql", "--config", str(config), "select * from no_such_view"]) == 2
    )  # a query error
    assert "no_such_view" in capsys.readouterr().err
