"""Typed records parsed from Bitstamp and Bitvavo responses.

Conventions shared by every record:

- ``exchange`` is ``"bitstamp"`` or ``"bitvavo"``; markets are ``BASE-QUOTE`` upper case
  (``btceur`` → ``BTC-EUR``); assets are upper case (``1inch`` → ``1INCH``).
- Money is `Decimal`, never float; times are tz-aware UTC datetimes.
- Fee rates are fractions (Bitstamp's percent is divided by 100).
- ``extra`` holds every field the exchange sent that the record does not name, values as decoded;
  ``raw`` is the row as compact JSON with the exact number text, for the lake's raw pages.
- ``extra`` is left out of hashing (a dict is unhashable) but not out of equality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict

Side = Literal["buy", "sell"]
TransferKind = Literal["deposit", "withdrawal"]


def _extra() -> Any:
    return field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Candle:
    exchange: str
    market: str
    interval: str  # "1m" … "3d"
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    extra: Mapping[str, Any] = _extra()
    raw: str = ""

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        return (self.exchange, self.market, self.interval, self.open_time)


def dedupe_candles(candles: Iterable[Candle]) -> list[Candle]:
    """One candle per (exchange, market, interval, open_time), the last one seen winning.

    Bitstamp sometimes serves two different candles for one open time; the later row is kept.
    The result is sorted by open time.
    """
    latest: dict[tuple[str, str, str, datetime], Candle] = {}
    for candle in candles:
        latest[candle.key] = candle
    return sorted(latest.values(), key=lambda c: (c.exchange, c.market, c.interval, c.open_time))


@dataclass(frozen=True, slots=True)
class PublicTrade:
    exchange: str
    market: str
    trade_id: str
    traded_at: datetime
    price: Decimal
    amount: Decimal
    side: Side  # the taker's side
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of the account's orders. Amounts are unsigned; ``side`` says which
    way they moved. ``fee`` is None while Bitvavo has not settled the fill, and may be negative
    (a rebate)."""

    exchange: str
    account: str
    market: str
    base_asset: str
    quote_asset: str
    fill_id: str
    order_id: str | None
    side: Side
    base_amount: Decimal
    quote_amount: Decimal
    price: Decimal
    fee: Decimal | None
    fee_asset: str | None
    taker: bool | None
    settled: bool
    executed_at: datetime
    source: str  # the endpoint the row came from
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    """A deposit or withdrawal; ``amount`` unsigned, as the exchange reports it."""

    exchange: str
    account: str
    transfer_id: str
    kind: TransferKind
    asset: str
    amount: Decimal
    fee: Decimal | None
    fee_asset: str | None
    address: str | None
    txid: str | None
    network: str | None
    status: str | None
    executed_at: datetime
    source: str
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Movement:
    asset: str
    amount: Decimal  # signed: positive credits the account


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Anything that is neither a fill nor a transfer: staking, rewards, conversions, internal
    transfers, and types nobody knows yet (``kind == "unknown"``), which are kept, never dropped.
    ``fee`` is charged on top of the movements, in ``fee_asset``."""

    exchange: str
    account: str
    event_id: str
    event_type: str  # the exchange's own type code or name
    kind: str  # normalised: "staking_reward", "referral_reward", "conversion", … "unknown"
    movements: tuple[Movement, ...]
    executed_at: datetime
    source: str
    fee: Decimal | None = None
    fee_asset: str | None = None
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One Bitstamp ``user_transactions`` row in long form.

    ``movements`` has one signed entry per non-zero currency key. ``pair`` (``BTC-USD``) and
    ``price`` are set when the row carries a non-zero ``<base>_<quote>`` price; ``side`` only on
    trades. The fee of a trade is in the quote currency; of a deposit or withdrawal in the moved
    currency; ``fee_asset`` is None when the row does not say.
    """

    account: str
    entry_id: int
    type_code: str  # "0", "2", "27", … (an int before mid-2021, a string since)
    kind: str  # "deposit", "withdrawal", "trade", "staking_reward", … "unknown"
    executed_at: datetime
    movements: tuple[Movement, ...]
    fee: Decimal | None
    fee_asset: str | None
    pair: str | None
    price: Decimal | None
    order_id: str | None
    side: Side | None
    source: str
    extra: Mapping[str, Any] = _extra()
    raw: str = ""

    def amount_of(self, asset: str) -> Decimal:
        """The signed movement of ``asset`` (zero when the row does not move it)."""
        return sum((m.amount for m in self.movements if m.asset == asset), Decimal(0))


