"""What the cost-basis engine reads and writes: events in, lots, gains and income out.

Every amount is a Decimal; values are in the reporting currency (the one the events were
valued in). Times are tz-aware datetimes; dates are calendar days in the zone `compute` was
given (Europe/London for method "uk").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

ZERO = Decimal(0)
UNKNOWN_ASSET = "?"  # the ledger's asset of a fee whose asset the source did not name

METHODS = ("fifo", "lifo", "hifo", "uk", "de", "nl")
LOT_MODES = ("pooled", "per-account")
POOLED = "pooled"
PER_ACCOUNT = "per-account"

# The calendar each method counts days in when no timezone is given: HMRC's UK days, German days
# for the one-year period (§ 23 EStG), Dutch days for the 1 January of box 3; UTC otherwise.
METHOD_TIMEZONES = {"uk": "Europe/London", "de": "Europe/Berlin", "nl": "Europe/Amsterdam"}

EVENT_KINDS = ("acquire", "dispose", "move", "income")

# Currencies, not taxable assets: they never get lots (a fee or price in one of them is
# valued in the reporting currency through `prices`; the reporting currency itself is 1).
FIAT_CURRENCIES = frozenset(
    {"EUR", "USD", "GBP", "CHF", "JPY", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK"}
)


def is_fiat(asset: str) -> bool:
    return asset.upper() in FIAT_CURRENCIES


def method_timezone(method: str) -> str:
    return METHOD_TIMEZONES.get(method, "UTC")


def default_lots(method: str) -> str:
    """de: per wallet, as the BMF letter of 10 May 2022 on virtual currencies requires
    ("walletbezogene Betrachtung"); every other method pools a person's lots."""
    return PER_ACCOUNT if method == "de" else POOLED


@dataclass(frozen=True)
class Lot:
    """A quantity acquired at one time, in one wallet ("exchange/account", or "pooled")."""

    asset: str
    wallet: str
    acquired_at: datetime
    quantity: Decimal
    cost: Decimal  # reporting currency, fees included
    reference: str  # the ledger reference that created it ("section 104 pool" for uk)


@dataclass(frozen=True)
class Event:
    """One taxable-relevant movement.

    kind:
      "acquire"  buy (or any other acquisition): `value` is the cost, fees included;
      "dispose"  sell, a fee paid in crypto, a network fee: `value` is the proceeds before fees,
                 `fees` the allowable fees that reduce them;
      "move"     own transfer out of `wallet` into `to_wallet` (never a disposal; `value` None);
      "income"   a reward: income at `value` (its value on receipt), and a lot at that value.
    `warning` is copied into the Result's warnings (an event built on an assumption says so);
    `category` says where it came from ("trade", "trade-fee", "network-fee", "staking_reward"…)
    and is the Income's kind for income events.
    """

    kind: str
    asset: str
    quantity: Decimal
    wallet: str
    at: datetime
    value: Decimal | None
    fees: Decimal = ZERO
    to_wallet: str | None = None
    reference: str = ""
    note: str = ""
    warning: str = ""
    category: str = ""


@dataclass(frozen=True)
class LotUse:
    """The part of one lot a disposal consumed. `fees` is the part of `cost` that the
    acquisition's incidental costs make up (uk tracks them through its pools, so that a
    computation can state them apart from the acquisition cost itself; None where a method does
    not track them)."""

    lot_reference: str
    acquired_at: datetime
    quantity: Decimal
    cost: Decimal
    fees: Decimal | None = None


@dataclass(frozen=True)
class Gain:
    """One disposal, or one matched part of it (uk: one per match type).

    gain = proceeds - cost - fees = taxable + exempt. holding_days is the shortest holding
    period among the lots used, in calendar days (None when it does not apply: no lot, uk's
    30-day rule and pool). wallet is where the disposal happened, also with pooled lots.
    """

    date: date
    asset: str
    quantity: Decimal
    proceeds: Decimal
    cost: Decimal
    fees: Decimal
    gain: Decimal
    match_type: str
    lots: tuple[LotUse, ...]
    holding_days: int | None
    taxable: Decimal
    exempt: Decimal
    wallet: str
    reference: str
    note: str = ""


@dataclass(frozen=True)
class Income:
    date: date
    asset: str
    quantity: Decimal
    value: Decimal
    wallet: str
    kind: str
    reference: str


@dataclass(frozen=True)
class Result:
    gains: tuple[Gain, ...]
    income: tuple[Income, ...]
    open_lots: tuple[Lot, ...]
    warnings: tuple[str, ...]
    method: str = ""
    lots: str = ""
    timezone: str = ""


@dataclass(frozen=True)
class Holding:
    """A balance at a moment, valued in the reporting currency.

    `wallet` is "exchange/account" for what the account's ledger holds, "exchange/account
    (staking)" for its coins in the exchange's staking, and "from -> to (in transit)" for coins
    on their way between two of the owner's accounts (`place` says which: "account",
    "staking", "in transit")."""

    wallet: str
    asset: str
    quantity: Decimal
    price: Decimal
    value: Decimal
    place: str = "account"


class MissingPriceError(Exception):
    """A value was needed and no price exists: lists every (asset, time). Never priced at 0."""

    def __init__(self, missing: Iterable[tuple[str, datetime]], currency: str = "") -> None:
        self.missing: tuple[tuple[str, datetime], ...] = tuple(sorted(set(missing)))
        self.currency = currency
        shown = ", ".join(f"{asset} at {at.isoformat()}" for asset, at in self.missing[:50])
        more = len(self.missing) - 50
        suffix = f" and {more} more" if more > 0 else ""
        where = f" {currency}" if currency else ""
        super().__init__(f"no{where} price for {shown}{suffix}")


class UnsupportedCurrencyError(ValueError):
    """The warehouse cannot value in this reporting currency (yet)."""
