"""CoinTracking's CSV import: one file for both accounts, the account in the Exchange column.

Columns: Type, Buy Amount, Buy Currency, Sell Amount, Sell Currency, Fee, Fee Currency,
Exchange, Trade-Group, Comment, Date. Date is UTC, 'YYYY-MM-DD HH:MM:SS' (choose UTC when
importing).

Amounts include the fee, as CoinTracking's help "Entering fees" (support article 29000007202)
prescribes: CoinTracking computes balances, costs and proceeds from the Buy and Sell amounts
alone and reads the Fee column as information only. A fee in the sold currency is added to
the Sell amount (a buy of 1 BTC for 500 USD with a 5 USD fee is Buy 1 BTC, Sell 505 USD,
Fee 5 USD; a transfer of 1 BTC with a 0.001 BTC fee is a Withdrawal of 1.001 BTC), a fee in
the bought currency is taken off the Buy amount (a deposit of 100 USD with a 5 USD fee is a
Deposit of 95 USD, Fee 5 USD). A fee in a third currency is not deducted by CoinTracking, so
it is its own "Other Fee" row (Sell = the fee) and the row it belongs to names no fee, which
would count it twice in CoinTracking's fee reports ("How fees are handled within
CoinTracking", article 29000039588). Per account and asset, Buy - Sell over the file is
therefore exactly the ledger's movement.

Types: Trade; Deposit / Withdrawal (transfers, and anything the ledger cannot name: the
Comment says what); Staking (staking rewards), Reward / Bonus (referral and other rewards),
Airdrop (distributions), Other Fee (a fee charged on its own, or in a third currency), Income
(non taxable) (a fee rebate on its own). Coins moved into and out of the exchange's own staking
are a Withdrawal and a Deposit with Trade-Group 'staking'. Own transfers are a Withdrawal on one
account and a Deposit on the other; the Comment carries the txid.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.costbasis.exact import EXACT
from warehouse.exports.context import Context
from warehouse.exports.text import plain, seconds_utc
from warehouse.exports.transactions import Movement, Transaction
from warehouse.exports.writer import Export

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


@dataclass(frozen=True)
class Line:
    """One CoinTracking row before formatting: `buy` and `sell` include `fee`, which is shown
    for information only."""

    kind: str
    buy: Movement | None = None
    sell: Movement | None = None
    fee: Movement | None = None
    is_fee: bool = False  # an Other Fee row split off a transaction


def build(context: Context) -> Export:
    rows: list[tuple[str, ...]] = []
    for tx in context.transactions():
        rows.extend(_rows(tx))
    label, currency = context.period.label, context.options.currency
    return Export.one_file(
        "cointracking",
        f"cointracking-{label}-{currency}",
        COLUMNS,
        rows,
        notes=(
            "CoinTracking CSV import; dates are UTC (choose UTC when importing).",
            "Amounts include fees, as CoinTracking's 'Entering fees' prescribes: a fee in the "
            "sold currency is inside Sell, one in the bought currency is taken off Buy, one in "
            "a third currency is its own 'Other Fee' row. Buy - Sell is the ledger's movement "
            "of each asset; the Fee column is information only.",
            "The Exchange column names the account (exchange/account).",
        ),
    )


def lines(tx: Transaction) -> list[Line]:
    """The CoinTracking rows of one transaction, by the rules in the module docstring."""
    fees = list(tx.fees)
    found: list[Line] = []
    if tx.category in ("trade", "conversion") and len(tx.sent) == 1 and len(tx.received) == 1:
        sell, sell_fee = _with_fee_out(tx.sent[0], fees)
        buy, buy_fee = _with_fee_in(tx.received[0], fees)
        # both amounts hold their fees; the Fee column (information) names one of them
        found.append(Line("Trade", buy=buy, sell=sell, fee=sell_fee or buy_fee))
    else:
        for movement in tx.received:
            buy, fee = _with_fee_in(movement, fees)
            found.append(Line(_incoming(tx), buy=buy, fee=fee))
        for movement in tx.sent:
            sell, fee = _with_fee_out(movement, fees)
            found.append(Line(_outgoing(tx), sell=sell, fee=fee))
    found += [Line("Other Fee", sell=fee, is_fee=True) for fee in fees]
    return found


def _with_fee_out(sent: Movement, fees: list[Movement]) -> tuple[Movement, Movement | None]:
    """`sent` with the first fee in its asset added (removed from `fees`)."""
    for fee in fees:
        if fee.asset == sent.asset:
            fees.remove(fee)
            return Movement(sent.asset, EXACT.add(sent.quantity, fee.quantity)), fee
    return sent, None


def _with_fee_in(received: Movement, fees: list[Movement]) -> tuple[Movement, Movement | None]:
    """`received` less the first fee in its asset that leaves something received."""
    for fee in fees:
        if fee.asset == received.asset and fee.quantity < received.quantity:
            fees.remove(fee)
            return Movement(received.asset, EXACT.subtract(received.quantity, fee.quantity)), fee
    return received, None


def _rows(tx: Transaction) -> list[tuple[str, ...]]:
    comment = tx.transfer_note()
    date = seconds_utc(tx.at)
    return [
        (
            line.kind,
            plain(line.buy.quantity) if line.buy else "",
            line.buy.asset if line.buy else "",
            plain(line.sell.quantity) if line.sell else "",
            line.sell.asset if line.sell else "",
            plain(line.fee.quantity) if line.fee else "",
            line.fee.asset if line.fee else "",
            tx.wallet,
            tx.category,
            f"{comment} (fee)" if line.is_fee and tx.category != "fee" else comment,
            date,
        )
        for line in lines(tx)
    ]


def _incoming(tx: Transaction) -> str:
    if tx.category == "reward":
        return REWARD_TYPES.get(tx.event_kind, "Reward / Bonus")
    if tx.category == "fee_rebate":
        return "Income (non taxable)"
    return "Deposit"


def _outgoing(tx: Transaction) -> str:
    return "Other Fee" if tx.category == "fee" else "Withdrawal"