@dataclass(frozen=True, slots=True)
class BitvavoHistoryItem:
    """One ``/v2/account/history`` item: the only listing of app ("Price Guarantee") trades."""

    account: str
    transaction_id: str
    type: str
    executed_at: datetime
    price_currency: str | None
    price_amount: Decimal | None
    sent_currency: str | None
    sent_amount: Decimal | None
    received_currency: str | None
    received_amount: Decimal | None
    fees_currency: str | None
    fees_amount: Decimal | None
    address: str | None
    source: str
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


class Carried(TypedDict):
    """The fields a `Fill`, `Transfer` or `OtherEvent` takes over from the ledger entry or
    history item it is classified from (see `carried`)."""

    exchange: str
    account: str
    executed_at: datetime
    source: str
    extra: Mapping[str, Any]
    raw: str


def carried(
    exchange: str,
    entry: LedgerEntry | BitvavoHistoryItem,
    extra: Mapping[str, Any] | None = None,
) -> Carried:
    """What a record classified from ``entry`` keeps of it; ``extra`` replaces the entry's."""
    return Carried(
        exchange=exchange,
        account=entry.account,
        executed_at=entry.executed_at,
        source=entry.source,
        extra=entry.extra if extra is None else extra,
        raw=entry.raw,
    )


def entry_transfer(
    exchange: str,
    entry: LedgerEntry | BitvavoHistoryItem,
    kind: TransferKind,
    moved: Movement,
    *,
    transfer_id: str,
    fee: tuple[Decimal | None, str | None],
    address: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Transfer:
    """A deposit or withdrawal classified from a ledger entry or history item, ``fee`` its
    (amount, asset); a ledger names no txid, network or status."""
    return Transfer(
        **carried(exchange, entry, extra),
        transfer_id=transfer_id,
        kind=kind,
        asset=moved.asset,
        amount=abs(moved.amount),
        fee=fee[0],
        fee_asset=fee[1],
        address=address,
        txid=None,
        network=None,
        status=None,
    )


@dataclass(frozen=True, slots=True)
class BitvavoHistoryPage:
    items: tuple[BitvavoHistoryItem, ...]
    current_page: int
    total_pages: int
    max_items: int
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    exchange: str
    account: str
    asset: str
    total: Decimal
    available: Decimal
    reserved: Decimal
    taken_at: datetime
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker/taker fee rates as fractions; ``market`` None for an account-wide rate."""

    exchange: str
    account: str
    market: str | None
    maker: Decimal
    taker: Decimal
    taken_at: datetime
    tier: str | None = None
    volume: Decimal | None = None
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class WithdrawalFee:
    exchange: str
    asset: str
    fee: Decimal
    network: str | None
    taken_at: datetime
    account: str | None = None  # Bitstamp's list is per account; Bitvavo's (from assets) public
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class MarketInfo:
    exchange: str
    market: str
    symbol: str  # the exchange's own spelling: "btcusd", "BTC-EUR"
    base_asset: str
    quote_asset: str
    status: str | None
    base_decimals: int | None = None
    quote_decimals: int | None = None
    price_precision: int | None = None  # Bitvavo: significant digits
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class AssetInfo:
    exchange: str
    asset: str
    name: str | None
    decimals: int | None
    deposit_fee: Decimal | None
    withdrawal_fee: Decimal | None
    withdrawal_min_amount: Decimal | None
    deposit_status: str | None
    withdrawal_status: str | None
    networks: tuple[str, ...]
    extra: Mapping[str, Any] = _extra()
    raw: str = ""


@dataclass(frozen=True, slots=True)
class FxRate:
    """A conversion rate as quoted at ``taken_at`` (Bitstamp ``eur_usd``: EUR priced in USD)."""

    exchange: str
    base: str
    quote: str
    buy: Decimal
    sell: Decimal
    taken_at: datetime
    extra: Mapping[str, Any] = _extra()
    raw: str = ""
