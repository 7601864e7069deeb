"""CoinTracking's CSV import: one file for both accounts, the account in the Exchange column.

Columns: Type, Buy Amount, Buy Currency, Sell Amount, Sell Currency, Fee, Fee Currency,
Exchange, Trade-Group, Comment, Date. Date is UTC, 'YYYY-MM-DD HH:MM:SS' (choose UTC when
importing). The fee leaves the account on top of what was sold: per asset, buy - sell - fee is
the ledger's movement. Types: Trade; Deposit / Withdrawal (transfers, and anything the ledger
cannot name: the Comment says what); Staking (staking rewards), Reward / Bonus (referral and
other rewards), Airdrop (distributions), Other Fee (a fee charged on its own), Income (non
taxable) (a fee rebate on its own). Coins moved into and out of the exchange's own staking
are a Withdrawal and a Deposit with Trade-Group 'staking'. Own transfers are a Withdrawal on one
account and a Deposit on the other; the Comment carries the txid.
"""

from __future__ import annotations

from warehouse.exports.context import Context
from warehouse.exports.text import plain, seconds_utc
from warehouse.exports.transactions import Movement, Transaction
from warehouse.exports.writer import Export, Table

COLUMNS = (
    "Type",
    "Buy Amount",
    "Buy Currency",
    "Sell Amount",
    "Sell Currency",
    "Fee",
    "Fee Currency",
    "Exchange",
    "Trade-Group",
    "Comment",
    "Date",
)

REWARD_TYPES = {
    "staking_reward": "Staking",
    "referral_reward": "Reward / Bonus",
    "distribution": "Airdrop",
}


def build(context: Context) -> Export:
    rows: list[tuple[str, ...]] = []
    for tx in context.transactions():
        rows.extend(_rows(tx))
    label, currency = context.period.label, context.options.currency
    return Export(
        format="cointracking",
        stem=f"cointracking-{label}-{currency}",
        tables=(Table(f"cointracking-{label}-{currency}.csv", COLUMNS, tuple(rows)),),
        notes=(
            "CoinTracking CSV import; dates are UTC (choose UTC when importing).",
            "The fee leaves the account on top of what was sold: buy - sell - fee is the "
            "ledger's movement of each asset.",
            "The Exchange column names the account (exchange/account).",
        ),
    )


def _rows(tx: Transaction) -> list[tuple[str, ...]]:
    comment = tx.describe()
    if tx.transfer is not None:
        if tx.transfer.own:
            direction = "to" if tx.category == "withdrawal" else "from"
            comment += f"; own transfer {direction} {tx.transfer.counterpart}"
        if tx.transfer.txid:
            comment += f"; txid {tx.transfer.txid}"
    group = tx.category
    fees = list(tx.fees)
    lines: list[tuple[str, Movement | None, Movement | None, Movement | None]] = []
    if tx.category in ("trade", "conversion") and len(tx.sent) == 1 and len(tx.received) == 1:
        lines.append(("Trade", tx.received[0], tx.sent[0], fees.pop(0) if fees else None))
    else:
        for movement in tx.received:
            lines.append((_incoming(tx), movement, None, fees.pop(0) if fees else None))
        for movement in tx.sent:
            lines.append((_outgoing(tx), None, movement, fees.pop(0) if fees else None))
    lines += [("Other Fee", None, fee, None) for fee in fees]
    date = seconds_utc(tx.at)
    return [
        (
            kind,
            plain(buy.quantity) if buy else "",
            buy.asset if buy else "",
            plain(sell.quantity) if sell else "",
            sell.asset if sell else "",
            plain(fee.quantity) if fee else "",
            fee.asset if fee else "",
            tx.wallet,
            group,
            comment,
            date,
        )
        for kind, buy, sell, fee in lines
    ]


def _incoming(tx: Transaction) -> str:
    if tx.category == "reward":
        return REWARD_TYPES.get(tx.event_kind, "Reward / Bonus")
    if tx.category == "fee_rebate":
        return "Income (non taxable)"
    return "Deposit"


def _outgoing(tx: Transaction) -> str:
    return "Other Fee" if tx.category == "fee" else "Withdrawal"
