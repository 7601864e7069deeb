"""BittyTax transaction records, every value filled in, so that BittyTax looks up no price.

Columns (BittyTax's own, its README "Transaction Records"): Type, Buy Quantity, Buy Asset, Buy
Value, Sell Quantity, Sell Asset, Sell Value, Fee Quantity, Fee Asset, Fee Value, Wallet,
Timestamp, Note. Values are in the reporting currency, at full precision (BittyTax rounds
each disposal's proceeds, cost and fees to the penny itself, tax_event.py): BittyTax values in
its `local_currency` (GBP unless its config says otherwise), so set `local_currency` to the
export's currency in ~/.bittytax/bittytax.conf, and keep EUR and USD in its `fiat_list`.
Timestamps are UTC, ISO 8601. Quantities follow the README's fee rules: a Withdrawal's or a
sold quantity is net of its fee, a Deposit's or a bought quantity gross (the fee is booked on
top), which is how the transactions' legs are already stated.

The file holds the whole history up to 30 days after the end of the period, in London days
(UK tax rules: BittyTax's days), not the period alone: BittyTax builds its pools from every
earlier acquisition, checks them against the wallets' balances, and matches a disposal with
acquisitions in the 30 days after it before the pool (README "Match 'bed and breakfast'
Rule", CRYPTO22256), so a disposal late in the period needs the month after it. Only the
period's disposals are the period's: run BittyTax with the period's tax year.

The mapping follows the cost-basis engine's reading of the ledger: trades are Trade (both sides
valued at the trade's value, the fee an allowable cost and, in a token, a disposal of its
own); own transfers a Withdrawal and a Deposit (their fees, which BittyTax treats as
disposals, as the engine does); rewards Staking / Referral / Airdrop / Income at their value on
receipt; coins moved into the exchange's staking a Withdrawal from the account and a Deposit
into "<account> staking" (and back: no disposal); a token withdrawn to outside (no own deposit
matched it) is a Spend at market value and its network fee another; a token deposited from
outside, or credited by any other ledger kind, is Gift-Received (an acquisition at market
value, not income), any other debit of a token a Spend; a fee charged on its own is a Spend, a
rebate on its own Fee-Rebate. Fiat moves as Deposit / Withdrawal. Only Trade, Deposit and
Withdrawal records carry a fee: on an acquisition or a Spend BittyTax would make it an
allowable cost, which the engine does not, so a fee there is a Spend of its own (a disposal at
market value in a token, as the engine's). Each record's Note says which ledger row it came
from.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from warehouse.costbasis.model import is_fiat
from warehouse.costbasis.uk import BED_AND_BREAKFAST_DAYS
from warehouse.exports.context import Context
from warehouse.exports.options import UK_TIMEZONE, Period
from warehouse.exports.text import iso_utc, plain
from warehouse.exports.transactions import Movement, Transaction, transactions
from warehouse.exports.valuation import fee_value, transaction_value
from warehouse.exports.writer import Export

COLUMNS = (
    "Type",
    "Buy Quantity",
    "Buy Asset",
    "Buy Value",
    "Sell Quantity",
    "Sell Asset",
    "Sell Value",
    "Fee Quantity",
    "Fee Asset",
    "Fee Value",
    "Wallet",
    "Timestamp",
    "Note",
)

REWARD_TYPES = {
    "staking_reward": "Staking",
    "referral_reward": "Referral",
    "distribution": "Airdrop",
}

Side = tuple[Movement, Decimal | None] | None


class _Rows:
    """Collects records; values come from `prices`, missing ones are remembered there."""

    def __init__(self, context: Context) -> None:
        self.prices = context.prices
        self.rows: list[tuple[str, ...]] = []

    def add(
        self,
        kind: str,
        tx: Transaction,
        *,
        buy: Side = None,
        sell: Side = None,
        fee: Side = None,
        wallet: str | None = None,
        note: str = "",
    ) -> None:
        self.rows.append(
            (
                kind,
                *_side(buy),
                *_side(sell),
                *_side(fee),
                wallet or tx.wallet,
                iso_utc(tx.at),
                note or tx.describe(),
            )
        )

    def value(self, tx: Transaction, movement: Movement) -> Decimal:
        return self.prices.require(movement.asset, tx.at, movement.quantity)

    def optional(self, tx: Transaction, movement: Movement) -> Decimal | None:
        return self.prices.value(movement.asset, tx.at, movement.quantity)

    def fee(self, tx: Transaction, fee: Movement) -> Side:
        value = fee_value(tx, fee, self.prices)
        if value is None:
            value = self.value(tx, fee)
        return (fee, value)


def build(context: Context) -> Export:
    rows = _Rows(context)
    until = covered_until(context.period)
    for tx in transactions(context.ledger_until(until), context.transfers):
        _records(tx, rows)
    context.prices.check()
    label, currency = context.period.label, context.options.currency
    last = None if until is None else (until - timedelta(days=1)).date().isoformat()
    return Export.one_file(
        "bittytax",
        f"bittytax-{label}-{currency}",
        COLUMNS,
        rows.rows,
        notes=(
            f"Values are in {currency}: set `local_currency: '{currency}'` in "
            "~/.bittytax/bittytax.conf (BittyTax's default is GBP) and keep EUR and USD in "
            "its fiat_list; every value is filled in, so BittyTax needs no price source.",
            "The file holds the whole history up to "
            + (
                f"{last} (London day; {BED_AND_BREAKFAST_DAYS} days after the period)"
                if last
                else "the last movement"
            )
            + ": BittyTax needs every earlier acquisition for its pools and the 30 days after "
            "a disposal for the bed and breakfast rule. Report only the period's tax year.",
            "BittyTax's tax years are UK tax years, named by the year they end in "
            "(`bittytax FILE -ty 2025` is 2024/25).",
            "A token withdrawn to outside (no own deposit matched it) is a Spend at market "
            "value, as in the gains export; one deposited from outside is Gift-Received.",
        ),
        totals={"covered_until": None if until is None else until.isoformat()},
    )


def covered_until(period: Period) -> datetime | None:
    """The end (exclusive) of what a file for `period` holds: the start of the London day
    BED_AND_BREAKFAST_DAYS + 1 days after the period's last London day; None for all."""
    if period.end_at is None:
        return None
    london = ZoneInfo(UK_TIMEZONE)
    last = (period.end_at - timedelta(microseconds=1)).astimezone(london).date()
    return datetime.combine(last + timedelta(days=BED_AND_BREAKFAST_DAYS + 1), time(0), london)


