"""Koinly's universal CSV: one file per account, so that Koinly sees each as its own wallet.

Columns (Koinly's documented universal template): Date, Sent Amount, Sent Currency, Received
Amount, Received Currency, Fee Amount, Fee Currency, Net Worth Amount, Net Worth Currency, Label,
Description, TxHash. Dates are UTC, 'YYYY-MM-DD HH:MM:SS UTC'. A fee is paid on top of what was
sent: per asset, received - sent - fee equals the ledger's movements of that account. Labels:
'reward' (staking, referral and other rewards), 'add to pool' / 'remove from pool' (coins moved
into and out of the exchange's staking), 'cost' (a fee charged on its own), 'fee refund' (a
rebate on its own); trades, deposits and withdrawals carry none. A transfer between the user's own
accounts is a plain send on one file and a plain receive on the other, with the same TxHash
(the on-chain txid), which is how Koinly pairs them. Net Worth is the transaction's value in
the reporting currency, left empty (for Koinly to price) where the warehouse has no price.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from warehouse.exports.context import Context
from warehouse.exports.text import plain, seconds_utc
from warehouse.exports.transactions import Movement, Transaction
from warehouse.exports.valuation import fee_value, transaction_value
from warehouse.exports.writer import Export, Table

COLUMNS = (
    "Date",
    "Sent Amount",
    "Sent Currency",
    "Received Amount",
    "Received Currency",
    "Fee Amount",
    "Fee Currency",
    "Net Worth Amount",
    "Net Worth Currency",
    "Label",
    "Description",
    "TxHash",
)

LABELS = {
    "reward": "reward",
    "fee": "cost",
    "fee_rebate": "fee refund",
}


def build(context: Context) -> Export:
    period = context.period
    by_wallet: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    unvalued = 0
    for tx in context.transactions():
        rows, missing = _rows(tx, context)
        by_wallet[tx.wallet].extend(rows)
        unvalued += missing
    stem = f"koinly-{period.label}-{context.options.currency}"
    tables = tuple(
        Table(
            f"koinly-{wallet.replace('/', '-')}-{period.label}-{context.options.currency}.csv",
            COLUMNS,
            tuple(rows),  # already in transaction order: time, then identity
        )
        for wallet, rows in sorted(by_wallet.items())
    )
    return Export(
        format="koinly",
        stem=stem,
        tables=tables,
        notes=(
            "Koinly universal CSV, one file per account (add each as its own wallet).",
            "Dates are UTC. Sent and fee both leave the account: received - sent - fee is the "
            "ledger's movement of each asset.",
            "Own transfers are a send and a receive with the same TxHash; rewards are labelled "
            "'reward'; staking moves 'add to pool' / 'remove from pool'.",
            "Net Worth is empty where the warehouse has no price (Koinly prices those).",
        ),
        totals={"rows_without_net_worth": unvalued},
    )


def _rows(tx: Transaction, context: Context) -> tuple[list[tuple[str, ...]], int]:
    prices = context.prices
    label = _label(tx)
    txhash = tx.transfer.txid if tx.transfer and tx.transfer.txid else ""
    description = tx.describe()
    if tx.transfer and tx.transfer.own:
        direction = "to" if tx.category == "withdrawal" else "from"
        description += f" (own transfer {direction} {tx.transfer.counterpart})"
    date = seconds_utc(tx.at) + " UTC"
    lines: list[tuple[Movement | None, Movement | None, Movement | None]] = []
    fees = list(tx.fees)
    if len(tx.sent) <= 1 and len(tx.received) <= 1 and (tx.sent or tx.received):
        lines.append((_first(tx.sent), _first(tx.received), fees.pop(0) if fees else None))
    else:
        lines += [(m, None, None) for m in tx.sent] + [(None, m, None) for m in tx.received]
    # a fee beyond the first (another asset) is its own 'cost' line
    extra_fees = [(m, None, None) for m in fees]
    rows, unvalued = [], 0
    whole = transaction_value(tx, prices) if len(lines) == 1 else None
    for sent, received, fee in lines:
        worth = whole if whole is not None else _value(sent or received, tx, context)
        if worth is None:
            unvalued += 1
        rows.append(_row(date, sent, received, fee, worth, context, label, description, txhash))
    for sent, _, _ in extra_fees:
        worth = fee_value(tx, sent, prices) if sent else None
        if worth is None:
            unvalued += 1
        rows.append(_row(date, sent, None, None, worth, context, "cost", description, txhash))
    return rows, unvalued


def _row(
    date: str,
    sent: Movement | None,
    received: Movement | None,
    fee: Movement | None,
    worth: Decimal | None,
    context: Context,
    label: str,
    description: str,
    txhash: str,
) -> tuple[str, ...]:
    return (
        date,
        plain(sent.quantity) if sent else "",
        sent.asset if sent else "",
        plain(received.quantity) if received else "",
        received.asset if received else "",
        plain(fee.quantity) if fee else "",
        fee.asset if fee else "",
        plain(worth),
        context.options.currency if worth is not None else "",
        label,
        description,
        txhash,
    )


def _label(tx: Transaction) -> str:
    if tx.category == "staking":
        return "add to pool" if tx.sent else "remove from pool"
    return LABELS.get(tx.category, "")


def _value(movement: Movement | None, tx: Transaction, context: Context) -> Decimal | None:
    if movement is None:
        return None
    return context.prices.value(movement.asset, tx.at, movement.quantity)


def _first(movements: tuple[Movement, ...]) -> Movement | None:
    return movements[0] if movements else None
