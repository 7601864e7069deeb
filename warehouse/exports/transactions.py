"""The ledger regrouped into transactions: what one source row did to one account.

The `ledger` view has one row per asset moved; the third-party formats want one line per trade,
transfer or reward, with what was sent, what was received and the fee. A transaction is every
ledger row of one (exchange, account, source, reference, event kind). Quantities are unsigned:

    for each asset, sum(received) - sum(sent) - sum(fees) == the ledger's movements

exactly, so a file built from transactions ties out to the ledger. A rebate (a negative fee, a
Bitvavo maker rebate) is folded into the leg of its own asset (more received, or less sent)
and is otherwise received on its own. Deposits and withdrawals carry what `internal_transfers`
knows: whether they were moved between the user's own accounts, the other side, and the txid.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from warehouse.costbasis.history import sql_key
from warehouse.rows import InternalTransfer, LedgerRow
from warehouse.rows import ledger_rows as read_ledger

ZERO = Decimal(0)
TRADE_KINDS = frozenset({"trade_base", "trade_quote"})
FEE_KINDS = frozenset({"fee", "deposit_fee", "withdrawal_fee"})


# The order of the ledger rows the exports list (a total order); `listing_key` is the same order
# in Python, for rows already read.
LISTING_ORDER = "executed_at, exchange, account, reference, source, leg, asset, kind, amount"


def listing_key(row: LedgerRow) -> tuple[tuple[bool, Any], ...]:
    return sql_key(
        (
            row.executed_at,
            row.exchange,
            row.account,
            row.reference,
            row.source,
            row.leg,
            row.asset,
            row.kind,
            row.amount,
        )
    )


def ledger_rows(
    connection: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[LedgerRow]:
    """Ledger rows with start <= executed_at < end, in LISTING_ORDER."""
    clauses, params = [], []
    if start is not None:
        clauses.append("executed_at >= ?")
        params.append(start)
    if end is not None:
        clauses.append("executed_at < ?")
        params.append(end)
    return read_ledger(
        connection, where=" and ".join(clauses), params=params, order_by=LISTING_ORDER
    )


@dataclass(frozen=True)
class Movement:
    asset: str
    quantity: Decimal  # > 0


@dataclass(frozen=True)
class Transfer:
    """What `internal_transfers` says of a deposit or withdrawal."""

    own: bool  # moved between the user's own accounts (matched)
    txid: str | None
    counterpart: str | None  # the other side's wallet ("exchange/account") when own


@dataclass(frozen=True)
class Transaction:
    exchange: str
    account: str
    at: datetime
    reference: str
    source: str
    category: str  # trade, deposit, withdrawal, reward, staking, fee, fee_rebate, or a ledger kind
    event_kind: str
    event_type: str
    market: str | None
    sent: tuple[Movement, ...]
    received: tuple[Movement, ...]
    fees: tuple[Movement, ...]
    transfer: Transfer | None = None

    @property
    def wallet(self) -> str:
        return f"{self.exchange}/{self.account}"

    @property
    def sort_key(self) -> tuple[datetime, str, str, str, str, str]:
        return (self.at, self.exchange, self.account, self.reference, self.source, self.event_kind)

    def describe(self) -> str:
        """'bitstamp trade BTC-EUR (user_transactions 123456)'."""
        what = (
            self.category
            if self.category == self.event_kind
            else (f"{self.category} ({self.event_kind})" if self.event_kind else self.category)
        )
        market = f" {self.market}" if self.market else ""
        return f"{self.exchange} {what}{market}: {self.source} {self.reference}"

    def transfer_note(self) -> str:
        """`describe()` and what `internal_transfers` knows: "…; own transfer to bitvavo/main;
        txid abc"."""
        note = self.describe()
        if self.transfer is not None:
            if self.transfer.own:
                direction = "to" if self.category == "withdrawal" else "from"
                note += f"; own transfer {direction} {self.transfer.counterpart}"
            if self.transfer.txid:
                note += f"; txid {self.transfer.txid}"
        return note


def own_transfers(rows: Iterable[InternalTransfer]) -> dict[tuple[str, str, str], Transfer]:
    """(exchange, account, transfer id) -> Transfer, for every balance-moving transfer (`rows`:
    `internal_transfers`, in the view's order)."""
    found: dict[tuple[str, str, str], Transfer] = {}
    for row in rows:
        own = row.status == "matched"
        if row.withdrawal_id is not None:
            counterpart = f"{row.deposit_exchange}/{row.deposit_account}" if own else None
            key = (str(row.withdrawal_exchange), str(row.withdrawal_account), row.withdrawal_id)
            found[key] = Transfer(own, row.txid, counterpart)
        if row.deposit_id is not None:
            counterpart = f"{row.withdrawal_exchange}/{row.withdrawal_account}" if own else None
            key = (str(row.deposit_exchange), str(row.deposit_account), row.deposit_id)
            found[key] = Transfer(own, row.txid, counterpart)
    return found


def transactions(
    rows: Iterable[LedgerRow], transfers: dict[tuple[str, str, str], Transfer] | None = None
) -> list[Transaction]:
    """Group ledger rows into transactions, sorted by time then identity (a NULL source or
    event kind is the empty text)."""
    groups: dict[tuple[str, str, str, str, str], list[LedgerRow]] = defaultdict(list)
    for row in rows:
        key = (row.exchange, row.account, row.source or "", row.reference, row.event_kind or "")
        groups[key].append(row)
    result = [_transaction(group, transfers or {}) for group in groups.values()]
    return sorted(result, key=lambda t: t.sort_key)


def _transaction(
    rows: Sequence[LedgerRow], transfers: dict[tuple[str, str, str], Transfer]
) -> Transaction:
    first = min(rows, key=lambda r: (r.executed_at, r.leg))
    flows: dict[str, Decimal] = defaultdict(lambda: ZERO)  # signed, fees excluded
    fees: dict[str, Decimal] = defaultdict(lambda: ZERO)
    rebates: dict[str, Decimal] = defaultdict(lambda: ZERO)
    kinds: set[str] = set()
    for row in rows:
        if row.kind in FEE_KINDS:
            if row.amount < 0:
                fees[row.asset] += -row.amount
            elif row.amount > 0:
                rebates[row.asset] += row.amount
        else:
            kinds.add(row.kind)
            flows[row.asset] += row.amount
    for asset, rebate in rebates.items():
        # a rebate makes the leg of its asset larger (received) or smaller (sent)
        flows[asset] += rebate
    category = _category(kinds, bool(fees), bool(rebates))
    transfer = None
    if category in ("deposit", "withdrawal"):
        transfer = transfers.get((first.exchange, first.account, first.reference))
    return Transaction(
        exchange=first.exchange,
        account=first.account,
        at=first.executed_at,
        reference=first.reference,
        source=first.source or "",
        category=category,
        event_kind=first.event_kind or "",
        event_type=first.event_type or "",
        market=next((r.market for r in rows if r.market), None),
        sent=_movements({a: -q for a, q in flows.items() if q < 0}),
        received=_movements({a: q for a, q in flows.items() if q > 0}),
        fees=_movements(fees),
        transfer=transfer,
    )


def _category(kinds: set[str], paid: bool, rebated: bool) -> str:
    if kinds & TRADE_KINDS:
        return "trade"
    if len(kinds) == 1:
        return next(iter(kinds))
    if kinds:
        return "+".join(sorted(kinds))
    return "fee" if paid or not rebated else "fee_rebate"


def _movements(amounts: dict[str, Decimal]) -> tuple[Movement, ...]:
    return tuple(Movement(asset, q) for asset, q in sorted(amounts.items()) if q != 0)
