"""What every format reads, loaded once per export run and shared (`tally export all` computes
the cost basis once for gains and income)."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property

import duckdb

from warehouse.costbasis.history import History, between
from warehouse.costbasis.model import Result
from warehouse.costbasis.prices import PriceBook
from warehouse.exports.options import ExportOptions, Period
from warehouse.exports.pricing import Prices
from warehouse.exports.transactions import (
    Transaction,
    Transfer,
    listing_key,
    own_transfers,
    transactions,
)
from warehouse.rows import LedgerRow


class Context:
    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        options: ExportOptions,
        *,
        loaded: PriceBook | None = None,
    ) -> None:
        """`loaded`: the `prices` view already read (`PriceBook.load`, in the options' currency
        with the default staleness), so that several runs over one warehouse read it once."""
        self.connection = connection
        self.options = options
        self.period: Period = options.period
        self._loaded = loaded
        self._ledger: dict[bool, list[LedgerRow]] = {}
        self._transactions: dict[bool, list[Transaction]] = {}

    @cached_property
    def prices(self) -> Prices:
        return Prices(self.connection, self.options.currency, loaded=self._loaded)

    @cached_property
    def history(self) -> History:
        """The `ledger` and `internal_transfers` views, read once for every format."""
        return History.read(self.connection)

    @cached_property
    def transfers(self) -> dict[tuple[str, str, str], Transfer]:
        return own_transfers(self.history.transfers)

    @cached_property
    def listing(self) -> list[LedgerRow]:
        """Every ledger row, in the order the exports list them (LISTING_ORDER)."""
        return sorted(self.history.ledger, key=listing_key)

    def ledger(self, *, history: bool = False) -> list[LedgerRow]:
        """The period's ledger rows (with `history`: everything before the period's end too)."""
        if history not in self._ledger:
            start = None if history else self.period.start_at
            self._ledger[history] = self.ledger_until(self.period.end_at, start=start)
        return self._ledger[history]

    def ledger_until(
        self, end: datetime | None, *, start: datetime | None = None
    ) -> list[LedgerRow]:
        """The ledger rows with start <= executed_at < end, in LISTING_ORDER."""
        return between(self.listing, start, end)

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
            self.connection,
            currency=self.options.currency,
            loaded=self.prices.book,
            history=self.history,
        )
        return compute(
            events, method=self.options.method, lots=self.options.lots, timezone=self.period.zone
        )

    def last_movement(self) -> datetime | None:
        return self.history.last_movement()