def _records(tx: Transaction, rows: _Rows) -> None:
    fees = list(tx.fees)
    if tx.category in ("trade", "conversion") and len(tx.sent) == 1 and len(tx.received) == 1:
        worth = transaction_value(tx, rows.prices)
        if worth is None:
            worth = rows.value(tx, tx.received[0])
        fee = rows.fee(tx, fees.pop(0)) if fees else None
        rows.add("Trade", tx, buy=(tx.received[0], worth), sell=(tx.sent[0], worth), fee=fee)
        for extra in fees:
            rows.add("Spend", tx, sell=rows.fee(tx, extra), note=f"{tx.describe()} (fee)")
        return
    if _outside(tx):
        # as the engine: the token's disposal at market value, and its network fee another
        for movement in tx.sent:
            note = f"{tx.transfer_note()}: withdrawn to outside, disposed of at market value"
            rows.add("Spend", tx, sell=(movement, rows.value(tx, movement)), note=note)
        for extra in fees:
            rows.add("Spend", tx, sell=rows.fee(tx, extra), note=f"{tx.describe()} (network fee)")
        return
    for movement in tx.received:
        paid = fees.pop(0) if fees and _transfer_in(tx, movement) else None
        _credit(tx, movement, rows, rows.fee(tx, paid) if paid else None)
    for movement in tx.sent:
        paid = fees.pop(0) if fees and _transfer_out(tx, movement) else None
        _debit(tx, movement, rows, rows.fee(tx, paid) if paid else None)
    for extra in fees:
        rows.add("Spend", tx, sell=rows.fee(tx, extra), note=f"{tx.describe()} (fee)")


