"""What every format reads, loaded once per export run and shared (`tally export all` computes
the cost basis once for gains and income)."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property

import duckdb

from warehouse.costbasis.model import Result
from warehouse.exports.options import ExportOptions, Period
from warehouse.exports.pricing import Prices
from warehouse.exports.transactions import (
    Transaction,
    Transfer,
    ledger_rows,
    own_transfers,
    transactions,
)
from warehouse.rows import LedgerRow


class Context:
    def __init__(self, connection: duckdb.DuckDBPyConnection, options: ExportOptions) -> None:
        self.connection = connection
        self.options = options
        self.period: Period = options.period
        self._ledger: dict[bool, list[LedgerRow]] = {}
        self._transactions: dict[bool, list[Transaction]] = {}

    @cached_property
    def prices(self) -> Prices:
        return Prices(self.connection, self.options.currency)

    @cached_property
    def transfers(self) -> dict[tuple[str, str, str], Transfer]:
        return own_transfers(self.connection)

    def ledger(self, *, history: bool = False) -> list[LedgerRow]:
        """The period's ledger rows (with `history`: everything before the period's end too)."""
        if history not in self._ledger:
            start = None if history else self.period.start_at
            self._ledger[history] = ledger_rows(self.connection, start, self.period.end_at)
        return self._ledger[history]

    def transactions(self, *, history: bool = False) -> list[Transaction]:
        if history not in self._transactions:
            self._transactions[history] = transactions(self.ledger(history=history), self.transfers)
        return self._transactions[history]

    @cached_property
    def result(self) -> Result:
        """The cost basis of the whole history (a period's disposals need the lots before it)."""
        from warehouse.costbasis import compute
        from warehouse.costbasis.events import events_from_warehouse

        events = events_from_warehouse(
            self.connection, currency=self.options.currency, loaded=self.prices.book
        )
        return compute(
            events, method=self.options.method, lots=self.options.lots, timezone=self.period.zone
        )

    def last_movement(self) -> datetime | None:
        row = self.connection.execute("select max(executed_at) from ledger").fetchone()
        return row[0] if row else None
