"""Koinly's universal CSV: one file per account, so that Koinly sees each as its own wallet.

Columns (Koinly's documented universal template, "How to create a custom CSV file with your
data", support article 9489976): Date, Sent Amount, Sent Currency, Received Amount, Received
Currency, Fee Amount, Fee Currency, Net Worth Amount, Net Worth Currency, Label, Description,
TxHash. Dates are UTC, 'YYYY-MM-DD HH:MM:SS UTC' (the template's dates "must be in UTC").

Fees, by Koinly's rules:
- a trade or a send carries its fee in the Fee columns, paid on top of what was sent (Koinly
  adds a trade's fee to the cost of what it bought, "Trading Fees & Transaction Fees", article
  9490025; BittyTax's reader of Koinly's own exports books Sent Amount and Fee apart too);
- a deposit cannot carry a fee ("What are transactions in Koinly", article 9490022: "A deposit
  in Koinly can not have any fee ... add a separate withdrawal transaction for the 5 USD fee and
  tag it as a Cost. Alternatively, just add a deposit of 95 USD"). A deposit (or reward, or
  rebate) whose fee is in its own asset is written net where the fee has no tax effect of its
  own: fiat, and own transfers (Koinly pairs the send with the smaller receive and books the
  difference as the transfer's fee, article 9490024, as the engine disposes of what did not
  arrive). Otherwise the deposit is written gross and its fee is a separate send labelled
  'cost', as the engine acquires the gross amount and disposes of the fee;
- a fee no row can carry (a second fee, a fee charged on its own) is its own send labelled
  'cost' (a fiat one unlabelled: "Fiat withdrawals can not have any labels", article 3663453).
Per asset, received - sent - fee over a file is therefore exactly the ledger's movements of
that account.

Labels (Koinly's tags, article 9490023, and "Staking and farming tokens", article 9490056):
'reward' (staking, referral and other rewards), 'add to pool' / 'remove from pool' (coins moved
into and out of the exchange's staking), 'cost' (a fee on its own), 'fee refund' (a rebate on
its own); trades, deposits and withdrawals carry none. A transfer between the user's own
accounts is a plain send on one file and a plain receive on the other, with the same TxHash
(the on-chain txid), which is how Koinly pairs them. Net Worth is the row's value in the
reporting currency (a trade's: the trade's value), left empty (for Koinly to price) where the
warehouse has no price.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from warehouse.costbasis.exact import EXACT
from warehouse.costbasis.model import is_fiat
from warehouse.exports.context import Context
from warehouse.exports.text import plain, seconds_utc
from warehouse.exports.transactions import Movement, Transaction
from warehouse.exports.valuation import transaction_value
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
            "A deposit carries no fee (Koinly's rule): one in its own asset is deducted where it "
            "is fiat or the deposit an own transfer, otherwise it is a separate 'cost' send.",
            "Own transfers are a send and a receive with the same TxHash; rewards are labelled "
            "'reward'; staking moves 'add to pool' / 'remove from pool'.",
            "Net Worth is empty where the warehouse has no price (Koinly prices those).",
        ),
        totals={"rows_without_net_worth": unvalued},
    )


@dataclass(frozen=True)
class Line:
    """One Koinly row before valuation and formatting."""

    sent: Movement | None = None
    received: Movement | None = None
    fee: Movement | None = None
    label: str = ""
    is_fee: bool = False  # a fee on its own row


def lines(tx: Transaction) -> list[Line]:
    """The Koinly rows of one transaction, by the rules in the module docstring."""
    fees = list(tx.fees)
    label = _label(tx)
    found: list[Line] = []
    if len(tx.sent) <= 1 and len(tx.received) <= 1 and (tx.sent or tx.received):
        sent, received = _first(tx.sent), _first(tx.received)
        if sent is not None:
            found.append(Line(sent, received, fees.pop(0) if fees else None, label))
        elif received is not None:
            found.append(Line(received=_net(tx, received, fees), label=label))
    else:
        found += [Line(sent=m, label=label) for m in tx.sent]
        found += [Line(received=m, label=label) for m in tx.received]
    found += [Line(sent=fee, label=_cost_label(fee), is_fee=True) for fee in fees]
    return found


def _net(tx: Transaction, received: Movement, fees: list[Movement]) -> Movement:
    """`received` less its fee where that fee has no tax effect of its own (fiat, own
    transfers); the fee is then removed from `fees`."""
    own = tx.transfer is not None and tx.transfer.own
    if not (own or is_fiat(received.asset)):
        return received
    for fee in fees:
        if fee.asset == received.asset and fee.quantity < received.quantity:
            fees.remove(fee)
            return Movement(received.asset, EXACT.subtract(received.quantity, fee.quantity))
    return received


def _cost_label(fee: Movement) -> str:
    return "" if is_fiat(fee.asset) else "cost"


def _rows(tx: Transaction, context: Context) -> tuple[list[tuple[str, ...]], int]:
    txhash = tx.transfer.txid if tx.transfer and tx.transfer.txid else ""
    description = tx.describe()
    if tx.transfer and tx.transfer.own:
        direction = "to" if tx.category == "withdrawal" else "from"
        description += f" (own transfer {direction} {tx.transfer.counterpart})"
    date = seconds_utc(tx.at) + " UTC"
    rows, unvalued = [], 0
    for line in lines(tx):
        worth = _worth(tx, line, context)
        if worth is None:
            unvalued += 1
        if line.is_fee:  # no TxHash: Koinly must not pair a fee with the transfer's other side
            text = description if tx.category == "fee" else f"{description} (fee)"
            rows.append(_row(date, line, worth, context, text, ""))
        else:
            rows.append(_row(date, line, worth, context, description, txhash))
    return rows, unvalued


def _row(
    date: str,
    line: Line,
    worth: Decimal | None,
    context: Context,
    description: str,
    txhash: str,
) -> tuple[str, ...]:
    sent, received, fee = line.sent, line.received, line.fee
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
        line.label,
        description,
        txhash,
    )


def _label(tx: Transaction) -> str:
    if tx.category == "staking":
        return "add to pool" if tx.sent else "remove from pool"
    return LABELS.get(tx.category, "")


def _worth(tx: Transaction, line: Line, context: Context) -> Decimal | None:
    """A trade row is worth the trade's value, any other row its own movement's value."""
    if line.sent is not None and line.received is not None and not line.is_fee:
        whole = transaction_value(tx, context.prices)
        if whole is not None:
            return whole
    movement = line.sent or line.received
    if movement is None:
        return None
    return context.prices.value(movement.asset, tx.at, movement.quantity)


def _first(movements: tuple[Movement, ...]) -> Movement | None:
    return movements[0] if movements else None
