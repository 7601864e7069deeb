"""The views a computation reads the history from, `ledger` and `internal_transfers`, read once:
`History.read(connection)`. The events, the holdings of any day and the exports' listings are
all derived from the same rows, so that one export run reads each view once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from warehouse.rows import InternalTransfer, LedgerRow, internal_transfers, ledger_rows

# The engine's order of the ledger (its events are built in it).
LEDGER_ORDER = "executed_at, exchange, account, sequence nulls last, reference, leg, asset"


@dataclass(frozen=True)
class History:
    """Every row of `ledger` (in LEDGER_ORDER) and of `internal_transfers` (in the view's order),
    as DuckDB returns them."""

    ledger: list[LedgerRow]
    transfers: list[InternalTransfer]

    @classmethod
    def read(cls, connection: duckdb.DuckDBPyConnection) -> History:
        return cls(ledger_rows(connection, order_by=LEDGER_ORDER), internal_transfers(connection))

    def last_movement(self) -> datetime | None:
        """`max(executed_at)` of the ledger."""
        return max((r.executed_at for r in self.ledger if r.executed_at is not None), default=None)

    def matched(self) -> list[InternalTransfer]:
        """The matched pairs, ordered by withdrawn_at, withdrawal_exchange, withdrawal_account,
        withdrawal_id (as SQL orders them)."""
        pairs = [t for t in self.transfers if t.status == "matched"]
        return sorted(
            pairs,
            key=lambda t: sql_key(
                (t.withdrawn_at, t.withdrawal_exchange, t.withdrawal_account, t.withdrawal_id)
            ),
        )


def between(
    rows: Iterable[LedgerRow], start: datetime | None, end: datetime | None
) -> list[LedgerRow]:
    """The rows with start <= executed_at < end (as SQL: a NULL time is outside any bound)."""
    if start is None and end is None:
        return list(rows)
    return [
        row
        for row in rows
        if row.executed_at is not None
        and (start is None or row.executed_at >= start)
        and (end is None or row.executed_at < end)
    ]


def sql_key(values: Iterable[Any]) -> tuple[tuple[bool, Any], ...]:
    """A sort key that orders as DuckDB's `order by` does by default (ascending, NULLS LAST):
    text by its bytes (Python's code point order is UTF-8's byte order), numbers, Decimals and
    times by value."""
    return tuple([(value is None, value) for value in values])
