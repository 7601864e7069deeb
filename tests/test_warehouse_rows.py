"""`warehouse.rows`: the typed rows of `ledger` and `reconcile_balances`, read the same way by
every reader (exports, cost basis, the verdict), each keeping what it made of them before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest
from view_tables import LEDGER

from warehouse.costbasis.events import _ledger as costbasis_ledger
from warehouse.exports.transactions import ledger_rows as export_ledger_rows
from warehouse.exports.transactions import transactions
from warehouse.rows import LEDGER_COLUMNS, LedgerRow, Verdict, ledger_rows, reconciliation

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A `ledger` and a `reconcile_balances` table with the views' column types."""
    with duckdb.connect(":memory:") as con:
        con.execute("set TimeZone = 'Europe/Amsterdam'")
        con.execute(LEDGER)
        con.execute(
            "insert into ledger values "
            "('bitstamp', 'main', 'BTC', 0.5, 'trade_base', ?, '7', 'user_transactions', "
            "'trade', '2', 'BTC-EUR', 7, 1), "
            "('bitstamp', 'main', 'EUR', -10.25, 'trade_quote', ?, '7', 'user_transactions', "
            "'trade', '2', 'BTC-EUR', 7, 2), "
            "('bitvavo', 'main', 'ETH', 1, 'unknown', ?, 'e1', null, null, null, null, null, 1), "
            "('bitvavo', 'main', 'ETH', -0.000000000000000001, 'fee', ?, 'e1', '', '', '', "
            "null, null, 3)",
            [AT, AT, AT.replace(hour=13), AT.replace(hour=13)],
        )
        con.execute(
            "create table reconcile_balances (exchange varchar, account varchar, asset varchar, "
            "reported decimal(38, 18), computed decimal(38, 18), difference decimal(38, 18), "
            "status varchar, diverged_after varchar, diverged_after_at timestamptz)"
        )
        con.execute(
            "insert into reconcile_balances values "
            "('bitvavo', 'main', 'EUR', 1, 1, 0, 'ok', null, null), "
            "('bitstamp', 'main', 'BTC', 2, 1.5, 0.5, 'mismatch', '7', ?)",
            [AT],
        )
        yield con


def test_ledger_rows_are_typed_and_keep_null(connection: duckdb.DuckDBPyConnection) -> None:
    rows = ledger_rows(connection, order_by="executed_at, leg")
    assert LEDGER_COLUMNS[:4] == ("exchange", "account", "asset", "amount")
    assert len(LEDGER_COLUMNS) == 13
    assert [row.leg for row in rows] == [1, 2, 1, 3]
    first, _, unknown, fee = rows
    assert first.amount == Decimal("0.5")
    assert first.amount.as_tuple().exponent == -18  # DECIMAL(38,18) as DuckDB returns it
    assert first.wallet == "bitstamp/main"
    assert first.executed_at == AT
    assert (unknown.source, unknown.event_kind, unknown.event_type, unknown.market) == (
        None,
        None,
        None,
        None,
    )
    assert unknown.sequence is None
    assert fee.event_kind == ""


def test_ledger_rows_where_and_params(connection: duckdb.DuckDBPyConnection) -> None:
    rows = ledger_rows(connection, where="asset = ? and leg > ?", params=["ETH", 1], order_by="leg")
    assert [(row.asset, row.kind) for row in rows] == [("ETH", "fee")]


def test_exports_read_the_ledger_as_is_and_group_null_with_empty(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    rows = export_ledger_rows(connection, AT.replace(hour=13))
    assert all(isinstance(row, LedgerRow) for row in rows)
    assert [row.kind for row in rows] == ["fee", "unknown"]  # source "" before NULL
    assert rows[0].amount == Decimal("-0.000000000000000001")
    [tx] = transactions(rows)  # a NULL source/event kind groups with the empty one
    assert (tx.source, tx.event_kind, tx.event_type) == ("", "", "")
    assert [(m.asset, m.quantity) for m in tx.fees] == [("ETH", Decimal("1E-18"))]


def test_costbasis_reads_tidy_amounts_in_utc(connection: duckdb.DuckDBPyConnection) -> None:
    rows = costbasis_ledger(connection)
    assert [str(row.amount) for row in rows] == ["0.5", "-10.25", "1", "-1E-18"]
    assert all(row.executed_at.tzinfo is UTC for row in rows)
    assert rows[2].event_kind is None


def test_reconciliation_rows(connection: duckdb.DuckDBPyConnection) -> None:
    mismatch, ok = reconciliation(connection)
    assert isinstance(ok, Verdict) and ok.ok and ok.diverged_after is None
    assert (mismatch.exchange, mismatch.difference, mismatch.ok) == (
        "bitstamp",
        Decimal("0.500000000000000000"),
        False,
    )
    assert mismatch.diverged_after_at == AT
