"""Warehouse rows read back into Python: one typed class per model, with its reader.

Each class holds a view's row as DuckDB returns it (a NULL stays None); what a caller makes of
it (trailing zeros dropped, times in UTC, empty text for NULL) it does on its side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

import duckdb


@dataclass(frozen=True)
class LedgerRow:
    """One row of the `ledger` view (sql/060_ledger.sql): one asset moved by one source row."""

    exchange: str
    account: str
    asset: str
    amount: Decimal  # signed: positive credits the account
    kind: str
    executed_at: datetime
    reference: str
    source: str | None
    event_kind: str | None
    event_type: str | None
    market: str | None
    sequence: int | None
    leg: int

    @property
    def wallet(self) -> str:
        return f"{self.exchange}/{self.account}"


LEDGER_COLUMNS = tuple(field.name for field in fields(LedgerRow))


def ledger_rows(
    connection: duckdb.DuckDBPyConnection,
    *,
    order_by: str,
    where: str = "",
    params: Sequence[object] = (),
) -> list[LedgerRow]:
    """`select … from ledger [where …] order by …` as rows."""
    condition = f"where {where} " if where else ""
    result = connection.execute(
        f"select {', '.join(LEDGER_COLUMNS)} from ledger {condition}order by {order_by}",
        list(params),
    ).fetchall()
    return [
        LedgerRow(exchange, account, asset, Decimal(amount), kind, at, str(reference), *rest)
        for exchange, account, asset, amount, kind, at, reference, *rest in result
    ]


@dataclass(frozen=True)
class InternalTransfer:
    """One row of `internal_transfers` (sql/100_internal_transfers.sql): a matched pair of own
    transfers, or one unmatched side (the other side's columns NULL)."""

    status: str
    asset: str
    withdrawal_exchange: str | None
    withdrawal_account: str | None
    withdrawal_id: str | None
    withdrawn_at: datetime | None
    withdrawn: Decimal | None
    sent: Decimal | None
    deposit_exchange: str | None
    deposit_account: str | None
    deposit_id: str | None
    deposited_at: datetime | None
    received: Decimal | None
    txid: str | None


def internal_transfers(connection: duckdb.DuckDBPyConnection) -> list[InternalTransfer]:
    """Every row, in the view's own order."""
    columns = ", ".join(field.name for field in fields(InternalTransfer))
    rows = connection.execute(f"select {columns} from internal_transfers").fetchall()
    return [InternalTransfer(*row) for row in rows]


@dataclass(frozen=True)
class Verdict:
    """One row of `reconcile_balances` (sql/080_reconcile_balances.sql)."""

    exchange: str
    account: str
    asset: str
    reported: Decimal
    computed: Decimal
    difference: Decimal
    status: str
    diverged_after: str | None
    diverged_after_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def reconciliation(connection: duckdb.DuckDBPyConnection) -> list[Verdict]:
    """Every row, by exchange, account and asset."""
    rows = connection.execute(
        "select exchange, account, asset, reported, computed, difference, status, "
        "diverged_after, diverged_after_at from reconcile_balances "
        "order by exchange, account, asset"
    ).fetchall()
    return [Verdict(*row) for row in rows]
