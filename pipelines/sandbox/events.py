"""What happened on the simulated accounts, before it is dressed as either exchange's wire rows.

`account_script.py` produces these records; `bitstamp_account.py` and `bitvavo_account.py` render
them (with or without quirks) and replay them into balances. Amounts are exact Decimals already
quantized to what the exchange would show.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

ZERO = Decimal(0)

# Bitstamp ledger type codes (docs/exchanges.md); 99 is deliberately not in any documentation.
DEPOSIT, WITHDRAWAL, TRADE = 0, 1, 2
STAKED_CREDIT, SENT_TO_STAKING, STAKING_REWARD = 25, 26, 27
REFERRAL_REWARD, SETTLEMENT_TRANSFER, UNDOCUMENTED = 32, 33, 99

BITVAVO_SETTLE_MS = 10 * 60_000  # a Bitvavo fill's fee is known (and charged) 10 min after it


@dataclass(frozen=True, slots=True)
class CryptoTransfer:
    """The on-chain side of a crypto deposit or withdrawal."""

    network: str
    address: str
    txid: str
    amount: Decimal  # the amount that moved on chain (net of the sender's fee)


@dataclass(frozen=True, slots=True)
class BitstampEntry:
    """One user_transactions row. `moves` holds the signed currency columns as shown."""

    ts_ms: int
    type_code: int
    moves: dict[str, Decimal]  # lower-case currency -> signed amount on the row
    fee: Decimal
    fee_places: int
    pair: tuple[str, str] | None = None  # (base, quote), lower-case, trades only
    price: Decimal | None = None
    order_id: int | None = None
    crypto: CryptoTransfer | None = None

    def effect(self) -> dict[str, Decimal]:
        """The balance change this row stands for.

        docs/exchanges.md, "Bitstamp: ledger identity".
        """
        out = dict(self.moves)
        if self.type_code == TRADE:
            assert self.pair is not None
            out[self.pair[1]] -= self.fee
        elif self.type_code == DEPOSIT:
            (currency,) = self.moves
            out[currency] -= self.fee
        return out


@dataclass(frozen=True, slots=True)
class BitvavoFill:
    market: str
    base: str
    quote: str
    fill_id: str
    order_id: str
    client_order_id: str | None
    ts_ms: int
    side: str
    amount: Decimal
    price: Decimal
    taker: bool
    fee: Decimal  # in `quote`; negative = rebate
    settle_ms: int

    @property
    def quote_amount(self) -> Decimal:
        return self.amount * self.price


@dataclass(frozen=True, slots=True)
class BitvavoTransfer:
    """A deposit or a withdrawal. Withdrawal `amount` EXCLUDES `fee` (the fee is charged on top)."""

    kind: str  # "deposit" | "withdrawal"
    ts_ms: int
    symbol: str
    amount: Decimal
    fee: Decimal
    address: str
    crypto: CryptoTransfer | None = None
    txid_padding: str = ""  # quirk: whitespace the API leaves around a txId
    # withdrawal status timeline: (ms after ts, status), ascending
    stages: tuple[tuple[int, str], ...] = ((0, "completed"),)
    txid_from_ms: int = 0  # the txId shows once the withdrawal is this old


@dataclass(frozen=True, slots=True)
class BitvavoItem:
    """An /account/history item that /v2/trades does not show: app trades, staking, and trades
    of a delisted market that /v2/trades no longer answers for."""

    transaction_id: str
    ts_ms: int
    type: str  # "buy" | "sell" | "staking"
    sent: tuple[str, Decimal] | None
    received: tuple[str, Decimal] | None
    fee: tuple[str, Decimal] | None
    price: tuple[str, Decimal] | None = None

    @property
    def traded_assets(self) -> tuple[str, str]:
        """A buy's or sell's (sent, received) assets: a trade has both legs."""
        sent, received = self._legs()
        return sent[0], received[0]

    @property
    def base_amount(self) -> Decimal:
        """A buy's or sell's base amount: what a buy received, what a sell sent."""
        sent, received = self._legs()
        return received[1] if self.type == "buy" else sent[1]

    def _legs(self) -> tuple[tuple[str, Decimal], tuple[str, Decimal]]:
        if self.sent is None or self.received is None:
            raise ValueError(f"{self.type} item {self.transaction_id} is not a trade")
        return self.sent, self.received


@dataclass(frozen=True, slots=True)
class Reservation:
    """Funds held by an open order from `ts_ms` on (reserved / inOrder)."""

    ts_ms: int
    currency: str
    amount: Decimal


def reserved_at(reservations: Iterable[Reservation], at_ms: int) -> dict[str, Decimal]:
    """Per currency, what the orders open at `at_ms` hold."""
    out: dict[str, Decimal] = {}
    for r in reservations:
        if r.ts_ms <= at_ms:
            out[r.currency] = out.get(r.currency, ZERO) + r.amount
    return out


@dataclass
class BitvavoLedger:
    fills: list[BitvavoFill] = field(default_factory=list)
    transfers: list[BitvavoTransfer] = field(default_factory=list)
    items: list[BitvavoItem] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)


@dataclass
class BitstampLedger:
    entries: list[BitstampEntry] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)


# --- formatting -------------------------------------------------------------------------


def plain(value: Decimal) -> str:
    """Bitvavo style: exact, no exponent, no trailing zeros ("0.0224", "34469", "0")."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fixed(value: Decimal, places: int) -> str:
    """At least `places` decimals, padded, never rounded ("7.50", "0.00015000")."""
    text = format(value, "f")
    whole, _, frac = text.partition(".")
    if len(frac) < places:
        frac = frac.ljust(places, "0")
    return f"{whole}.{frac}" if frac else whole


def utc(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def iso_ms(ts_ms: int) -> str:
    """ "2021-01-01T00:00:00.000Z" (Bitvavo account/history)."""
    moment = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"


# --- deterministic identifiers ------------------------------------------------------------


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hex_string(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(4 * length):0{length}x}"


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def address(rng: random.Random, asset: str) -> str:
    if asset == "BTC":
        return "bc1q" + "".join(_BECH32[int(rng.random() * 32)] for _ in range(38))
    if asset == "ADA":
        return "addr1v" + "".join(_BECH32[int(rng.random() * 32)] for _ in range(44))
    return "0x" + hex_string(rng, 40)


def txid(rng: random.Random, asset: str) -> str:
    return hex_string(rng, 64) if asset == "BTC" else "0x" + hex_string(rng, 64)


def iban(rng: random.Random) -> str:
    digits = "".join(string.digits[int(rng.random() * 10)] for _ in range(10))
    bank = ("ABNA", "RABO", "INGB", "BUNQ")[int(rng.random() * 4)]
    return f"NL{10 + int(rng.random() * 90)}{bank}{digits}"