def _transfer_in(tx: Transaction, movement: Movement) -> bool:
    """Whether `_credit` writes `movement` as a Deposit (the one credit that carries a fee)."""
    if tx.category in ("reward", "fee_rebate"):
        return False
    own = tx.transfer is not None and tx.transfer.own
    return tx.category == "staking" or is_fiat(movement.asset) or (tx.category == "deposit" and own)


def _transfer_out(tx: Transaction, movement: Movement) -> bool:
    """Whether `_debit` writes `movement` as a Withdrawal (the one debit that carries a fee)."""
    return tx.category in ("staking", "withdrawal") or is_fiat(movement.asset)


def _credit(tx: Transaction, movement: Movement, rows: _Rows, fee: Side) -> None:
    own = tx.transfer is not None and tx.transfer.own
    if tx.category == "reward":
        kind = REWARD_TYPES.get(tx.event_kind, "Income")
        rows.add(kind, tx, buy=(movement, rows.value(tx, movement)))
    elif tx.category == "fee_rebate":
        rows.add("Fee-Rebate", tx, buy=(movement, rows.value(tx, movement)))
    elif tx.category == "staking":
        _staking(tx, movement, rows, fee, staked=False)
    elif is_fiat(movement.asset) or (tx.category == "deposit" and own):
        note = tx.transfer_note() if tx.category == "deposit" else ""
        rows.add("Deposit", tx, buy=(movement, rows.optional(tx, movement)), fee=fee, note=note)
    else:
        note = f"{tx.transfer_note()}: acquired at market value (nothing here knows its cost)"
        rows.add("Gift-Received", tx, buy=(movement, rows.value(tx, movement)), note=note)


def _debit(tx: Transaction, movement: Movement, rows: _Rows, fee: Side) -> None:
    if tx.category == "staking":
        _staking(tx, movement, rows, fee, staked=True)
    elif tx.category == "withdrawal" or is_fiat(movement.asset):
        note = tx.transfer_note() if tx.category == "withdrawal" else ""
        rows.add("Withdrawal", tx, sell=(movement, rows.optional(tx, movement)), fee=fee, note=note)
    else:
        rows.add("Spend", tx, sell=(movement, rows.value(tx, movement)))


def _staking(tx: Transaction, movement: Movement, rows: _Rows, fee: Side, *, staked: bool) -> None:
    """Coins into (`staked`) or out of the exchange's staking: a Withdrawal from one wallet and
    a Deposit into the other ("<wallet> staking"); the account's row carries the fee and says
    which it was."""
    staking = f"{tx.wallet} staking"
    note = f"{tx.describe()} ({'staked' if staked else 'unstaked'})"
    if staked:
        rows.add("Withdrawal", tx, sell=(movement, None), fee=fee, note=note)
        rows.add("Deposit", tx, buy=(movement, None), wallet=staking)
    else:
        rows.add("Withdrawal", tx, sell=(movement, None), wallet=staking)
        rows.add("Deposit", tx, buy=(movement, None), fee=fee, note=note)


def _outside(tx: Transaction) -> bool:
    """A withdrawal of a token that no own deposit matched."""
    own = tx.transfer is not None and tx.transfer.own
    return (
        tx.category == "withdrawal"
        and not own
        and bool(tx.sent)
        and not any(is_fiat(m.asset) for m in tx.sent)
    )


def _side(side: Side) -> tuple[str, str, str]:
    if side is None:
        return ("", "", "")
    movement, value = side
    return (plain(movement.quantity), movement.asset, plain(value) if value is not None else "")
