"""The simulated Bitstamp account as its API shows it: wire rows, balances, fees.

Wire dicts follow the server's convention: a Decimal or an int becomes a bare JSON number, a str
stays a JSON string. With `quirks` the ledger shows what the real one does (docs/exchanges.md):

- `type` is an int before 2021-06-01 and a string after;
- uninvolved currencies are `0`, `0.0` (Decimal) or `"0.0"`, one style per row;
- trade prices are bare numbers (8 decimals in the int era, like `11170.21000000`); non-trade
  rows carry `"btc_usd": "0.00"`;
- a type-33 row has the fee `"None"`; a type-99 row exists that no documentation lists;
- datetimes have microseconds unless they are zero (`str(datetime)` style); key order varies.

Without quirks: string types, zeros as `"0.00"` / `"0.00000000"`, prices as strings, every fee a
number string, microseconds always shown, fixed key order, no type 33/99 rows (the script skips
them) and no stray whitespace.

Withdrawal rows follow the ledger identity `balance += amount`: their amount is everything that
left the balance, **the network fee included**; `fee` reports that fee and `crypto_transactions`
shows the on-chain amount `|amount| - fee`.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipelines.sandbox.account_script import (
    BITSTAMP_TIERS,
    BITSTAMP_WITHDRAWAL_FEES,
    NETWORKS,
    VolumeLog,
    tier_for,
)
from pipelines.sandbox.events import (
    DEPOSIT,
    SETTLEMENT_TRANSFER,
    TRADE,
    WITHDRAWAL,
    ZERO,
    BitstampEntry,
    BitstampLedger,
    fixed,
    reserved_at,
    utc,
)
from pipelines.sandbox.market import market_key
from pipelines.sandbox.prices import rng_for

STRING_TYPES_FROM_MS = int(datetime(2021, 6, 1, tzinfo=UTC).timestamp() * 1000)
FIAT = ("usd", "eur")
CURRENCY_ORDER = ("usd", "eur", "btc", "eth")
ZERO_BALANCE_CURRENCIES = ("ltc", "xrp", "usdc")  # listed by account_balances, never held
MONTH_MS = 30 * 86_400_000
# Ledger ids grow with the whole exchange's activity: id 104,195,470 was written on 2020-02-02,
# and about 5.3 million rows a month are added.
ANCHOR_ID, ANCHOR_MS, ROWS_PER_MONTH = 104_195_470, 1_580_601_600_000, 5_300_000


def places(currency: str) -> int:
    return 2 if currency in FIAT else 8


class BitstampAccount:
    """contracts.md §C: `user_transactions`, `crypto_transactions`, `balances`, fees."""

    def __init__(
        self,
        ledger: BitstampLedger,
        *,
        seed: int,
        quirks: bool,
        markets: tuple[str, ...],
        volumes: VolumeLog,
        now_ms: int,
    ) -> None:
        self.quirks = quirks
        self.entries: tuple[BitstampEntry, ...] = tuple(ledger.entries)
        self.reservations = tuple(ledger.reservations)
        held = {c for e in self.entries for c in e.moves} | {
            c for e in self.entries if e.pair for c in e.pair
        }
        self.currencies: tuple[str, ...] = tuple(
            [c for c in CURRENCY_ORDER if c in held] + sorted(held - set(CURRENCY_ORDER))
        )
        rng = rng_for(market_key(seed, "bitstamp", "render"))
        self.ids: tuple[int, ...] = self._ids(rng)
        self.user_transactions: list[dict[str, Any]] = [
            self._row(entry, entry_id, rng)
            for entry, entry_id in zip(self.entries, self.ids, strict=True)
        ]
        self.crypto_transactions: dict[str, list[dict[str, Any]]] = self._crypto()
        self.trading_fees: list[dict[str, Any]] = self._trading_fees(markets, volumes, now_ms)
        self.withdrawal_fees: list[dict[str, Any]] = [
            {"currency": asset.lower(), "fee": fixed(fee, 8), "network": NETWORKS[asset]}
            for asset, fee in BITSTAMP_WITHDRAWAL_FEES.items()
        ]
        self._times = [e.ts_ms for e in self.entries]
        self._running = self._replay()

    # --- balances ----------------------------------------------------------------------------

    def _replay(self) -> list[dict[str, Decimal]]:
        running: list[dict[str, Decimal]] = []
        balance = dict.fromkeys(self.currencies, ZERO)
        for entry in self.entries:
            for currency, delta in entry.effect().items():
                balance[currency] += delta
            running.append(dict(balance))
        return running

    def balance_at(self, at_ms: int) -> dict[str, Decimal]:
        """Total per currency after every row with `datetime <= at_ms` (exact ledger replay)."""
        i = bisect_right(self._times, at_ms)
        return dict(self._running[i - 1]) if i else dict.fromkeys(self.currencies, ZERO)

    def balances(self, at_ms: int) -> list[dict[str, Any]]:
        """`/account_balances/` rows: every held currency plus a few never held (all zero)."""
        totals = self.balance_at(at_ms)
        reserved = reserved_at(self.reservations, at_ms)
        rows = []
        for currency in (*self.currencies, *ZERO_BALANCE_CURRENCIES):
            total = totals.get(currency, ZERO)
            held = reserved.get(currency, ZERO)
            p = 5 if currency in FIAT else 8
            rows.append(
                {
                    "currency": currency,
                    "total": fixed(total, p),
                    "available": fixed(total - held, p),
                    "reserved": fixed(held, p),
                }
            )
        return rows

    # --- ledger rows -------------------------------------------------------------------------

    def _ids(self, rng: Any) -> tuple[int, ...]:
        """Ascending, never contiguous across orders: other users' rows fall in between."""
        ids: list[int] = []
        last = 104_195_000 + int(rng.random() * 1000)
        previous: BitstampEntry | None = None
        for entry in self.entries:
            same_order = previous is not None and entry.order_id == previous.order_id
            if same_order and entry.order_id is not None:
                last += 1 + int(rng.random() * 3)
            else:
                guess = ANCHOR_ID + (entry.ts_ms - ANCHOR_MS) * ROWS_PER_MONTH // MONTH_MS
                last = max(last + 2 + int(rng.random() * 20_000), guess)
            ids.append(last)
            previous = entry
        return tuple(ids)

    def _row(self, entry: BitstampEntry, entry_id: int, rng: Any) -> dict[str, Any]:
        quirks = self.quirks
        old_era = entry.ts_ms < STRING_TYPES_FROM_MS
        row: dict[str, Any] = {
            "id": entry_id,
            "datetime": self._datetime(entry.ts_ms),
            "type": entry.type_code if quirks and old_era else str(entry.type_code),
            "fee": "None"
            if quirks and entry.type_code == SETTLEMENT_TRANSFER
            else fixed(entry.fee, entry.fee_places),
        }
        if entry.order_id is not None:
            row["order_id"] = entry.order_id
        zero: Any
        if not quirks:
            zero = None
        elif old_era:
            zero = (Decimal("0.0"), Decimal("0.0"), 0)[int(rng.random() * 3)]
        else:
            zero = (0, "0.0", Decimal("0.0"))[int(rng.random() * 3)]
        for currency in self.currencies:
            if currency in entry.moves:
                row[currency] = fixed(entry.moves[currency], places(currency))
            else:
                row[currency] = fixed(ZERO, places(currency)) if zero is None else zero
        if entry.type_code == TRADE and entry.pair is not None and entry.price is not None:
            key = f"{entry.pair[0]}_{entry.pair[1]}"
            if not quirks:
                row[key] = fixed(entry.price, 2)
            elif old_era:
                row[key] = entry.price.quantize(Decimal("1e-8"))
            else:
                row[key] = entry.price
        else:
            row["btc_usd"] = "0.00"
        if quirks:
            keys = list(row)
            for i in range(len(keys) - 1, 0, -1):
                j = int(rng.random() * (i + 1))
                keys[i], keys[j] = keys[j], keys[i]
            row = {k: row[k] for k in keys}
        return row

    def _datetime(self, ts_ms: int) -> str:
        moment = utc(ts_ms).replace(tzinfo=None)
        if self.quirks:
            return str(moment)  # "…:SS" when the microseconds are zero, else "…:SS.ffffff"
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    # --- crypto transactions, fees -----------------------------------------------------------

    def _crypto(self) -> dict[str, list[dict[str, Any]]]:
        deposits: list[dict[str, Any]] = []
        withdrawals: list[dict[str, Any]] = []
        for entry, entry_id in zip(self.entries, self.ids, strict=True):
            crypto = entry.crypto
            if crypto is None:
                continue
            (currency,) = entry.moves
            if entry.type_code == DEPOSIT:
                deposits.append(
                    {
                        "id": entry_id,
                        "network": crypto.network,
                        "currency": currency.upper(),
                        "txid": crypto.txid,
                        "amount": crypto.amount,
                        "datetime": entry.ts_ms // 1000,
                        "destinationAddress": crypto.address,
                    }
                )
            elif entry.type_code == WITHDRAWAL:
                withdrawals.append(
                    {
                        "currency": currency.upper(),
                        "network": crypto.network,
                        "destinationAddress": crypto.address,
                        "txid": crypto.txid,
                        "amount": crypto.amount,
                        "datetime": entry.ts_ms // 1000,
                    }
                )
        deposits.reverse()
        withdrawals.reverse()
        return {"deposits": deposits, "withdrawals": withdrawals, "ripple_iou_transactions": []}

    @staticmethod
    def _trading_fees(
        markets: tuple[str, ...], volumes: VolumeLog, now_ms: int
    ) -> list[dict[str, Any]]:
        index, _ = tier_for(BITSTAMP_TIERS, volumes, now_ms)
        _, taker, maker = BITSTAMP_TIERS[index]
        return [
            {
                "currency_pair": market,
                "market": market,
                "fees": {"maker": fixed(maker * 100, 5), "taker": fixed(taker * 100, 5)},
            }
            for market in markets
        ]
