"""Events from the warehouse: `events_from_warehouse(connection, currency="EUR")`.

Every row of the `ledger` view is accounted for once, so that the lots replay the balances:

- trades (the ledger's trade legs, grouped by fill: Bitvavo fills, Bitstamp trade entries):
  the trade's value is its quote amount in the reporting currency (a quote in another currency
  or a token is valued through `prices` at the fill time; failing that, the base side). A buy
  acquires the base at value + fees, a sell disposes of it for the value with the fees
  allowable. A token on the quote side (crypto for crypto) is disposed of (buy) or acquired
  (sell) at the same value. When the base is fiat the fees go to the quote side instead.
  A fee paid in a token is also its own disposal at market value (a rebate in a token, an
  acquisition);
- own transfers (`internal_transfers` matched pairs): a move of what arrived, at the
  withdrawal's time, out of the withdrawal's wallet into the deposit's; what left and did not
  arrive (network fee, deposit fee, loss in transit) is a disposal at market value, noted;
- a token deposited from outside (unmatched deposit) is acquired at market value, a token
  withdrawn to outside (unmatched withdrawal) disposed of at market value, both with a
  warning; its network fee is a disposal at market value, noted;
- rewards (staking, referral, distributions) are income at their value on receipt;
- staking credits and debits are moves between an account's spot and staking balances: no
  event (the coins stay in the wallet's lots);
- other ledger kinds that move a token (conversion, settlement, unknown…) acquire or dispose
  of it at market value (with a warning except for conversions and non-trade fees).

Fiat is a currency, not an asset: its movements make no event (a fiat reward is still income);
a price in fiat other than the reporting currency is converted through `prices`. Any value
that needs a price that does not exist raises MissingPriceError listing every (asset, time).

With `since`, history before it is summarised as opening positions: each wallet's token
balance at `since` (staked coins included, coins in transit to an own account counted where
they arrive) acquired at its market value at `since`, with a warning saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb

from warehouse.costbasis.exact import EXACT, tidy
from warehouse.costbasis.history import LEDGER_ORDER, History
from warehouse.costbasis.holdings import holdings
from warehouse.costbasis.model import UNKNOWN_ASSET, ZERO, Event, is_fiat
from warehouse.costbasis.prices import DEFAULT_MAX_STALENESS, PriceBook
from warehouse.rows import InternalTransfer, LedgerRow, ledger_rows

__all__ = ["TradeLegs", "events_from_warehouse", "holdings", "trade_events"]

TRADE_LEGS = ("trade_base", "trade_quote", "fee")
TRANSFER_KINDS = ("deposit", "deposit_fee", "withdrawal", "withdrawal_fee")


@dataclass(frozen=True)
class Pair:
    """A matched own transfer (internal_transfers status 'matched')."""

    asset: str
    withdrawal: tuple[str, str, str]  # exchange, account, transfer id
    withdrawn_at: datetime
    withdrawn: Decimal
    sent: Decimal
    deposit: tuple[str, str, str]
    deposited_at: datetime
    received: Decimal
    txid: str | None

    @property
    def from_wallet(self) -> str:
        return f"{self.withdrawal[0]}/{self.withdrawal[1]}"

    @property
    def to_wallet(self) -> str:
        return f"{self.deposit[0]}/{self.deposit[1]}"


@dataclass(frozen=True)
class TradeLegs:
    """One fill as the ledger moved it: signed base and quote amounts, fees paid by asset
    (positive = paid, negative = rebate)."""

    wallet: str
    reference: str
    at: datetime
    market: str
    base_amount: Decimal
    quote_amount: Decimal
    fees: tuple[tuple[str, Decimal], ...] = ()


def events_from_warehouse(
    connection: duckdb.DuckDBPyConnection,
    *,
    currency: str = "EUR",
    since: datetime | None = None,
    max_staleness: timedelta = DEFAULT_MAX_STALENESS,
    loaded: PriceBook | None = None,
    history: History | None = None,
) -> list[Event]:
    """Events in time order from the views `ledger`, `internal_transfers` and `prices`
    (`loaded`: those prices already read, in `currency` with `max_staleness`; `history`: the
    first two already read)."""
    if loaded is None:
        prices = PriceBook.load(connection, currency, max_staleness=max_staleness)
    elif (loaded.currency, loaded.max_staleness) != (currency, max_staleness):
        raise ValueError(f"prices in {loaded.currency} given for events in {currency}")
    else:
        prices = loaded.fresh()
    if history is None:
        history = History.read(connection)
    rows = _tidied(history.ledger)
    pairs = _pairs(history.matched())
    paired = _paired_legs(pairs)
    start = since.astimezone(UTC) if since is not None else None

    events: list[Event] = []
    trades: dict[tuple[str, str, str, str], list[LedgerRow]] = {}
    before: list[LedgerRow] = []
    for row in rows:
        if start is not None and row.executed_at < start:
            before.append(row)
        elif row.event_kind == "trade" and row.kind in TRADE_LEGS and row.market:
            key = (row.exchange, row.account, row.reference, row.market)
            trades.setdefault(key, []).append(row)
        elif (row.exchange, row.account, row.reference, row.asset) in paired and (
            row.kind in TRANSFER_KINDS
        ):
            continue  # the pair's move and fee disposal stand for it
        else:
            events += _other_events(row, prices)
    for legs in trades.values():
        events += trade_events(_trade_legs(legs), prices)
    for pair in pairs:
        if start is None or pair.withdrawn_at >= start:
            events += transfer_events(pair, prices)
    if start is not None:
        events += _opening(before, pairs, paired, start, prices)
    prices.raise_if_missing()
    events.sort(key=lambda event: event.at)
    return events


# --- trades ------------------------------------------------------------------------------------


def trade_events(legs: TradeLegs, prices: PriceBook) -> list[Event]:
    """The events of one fill (see the module docstring); values in `prices.currency`."""
    base, quote = legs.market.split("-", 1)
    base_quantity, quote_quantity = abs(legs.base_amount), abs(legs.quote_amount)
    buy = legs.base_amount > ZERO or (legs.base_amount == ZERO and legs.quote_amount < ZERO)
    events: list[Event] = []
    note = f"{'buy' if buy else 'sell'} {base_quantity} {legs.market}"

    fee_total = ZERO
    for asset, paid in legs.fees:
        fee_value = prices.value(asset, paid, legs.at)
        fee_total = EXACT.add(fee_total, fee_value or ZERO)
        if is_fiat(asset) or paid == ZERO:
            continue
        events.append(
            Event(
                kind="dispose" if paid > ZERO else "acquire",
                asset=asset,
                quantity=abs(paid),
                wallet=legs.wallet,
                at=legs.at,
                value=None if fee_value is None else abs(fee_value),
                reference=legs.reference,
                note=(
                    f"fee paid in {asset} for trade {legs.reference}"
                    if paid > ZERO
                    else f"fee rebate in {asset} for trade {legs.reference}"
                ),
                category="trade-fee",
            )
        )

    if is_fiat(base) and is_fiat(quote):
        return events
    value = prices.value(quote, quote_quantity, legs.at, record=False)
    if value is None:
        value = prices.value(base, base_quantity, legs.at, record=False)
    if value is None:
        prices.note_missing(quote, legs.at)
        prices.note_missing(base, legs.at)

    fee_side = quote if is_fiat(base) else base
    for asset, quantity, acquired in ((base, base_quantity, buy), (quote, quote_quantity, not buy)):
        if is_fiat(asset) or quantity == ZERO:
            continue
        fees = fee_total if asset == fee_side else ZERO
        if acquired:
            cost = None if value is None else tidy(EXACT.add(value, fees))
            events.append(_trade_event("acquire", asset, quantity, legs, cost, fees, note))
        else:
            events.append(_trade_event("dispose", asset, quantity, legs, value, fees, note))
    return events


def _trade_event(
    kind: str,
    asset: str,
    quantity: Decimal,
    legs: TradeLegs,
    value: Decimal | None,
    fees: Decimal,
    note: str,
) -> Event:
    return Event(
        kind=kind,
        asset=asset,
        quantity=quantity,
        wallet=legs.wallet,
        at=legs.at,
        value=value,
        fees=tidy(fees),
        reference=legs.reference,
        note=note,
        category="trade",
    )


def _trade_legs(rows: list[LedgerRow]) -> TradeLegs:
    first = rows[0]
    base = quote = ZERO
    fees: dict[str, Decimal] = {}
    for row in rows:
        if row.kind == "trade_base":
            base = EXACT.add(base, row.amount)
        elif row.kind == "trade_quote":
            quote = EXACT.add(quote, row.amount)
        else:
            fees[row.asset] = EXACT.subtract(fees.get(row.asset, ZERO), row.amount)
    return TradeLegs(
        wallet=first.wallet,
        reference=first.reference,
        at=first.executed_at,
        market=first.market or "",
        base_amount=base,
        quote_amount=quote,
        fees=tuple(sorted(fees.items())),
    )


# --- own transfers -----------------------------------------------------------------------------


def transfer_events(pair: Pair, prices: PriceBook) -> list[Event]:
    """A matched own transfer: a move of what arrived; what did not arrive is disposed of."""
    if is_fiat(pair.asset):
        return []
    at = pair.withdrawn_at
    moved = min(pair.received, pair.withdrawn)
    reference = pair.withdrawal[2]
    events = [
        Event(
            kind="move",
            asset=pair.asset,
            quantity=moved,
            wallet=pair.from_wallet,
            at=at,
            value=None,
            to_wallet=pair.to_wallet,
            reference=reference,
            note=f"own transfer to {pair.to_wallet} (deposit {pair.deposit[2]})",
            category="transfer",
        )
    ]
    lost = EXACT.subtract(pair.withdrawn, pair.received)
    if lost > ZERO:
        withdrawal_fee = EXACT.subtract(pair.withdrawn, pair.sent)
        rest = EXACT.subtract(pair.sent, pair.received)
        detail = f"withdrawal fee {tidy(withdrawal_fee)}"
        if rest != ZERO:
            detail += f", deposit fee or loss in transit {tidy(rest)}"
        events.append(
            Event(
                kind="dispose",
                asset=pair.asset,
                quantity=lost,
                wallet=pair.from_wallet,
                at=at,
                value=prices.value(pair.asset, lost, at),
                reference=reference,
                note=(
                    f"network fee of own transfer {pair.from_wallet} → {pair.to_wallet} ({detail})"
                ),
                category="network-fee",
            )
        )
    elif lost < ZERO:
        extra = -lost
        events.append(
            Event(
                kind="acquire",
                asset=pair.asset,
                quantity=extra,
                wallet=pair.to_wallet,
                at=pair.deposited_at,
                value=prices.value(pair.asset, extra, pair.deposited_at),
                reference=pair.deposit[2],
                note=f"own transfer from {pair.from_wallet} arrived with more than left",
                warning=(
                    f"{pair.asset}: own transfer {reference} → {pair.deposit[2]} received "
                    f"{tidy(extra)} more than was withdrawn: acquired at market value"
                ),
                category="transfer",
            )
        )
    return events


def _paired_legs(pairs: Iterable[Pair]) -> set[tuple[str, str, str, str]]:
    legs = set()
    for pair in pairs:
        legs.add((*pair.withdrawal, pair.asset))
        legs.add((*pair.deposit, pair.asset))
    return legs


# --- everything else ---------------------------------------------------------------------------


def _other_events(row: LedgerRow, prices: PriceBook) -> list[Event]:
    if row.kind == "staking" or row.amount == ZERO:
        return []
    if row.asset == UNKNOWN_ASSET:
        prices.note_missing(UNKNOWN_ASSET, row.executed_at)  # the source did not name it
        return []
    if row.kind == "reward":
        return [_reward(row, prices)]
    if is_fiat(row.asset):
        return []
    quantity = abs(row.amount)
    value = prices.value(row.asset, quantity, row.executed_at)
    acquired = row.amount > ZERO
    kind = "acquire" if acquired else "dispose"
    direction = "acquisition" if acquired else "disposal"
    note = f"{row.kind} ({row.event_kind})" if row.event_kind != row.kind else row.kind
    warning = (
        f"{row.asset}: {row.kind} {row.reference} in {row.wallet} on "
        f"{row.executed_at.date().isoformat()} treated as an {direction} at market value"
    )
    category = row.kind
    if row.kind == "deposit":
        note = "deposit from outside"
        warning = (
            f"{row.asset}: deposit {row.reference} into {row.wallet} matched no own withdrawal: "
            "acquired at market value"
        )
    elif row.kind == "withdrawal":
        note = "withdrawal to outside"
        warning = (
            f"{row.asset}: withdrawal {row.reference} from {row.wallet} matched no own deposit: "
            "disposed of at market value"
        )
    elif row.kind in ("withdrawal_fee", "deposit_fee"):
        note = f"network fee of {row.kind.removesuffix('_fee')} {row.reference}"
        warning = ""
        category = "network-fee"
    elif row.kind in ("fee", "conversion"):
        note = f"{row.kind} ({row.event_kind})" if row.kind == "fee" else row.kind
        warning = ""
    return [
        Event(
            kind=kind,
            asset=row.asset,
            quantity=quantity,
            wallet=row.wallet,
            at=row.executed_at,
            value=value,
            reference=row.reference,
            note=note,
            warning=warning,
            category=category,
        )
    ]


def _reward(row: LedgerRow, prices: PriceBook) -> Event:
    """Income at its value on receipt; a negative reward (reversed) a disposal at market."""
    quantity = abs(row.amount)
    category = row.event_kind or "reward"
    kind, note, warning = "income", category, ""
    if row.amount <= ZERO:
        kind, note = "dispose", f"reward reversed ({row.event_kind})"
        warning = f"{row.asset}: negative reward {row.reference} treated as a disposal at market"
    return Event(
        kind=kind,
        asset=row.asset,
        quantity=quantity,
        wallet=row.wallet,
        at=row.executed_at,
        value=prices.value(row.asset, quantity, row.executed_at),
        reference=row.reference,
        note=note,
        warning=warning,
        category=category,
    )


def _opening(
    before: list[LedgerRow],
    pairs: list[Pair],
    paired: set[tuple[str, str, str, str]],
    start: datetime,
    prices: PriceBook,
) -> list[Event]:
    balances: dict[tuple[str, str], Decimal] = {}
    for row in before:
        if is_fiat(row.asset) or row.asset == UNKNOWN_ASSET or row.kind == "staking":
            continue
        deposit_leg = row.kind in ("deposit", "deposit_fee")
        if deposit_leg and (row.exchange, row.account, row.reference, row.asset) in paired:
            continue  # counted below, when its withdrawal is before `start`
        key = (row.wallet, row.asset)
        balances[key] = EXACT.add(balances.get(key, ZERO), row.amount)
    for pair in pairs:
        if pair.withdrawn_at < start and not is_fiat(pair.asset):
            key = (pair.to_wallet, pair.asset)
            balances[key] = EXACT.add(balances.get(key, ZERO), pair.received)
    events = []
    for (wallet, asset), quantity in sorted(balances.items()):
        if quantity <= ZERO:
            continue
        events.append(
            Event(
                kind="acquire",
                asset=asset,
                quantity=tidy(quantity),
                wallet=wallet,
                at=start,
                value=prices.value(asset, quantity, start),
                reference="opening balance",
                note=f"balance at {start.isoformat()}",
                warning=(
                    f"{asset}: {tidy(quantity)} held in {wallet} at {start.isoformat()} "
                    "(history before it summarised): acquired at market value then"
                ),
                category="opening-balance",
            )
        )
    return events


# --- reading the views -------------------------------------------------------------------------


def _ledger(connection: duckdb.DuckDBPyConnection) -> list[LedgerRow]:
    return _tidied(ledger_rows(connection, order_by=LEDGER_ORDER))


def _tidied(rows: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Amounts without trailing zeros, times in UTC."""
    return [
        LedgerRow(
            r.exchange,
            r.account,
            r.asset,
            tidy(r.amount),
            r.kind,
            r.executed_at.astimezone(UTC),
            r.reference,
            r.source,
            r.event_kind,
            r.event_type,
            r.market,
            r.sequence,
            r.leg,
        )
        for r in rows
    ]


def _pairs(matched: Iterable[InternalTransfer]) -> list[Pair]:
    """The matched pairs (`History.matched`, in its order) with tidy amounts, times in UTC."""
    pairs = []
    for row in matched:
        assert row.withdrawn_at is not None and row.deposited_at is not None  # matched
        assert row.withdrawn is not None and row.sent is not None and row.received is not None
        pairs.append(
            Pair(
                asset=row.asset,
                withdrawal=(
                    str(row.withdrawal_exchange),
                    str(row.withdrawal_account),
                    str(row.withdrawal_id),
                ),
                withdrawn_at=row.withdrawn_at.astimezone(UTC),
                withdrawn=tidy(row.withdrawn),
                sent=tidy(row.sent),
                deposit=(str(row.deposit_exchange), str(row.deposit_account), str(row.deposit_id)),
                deposited_at=row.deposited_at.astimezone(UTC),
                received=tidy(row.received),
                txid=row.txid,
            )
        )
    return pairs
