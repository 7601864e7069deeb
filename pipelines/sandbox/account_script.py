"""The story both simulated accounts live through, generated once per World.

Times are relative to the window `[now - days, now]` (S = its length):

- a few **old Bitstamp rows** years before the window (2020-03 → 2021-07, the int-`type` era): an
  EUR deposit, a two-fill BTC buy, a sell, a BTC withdrawal to an outside wallet, another deposit
  and a buy after the switch to string types. They are priced from the path (`price_at`), since
  the tape starts later (genesis);
- start of window: EUR deposits on both exchanges, a USD wire deposit (7.50 USD fee) on Bitstamp;
- 2–4.5 % S: first buys (Bitstamp btceur, etheur, btcusd; Bitvavo BTC-, ETH- and a maker ADA-EUR
  order, whose ADA-EUR maker fee is a rebate);
- 4.6 % S: Bitvavo buys PHA-EUR and NEO-EUR, markets that are delisted by now, and sells them
  again a few hours later (PHA-EUR through the order book: `/v2/trades` still lists its fills;
  NEO-EUR only in `/account/history`: `/v2/trades` no longer answers for it);
- every day: 0–3 orders per exchange at business hours, 1–5 fills each on consecutive tape trades,
  maker or taker, fee tier from the trailing 30-day volume (with quirks, the fills of a Bitvavo
  taker order all carry its first fill's millisecond: one sweep); Bitvavo app ("Price
  Guarantee") buys and sells every few days (only in account/history);
- 10 % S on: Bitvavo staking rewards (ETH, ADA) every reward interval (7 days, shorter for
  short windows); 20 % S: Bitstamp sends half its ETH to staking (type 26), earns type-27 rewards
  every interval, and gets it back at 80 % S (type 25);
- coins move between the accounts: 30 % S BTC Bitstamp → Bitvavo, 45 % S ETH Bitvavo → Bitstamp,
  60 % S BTC Bitvavo → Bitstamp, 72 % S ETH Bitstamp → Bitvavo; the deposit lands 25–80 min later
  with the same txid and the amount net of the network fee;
- 40 % S a type-33 settlement transfer (+EUR, fee "None"), 57 % S a type-99 row nobody documents
  (+BTC dust), 65 % S a type-32 referral reward (+USD); 33 and 99 only with quirks;
- 50 % S Bitvavo EUR withdrawal; 55 % S a Bitstamp eurusd trade; 85 % S Bitstamp EUR withdrawal;
- the last hours: a Bitstamp buy (now − 35 min), a Bitvavo sell (now − 50 min, settled), a
  Bitvavo EUR withdrawal (now − 25 min, its status still moving), open orders holding EUR on both
  (reserved / inOrder), and a Bitvavo buy 4–8 min before now whose fills are not settled yet.

Every step checks a running balance first (fees counted when charged, rebates only when
credited), so no balance is ever negative in either ledger's replay.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from pipelines.sandbox.events import (
    BITVAVO_SETTLE_MS,
    DEPOSIT,
    REFERRAL_REWARD,
    SENT_TO_STAKING,
    SETTLEMENT_TRANSFER,
    STAKED_CREDIT,
    STAKING_REWARD,
    TRADE,
    UNDOCUMENTED,
    WITHDRAWAL,
    ZERO,
    BitstampEntry,
    BitstampLedger,
    BitvavoFill,
    BitvavoItem,
    BitvavoLedger,
    BitvavoTransfer,
    CryptoTransfer,
    Reservation,
    address,
    iban,
    new_uuid,
    txid,
)
from pipelines.sandbox.market import Market, TapeTrade, market_key
from pipelines.sandbox.prices import rng_for

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
CENT = Decimal("0.01")

# Bitstamp fee tiers on trailing 30-day USD volume: (from volume, taker, maker) as fractions.
BITSTAMP_TIERS = (
    (Decimal(0), Decimal("0.0040"), Decimal("0.0030")),
    (Decimal(10_000), Decimal("0.0030"), Decimal("0.0020")),
    (Decimal(50_000), Decimal("0.0024"), Decimal("0.0014")),
    (Decimal(100_000), Decimal("0.0020"), Decimal("0.0010")),
)
BITSTAMP_OLD_RATE = Decimal("0.0050")  # 2020's flat fee for small accounts
# Bitvavo fee tiers on trailing 30-day EUR volume. ADA-EUR makers get a rebate at every tier.
BITVAVO_TIERS = (
    (Decimal(0), Decimal("0.0025"), Decimal("0.0015")),
    (Decimal(10_000), Decimal("0.0020"), Decimal("0.0010")),
    (Decimal(50_000), Decimal("0.0016"), Decimal("0.0006")),
    (Decimal(100_000), Decimal("0.0012"), Decimal("0.0003")),
)
BITVAVO_REBATE_MARKETS = {"ADA-EUR": Decimal("-0.0001")}
BITVAVO_FEE_QUANTUM = Decimal("1e-13")
APP_FEE_RATE = Decimal("0.0025")
APP_SPREAD = Decimal("0.006")

BITSTAMP_WITHDRAWAL_FEES = {"BTC": Decimal("0.00015000"), "ETH": Decimal("0.00250000")}
BITVAVO_WITHDRAWAL_FEES = {
    "BTC": Decimal("0.00006"),
    "ETH": Decimal("0.0012"),
    "ADA": Decimal("1"),
    "EUR": ZERO,
}
NETWORKS = {"BTC": "bitcoin", "ETH": "ethereum", "ADA": "cardano"}
USD_WIRE_FEE = Decimal("7.50")

CRYPTO_WITHDRAWAL_STAGES = (
    (0, "awaiting_processing"),
    (5 * MINUTE, "approved"),
    (10 * MINUTE, "sending"),
    (20 * MINUTE, "completed"),
)
FIAT_WITHDRAWAL_STAGES = (
    (0, "awaiting_processing"),
    (15 * MINUTE, "approved"),
    (40 * MINUTE, "completed"),
)
TXID_AFTER_MS = 10 * MINUTE

_OLD_ERA_END = datetime(2021, 6, 1, tzinfo=UTC)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Volume:
    ts_ms: int
    amount: Decimal  # USD (Bitstamp) or EUR (Bitvavo)


class VolumeLog(list[Volume]):
    """Volumes in the order the script records them (`append`). While that is time order, as
    it is, `between` finds a window by bisection instead of reading every volume (the fee tier
    of every order reads one)."""

    def __init__(self) -> None:
        super().__init__()
        self._times: list[int] = []
        self._ascending = True

    def append(self, volume: Volume) -> None:
        if self._times and volume.ts_ms < self._times[-1]:
            self._ascending = False
        self._times.append(volume.ts_ms)
        super().append(volume)

    def between(self, low_ms: int, high_ms: int) -> list[Volume]:
        """The volumes with `low_ms < ts_ms <= high_ms`, in the order recorded."""
        if not self._ascending:
            return [v for v in self if low_ms < v.ts_ms <= high_ms]
        times = self._times
        return self[bisect_right(times, low_ms) : bisect_right(times, high_ms)]


def tier_for(
    tiers: tuple[tuple[Decimal, Decimal, Decimal], ...], volumes: VolumeLog, at_ms: int
) -> tuple[int, Decimal]:
    """(tier index, trailing 30-day volume) at `at_ms`."""
    total = sum((v.amount for v in volumes.between(at_ms - 30 * DAY, at_ms)), ZERO)
    index = max(i for i, (threshold, _, _) in enumerate(tiers) if total >= threshold)
    return index, total


class _Balances(dict[str, Decimal]):
    def get0(self, key: str) -> Decimal:
        return self.get(key, ZERO)

    def add(self, key: str, amount: Decimal) -> None:
        value = self.get0(key) + amount
        if value < 0:
            raise AssertionError(f"script bug: {key} would go negative ({value})")
        self[key] = value

    def order_qty(
        self,
        side: str,
        size: Decimal | None,
        base: str,
        quote: str,
        price: Decimal,
        quantum: Decimal,
        *,
        unsized: Decimal | None = None,
    ) -> Decimal:
        """What an order may fill, on `quantum`: a buy of `size` quote at `price` spends at most
        97 % of the quote held; a sell of `size` base at most what is held (`unsized` of it,
        else all of it, when no size is given)."""
        if side == "buy":
            budget = min(size or ZERO, self.get0(quote) * Decimal("0.97"))
            return (budget / price).quantize(quantum, ROUND_DOWN)
        held = self.get0(base)
        if size is not None:
            return min(size, held).quantize(quantum, ROUND_DOWN)
        return (held if unsized is None else held * unsized).quantize(quantum, ROUND_DOWN)


class AccountScript:
    """Runs the story once and leaves `bitstamp` / `bitvavo` ledgers and fee volumes behind."""

    def __init__(
        self,
        *,
        seed: int,
        now_ms: int,
        days: int,
        genesis_ms: int,
        quirks: bool,
        markets: dict[tuple[str, str], Market],
    ) -> None:
        if days < 1:
            raise ValueError("days must be >= 1")
        self.seed = seed
        self.now = now_ms
        self.start = now_ms - days * DAY
        self.span = days * DAY
        self.genesis = genesis_ms
        self.quirks = quirks
        self.markets = markets
        self.rng = rng_for(market_key(seed, "accounts", "script"))
        # the delisted markets' trades draw from their own stream: the rest of the story is the
        # same with or without them
        self._delisted_rng = rng_for(market_key(seed, "accounts", "delisted"))
        self.bitstamp = BitstampLedger()
        self.bitvavo = BitvavoLedger()
        self.bitstamp_volumes = VolumeLog()
        self.bitvavo_volumes = VolumeLog()
        self._bs = _Balances()  # lower-case currencies
        self._bv = _Balances()  # upper-case symbols
        self._queue: list[tuple[int, int, Callable[..., object], tuple[Any, ...]]] = []
        self._counter = 0
        self._clock = 0
        self._order_id = 0
        self.addresses = {
            ("bitstamp", asset): address(self.rng, asset) for asset in ("BTC", "ETH")
        } | {("bitvavo", asset): address(self.rng, asset) for asset in ("BTC", "ETH", "ADA")}
        self.bank_account = iban(self.rng)
        self._staked = ZERO

    # --- running ---------------------------------------------------------------------------

    def run(self) -> AccountScript:
        self._plan()
        while self._queue:
            ts, _, action, args = heapq.heappop(self._queue)
            # an action never happens before what was already recorded (its fills may be later)
            action(max(ts, self._clock), *args)
        self.bitstamp.entries.sort(key=lambda e: e.ts_ms)
        self.bitvavo.fills.sort(key=lambda f: f.ts_ms)
        self.bitvavo.transfers.sort(key=lambda t: t.ts_ms)
        self.bitvavo.items.sort(key=lambda i: i.ts_ms)
        return self

    def _at(self, ts: int, action: Callable[..., object], *args: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (int(ts), self._counter, action, args))

    def _saw(self, ts: int) -> None:
        self._clock = max(self._clock, ts)

    def _frac(self, share: float) -> int:
        return self.start + int(self.span * share)

    def _plan(self) -> None:
        rng, s = self.rng, self.start
        self._plan_old_rows()
        self._at(s + 7 * MINUTE + 13_000, self._bs_deposit, "eur", Decimal("20000.00"), ZERO)
        self._at(s + 25 * MINUTE + 41_000, self._bv_deposit_fiat, Decimal("15000"))
        self._at(s + 2 * HOUR + 5_000, self._bs_deposit, "usd", Decimal("10000.00"), USD_WIRE_FEE)

        first: list[tuple[Any, ...]] = [
            (0.020, self._bs_order, "btceur", "buy", Decimal(3500), False),
            (0.025, self._bs_order, "etheur", "buy", Decimal(2500), False),
            (0.028, self._bs_order, "btcusd", "buy", Decimal(2000), False),
            (0.030, self._bv_order, "BTC-EUR", "buy", Decimal(3000), False),
            (0.035, self._bv_order, "ETH-EUR", "buy", Decimal(2000), False),
            (0.040, self._bv_order, "ADA-EUR", "buy", Decimal(1500), True),
            (0.046, self._bv_round_trip, "PHA-EUR", Decimal(600)),
            (0.046, self._bv_history_round_trip, "NEO-EUR", Decimal(400)),
        ]
        for share, action, *args in first:
            self._at(self._frac(share) + 3 * HOUR, action, *args)

        random_end = self.now - 3 * HOUR
        for day in range(self.span // DAY):
            day_start = s + day * DAY
            for exchange in ("bitstamp", "bitvavo"):
                for _ in range((0, 1, 1, 1, 2, 2, 3)[int(rng.random() * 7)]):
                    ts = day_start + int((7 + rng.random() * 15) * HOUR)
                    if self._frac(0.05) < ts < random_end:
                        self._at(ts, self._random_order, exchange)
        for _ in range(max(2, self.span // (5 * DAY))):
            ts = self._frac(0.06 + 0.9 * rng.random())
            if ts < random_end:
                self._at(ts, self._app_trade)

        interval = max(DAY, min(7 * DAY, self.span // 8))
        ts = self._frac(0.10)
        while ts < self.now - 2 * HOUR:
            self._at(ts, self._bv_staking)
            ts += interval
        self._at(self._frac(0.20), self._bs_stake)
        ts = self._frac(0.20) + interval
        while ts < self._frac(0.80):
            self._at(ts, self._bs_staking_reward, interval)
            ts += interval
        self._at(self._frac(0.80), self._bs_unstake)

        self._at(self._frac(0.30), self._transfer, "bitstamp", "BTC", Decimal("0.4"))
        self._at(self._frac(0.45), self._transfer, "bitvavo", "ETH", Decimal("0.4"))
        self._at(self._frac(0.60), self._transfer, "bitvavo", "BTC", Decimal("0.4"))
        self._at(self._frac(0.72), self._transfer, "bitstamp", "ETH", Decimal("0.4"))

        if self.quirks:
            self._at(self._frac(0.40), self._bs_other, SETTLEMENT_TRANSFER, "eur", Decimal("1.37"))
            self._at(self._frac(0.57), self._bs_other, UNDOCUMENTED, "btc", Decimal("0.00000547"))
        self._at(self._frac(0.65), self._bs_other, REFERRAL_REWARD, "usd", Decimal("5.00"))

        self._at(self._frac(0.50), self._bv_withdraw_fiat, Decimal("0.1"))
        self._at(self._frac(0.55), self._bs_order, "eurusd", "sell", Decimal(1500), False)
        self._at(self._frac(0.85), self._bs_withdraw_fiat, Decimal("0.1"))

        now = self.now
        self._at(now - 90 * MINUTE, self._reserve, "bitstamp", "eur", Decimal("150.00"))
        self._at(now - 70 * MINUTE, self._reserve, "bitvavo", "EUR", Decimal("120"))
        self._at(now - 50 * MINUTE, self._bv_order, "ETH-EUR", "sell", None, False)
        self._at(now - 35 * MINUTE, self._bs_order, "btceur", "buy", Decimal(400), False)
        self._at(now - 25 * MINUTE, self._bv_withdraw_fiat, Decimal("0.05"))
        self._at(now - 8 * MINUTE, self._bv_recent_buy)

    # --- old Bitstamp rows ---------------------------------------------------------------

    def _plan_old_rows(self) -> None:
        """Rows from the int-`type` era, long before the tape starts (priced from the path)."""
        old: list[tuple[str, Callable[..., object], tuple[Any, ...]]] = [
            ("2020-03-12 09:41:03", self._bs_deposit, ("eur", Decimal("2500.00"), ZERO)),
            ("2020-03-12 13:27:45", self._old_trade, ("buy", Decimal("1900"), 2)),
            ("2020-11-23 16:05:12", self._old_trade, ("sell", Decimal("0.4"), 1)),
            ("2021-02-09 10:12:33", self._old_withdrawal, ()),
            ("2021-05-19 08:30:00", self._bs_deposit, ("eur", Decimal("500.00"), ZERO)),
            ("2021-07-14 12:00:09.251", self._old_trade, ("buy", Decimal("300"), 1)),
        ]
        for text, action, args in old:
            ts = _ms(text)
            if ts < self.genesis - DAY:
                self._at(ts, action, *args)

    def _old_trade(self, ts: int, side: str, size: Decimal, fills: int) -> None:
        market = self.markets[("bitstamp", "btceur")]
        price = market.price_at(ts)
        if side == "buy":
            qty = (size / price).quantize(Decimal("1e-8"), ROUND_DOWN)
        else:
            qty = (self._bs.get0("btc") * size).quantize(Decimal("1e-8"), ROUND_DOWN)
        parts = [qty] if fills == 1 else [(qty * Decimal("0.37")).quantize(Decimal("1e-8"))]
        if fills > 1:
            parts.append(qty - parts[0])
        order_id = self._next_order_id(ts)
        for i, part in enumerate(parts):
            fill_price = price + i  # the second fill a tick higher
            quote = (part * fill_price).quantize(CENT, ROUND_HALF_UP)
            fee = (quote * BITSTAMP_OLD_RATE).quantize(CENT, ROUND_UP)
            signed = (part, -quote) if side == "buy" else (-part, quote)
            self._bs_record(
                BitstampEntry(
                    ts + i * 1000 * (i % 2),
                    TRADE,
                    {"btc": signed[0], "eur": signed[1]},
                    fee,
                    2,
                    ("btc", "eur"),
                    fill_price,
                    order_id,
                )
            )

    def _old_withdrawal(self, ts: int) -> None:
        gross = (self._bs.get0("btc") * Decimal("0.25")).quantize(Decimal("1e-8"), ROUND_DOWN)
        fee = Decimal("0.00050000")
        crypto = CryptoTransfer(
            "bitcoin", address(self.rng, "BTC"), txid(self.rng, "BTC"), gross - fee
        )
        self._bs_record(BitstampEntry(ts, WITHDRAWAL, {"btc": -gross}, fee, 8, crypto=crypto))

    # --- Bitstamp --------------------------------------------------------------------------

    def _bs_record(self, entry: BitstampEntry) -> None:
        for currency, delta in entry.effect().items():
            self._bs.add(currency, delta)
        self.bitstamp.entries.append(entry)
        self._saw(entry.ts_ms)

    def _whole_second(self, ts: int) -> int:
        return ts - ts % 1000

    def _bs_deposit(self, ts: int, currency: str, amount: Decimal, fee: Decimal) -> None:
        ts = self._whole_second(ts)
        self._bs_record(BitstampEntry(ts, DEPOSIT, {currency: amount}, fee, 2))

    def _bs_withdraw_fiat(self, ts: int, share: Decimal) -> None:
        amount = (self._bs.get0("eur") * share).quantize(CENT, ROUND_DOWN)
        if amount > 0:
            ts = self._whole_second(ts)
            self._bs_record(BitstampEntry(ts, WITHDRAWAL, {"eur": -amount}, ZERO, 2))

    def _bs_other(self, ts: int, type_code: int, currency: str, amount: Decimal) -> None:
        places = 2 if currency in ("eur", "usd") else 8
        self._bs_record(BitstampEntry(ts, type_code, {currency: amount}, ZERO, places))

    def _bs_stake(self, ts: int) -> None:
        amount = (self._bs.get0("eth") / 2).quantize(Decimal("1e-8"), ROUND_DOWN)
        if amount > 0:
            self._staked = amount
            self._bs_record(BitstampEntry(ts, SENT_TO_STAKING, {"eth": -amount}, ZERO, 8))

    def _bs_staking_reward(self, ts: int, interval: int) -> None:
        reward = (self._staked * Decimal("0.04") * interval / (365 * DAY)).quantize(
            Decimal("1e-8"), ROUND_DOWN
        )
        if reward > 0:
            self._bs_record(BitstampEntry(ts, STAKING_REWARD, {"eth": reward}, ZERO, 8))

    def _bs_unstake(self, ts: int) -> None:
        if self._staked > 0:
            self._bs_record(BitstampEntry(ts, STAKED_CREDIT, {"eth": self._staked}, ZERO, 8))
            self._staked = ZERO

    def _bs_rate(self, ts: int, maker: bool) -> Decimal:
        index, _ = tier_for(BITSTAMP_TIERS, self.bitstamp_volumes, ts)
        return BITSTAMP_TIERS[index][2 if maker else 1]

    def _usd(self, ts: int, quote: str, amount: Decimal) -> Decimal:
        if quote == "usd":
            return amount
        return amount * self.markets[("bitstamp", "eurusd")].price_at(ts)

    def _bs_order(self, ts: int, symbol: str, side: str, size: Decimal | None, maker: bool) -> None:
        market = self.markets[("bitstamp", symbol)]
        base, quote = market.base.lower(), market.quote.lower()
        tape = self._tape(market, ts, 1 + int(self.rng.random() * (3 if maker else 5)))
        if not tape:
            return
        rate = self._bs_rate(tape[0].ts_ms, maker)
        quantum = Decimal(1).scaleb(-market.amount_decimals)
        qty = self._bs.order_qty(side, size, base, quote, tape[0].price, quantum)
        for _ in range(8):
            fills = self._bs_fills(tape, qty, quantum, rate)
            if fills and self._bs_affordable(fills, base, quote, side):
                break
            qty = (qty * Decimal("0.9")).quantize(quantum, ROUND_DOWN)
        else:
            return
        order_id = self._next_order_id(tape[0].ts_ms)
        for trade, part, quote_amount, fee in fills:
            signed = (part, -quote_amount) if side == "buy" else (-part, quote_amount)
            self._bs_record(
                BitstampEntry(
                    trade.ts_ms,
                    TRADE,
                    {base: signed[0], quote: signed[1]},
                    fee,
                    5,
                    (base, quote),
                    trade.price,
                    order_id,
                )
            )
            self.bitstamp_volumes.append(
                Volume(trade.ts_ms, self._usd(trade.ts_ms, quote, quote_amount))
            )

    def _bs_fills(
        self, tape: list[TapeTrade], qty: Decimal, quantum: Decimal, rate: Decimal
    ) -> list[tuple[TapeTrade, Decimal, Decimal, Decimal]]:
        parts = self._parts(qty, len(tape), quantum)
        out = []
        for trade, part in zip(tape, parts, strict=False):
            quote_amount = (part * trade.price).quantize(CENT, ROUND_HALF_UP)
            if quote_amount < CENT:
                return []
            fee = (quote_amount * rate).quantize(Decimal("0.00001"), ROUND_UP)
            out.append((trade, part, quote_amount, fee))
        return out

    def _bs_affordable(self, fills: list[Any], base: str, quote: str, side: str) -> bool:
        if side == "buy":
            return sum((q + f for _, _, q, f in fills), ZERO) <= self._bs.get0(quote)
        return sum((p for _, p, _, _ in fills), ZERO) <= self._bs.get0(base)

    def _next_order_id(self, ts: int) -> int:
        """Bitstamp order ids: 10 digits in 2020, 16 digits later; always ascending."""
        if ts < _ms("2021-09-01 00:00:00"):
            guess = 4_600_000_000 + (ts - _ms("2020-02-01 00:00:00")) // 400
        else:
            guess = 1_443_751_124_246_528 + (ts - _ms("2022-01-04 00:00:00")) * 4_630
        self._order_id = max(self._order_id + 1 + int(self.rng.random() * 5000), guess)
        return self._order_id

    # --- Bitvavo ---------------------------------------------------------------------------

    def _bv_apply(self, deltas: dict[str, Decimal]) -> None:
        for symbol, delta in deltas.items():
            self._bv.add(symbol, delta)

    def _bv_deposit_fiat(self, ts: int, amount: Decimal) -> None:
        ts = self._whole_second(ts)
        self._bv_apply({"EUR": amount})
        self.bitvavo.transfers.append(
            BitvavoTransfer("deposit", ts, "EUR", amount, ZERO, self.bank_account)
        )
        self._saw(ts)

    def _bv_withdraw_fiat(self, ts: int, share: Decimal) -> None:
        amount = (self._bv.get0("EUR") * share).quantize(CENT, ROUND_DOWN)
        if amount <= 0:
            return
        ts = self._whole_second(ts)
        self._bv_apply({"EUR": -amount})
        self.bitvavo.transfers.append(
            BitvavoTransfer(
                "withdrawal",
                ts,
                "EUR",
                amount,
                ZERO,
                self.bank_account,
                stages=FIAT_WITHDRAWAL_STAGES,
            )
        )
        self._saw(ts)

    def _bv_rate(self, ts: int, market: str, maker: bool) -> Decimal:
        index, _ = tier_for(BITVAVO_TIERS, self.bitvavo_volumes, ts)
        if maker and market in BITVAVO_REBATE_MARKETS:
            return BITVAVO_REBATE_MARKETS[market]
        return BITVAVO_TIERS[index][2 if maker else 1]

    def _bv_order(
        self,
        ts: int,
        symbol: str,
        side: str,
        size: Decimal | None,
        maker: bool,
        fills: int | None = None,
    ) -> bool:
        market = self.markets[("bitvavo", symbol)]
        base, quote = market.base, market.quote
        count = fills or 1 + int(self.rng.random() * (3 if maker else 5))
        tape = self._tape(market, ts, count)
        if not tape:
            return False
        rate = self._bv_rate(tape[0].ts_ms, symbol, maker)
        quantum = Decimal(1).scaleb(-market.amount_decimals)
        qty = self._bv.order_qty(
            side, size, base, quote, tape[0].price, quantum, unsized=Decimal("0.3")
        )
        for _ in range(8):
            parts = self._parts(qty, len(tape), quantum)
            fees = [
                (part * t.price * rate).quantize(BITVAVO_FEE_QUANTUM)
                for t, part in zip(tape, parts, strict=False)
            ]
            if (
                parts
                and all(p > 0 for p in parts)
                and self._bv_affordable(tape, parts, fees, base, quote, side)
            ):
                break
            qty = (qty * Decimal("0.9")).quantize(quantum, ROUND_DOWN)
        else:
            return False
        order_id = new_uuid(self.rng)
        client_id = new_uuid(self.rng) if self.rng.random() < 0.3 else None
        # quirk: a taker order sweeps its makers in one millisecond, so that its fills share a
        # timestamp (and can straddle a `/v2/trades` page boundary)
        sweep_ms = tape[0].ts_ms if self.quirks and not maker else None
        for trade, part, fee in zip(tape, parts, fees, strict=False):
            ts_ms = trade.ts_ms if sweep_ms is None else sweep_ms
            value = part * trade.price
            charged = max(fee, ZERO)  # a rebate is only counted once credited (at settlement)
            if side == "buy":
                self._bv_apply({quote: -(value + charged), base: part})
            else:
                self._bv_apply({base: -part, quote: value - charged})
            self.bitvavo.fills.append(
                BitvavoFill(
                    symbol,
                    base,
                    quote,
                    new_uuid(self.rng),
                    order_id,
                    client_id,
                    ts_ms,
                    side,
                    part,
                    trade.price,
                    not maker,
                    fee,
                    ts_ms + BITVAVO_SETTLE_MS,
                )
            )
            self.bitvavo_volumes.append(Volume(ts_ms, value))
            self._saw(ts_ms)
        return True

    def _bv_affordable(
        self,
        tape: list[TapeTrade],
        parts: list[Decimal],
        fees: list[Decimal],
        base: str,
        quote: str,
        side: str,
    ) -> bool:
        if side == "buy":
            cost = sum(
                (p * t.price + max(f, ZERO) for t, p, f in zip(tape, parts, fees, strict=False)),
                ZERO,
            )
            return cost <= self._bv.get0(quote)
        return sum(parts, ZERO) <= self._bv.get0(base)

    def _bv_recent_buy(self, ts: int) -> None:
        """A taker buy a few minutes before now: its fills are still unsettled at `now`."""
        for minutes_ago in (4, 6, 8):
            start = max(ts, self.now - minutes_ago * MINUTE)
            if self._bv_order(start, "BTC-EUR", "buy", Decimal(250), False, fills=2):
                return

    @contextmanager
    def _delisted_draws(self) -> Iterator[None]:
        saved, self.rng = self.rng, self._delisted_rng
        try:
            yield
        finally:
            self.rng = saved

    def _bv_round_trip(self, ts: int, symbol: str, budget: Decimal) -> None:
        """A taker buy through the order book; its sale follows 4 h later."""
        with self._delisted_draws():
            bought = self._bv_order(ts, symbol, "buy", budget, False)
        if bought:
            self._at(ts + 4 * HOUR, self._bv_close_position, symbol, 0)

    def _bv_close_position(self, ts: int, symbol: str, tries: int) -> None:
        """Sell all of `symbol`'s base; where no trade fills it, try again an hour later."""
        held = self._bv.get0(self.markets[("bitvavo", symbol)].base)
        with self._delisted_draws():
            sold = held == 0 or self._bv_order(ts, symbol, "sell", held, False)
        if sold:
            return
        if tries >= 20:
            raise AssertionError(f"script bug: the {symbol} position is never closed")
        self._at(ts + HOUR, self._bv_close_position, symbol, tries + 1)

    def _bv_history_round_trip(self, ts: int, symbol: str, budget: Decimal) -> None:
        """A buy in a market whose `/v2/trades` no longer answers, so only `/account/history`
        shows it: an item at the path's price with the taker fee in EUR. Sold 5 h later."""
        market = self.markets[("bitvavo", symbol)]
        quantum = Decimal(1).scaleb(-market.amount_decimals)
        price = market.price_at(ts)
        amount = (budget / price).quantize(quantum, ROUND_DOWN)
        value = amount * price
        fee = (value * BITVAVO_TIERS[0][1]).quantize(CENT, ROUND_UP)
        if amount <= 0 or value + fee > self._bv.get0(market.quote):
            return
        legs = ((market.quote, value), (market.base, amount), (market.quote, fee))
        item_id = new_uuid(self._delisted_rng)
        self._bv_item(BitvavoItem(item_id, ts, "buy", *legs, (market.quote, price)))
        self._at(ts + 5 * HOUR, self._bv_history_sell, symbol)

    def _bv_history_sell(self, ts: int, symbol: str) -> None:
        market = self.markets[("bitvavo", symbol)]
        amount = self._bv.get0(market.base)
        price = market.price_at(ts)
        proceeds = amount * price
        fee = (proceeds * BITVAVO_TIERS[0][1]).quantize(CENT, ROUND_UP)
        legs = ((market.base, amount), (market.quote, proceeds), (market.quote, fee))
        item_id = new_uuid(self._delisted_rng)
        self._bv_item(BitvavoItem(item_id, ts, "sell", *legs, (market.quote, price)))

    def _app_trade(self, ts: int) -> None:
        rng = self.rng
        symbol = ("BTC-EUR", "ETH-EUR", "ADA-EUR")[int(rng.random() * 3)]
        market = self.markets[("bitvavo", symbol)]
        base = market.base
        last = market.last_trade_before(ts)
        if last is None:
            return
        quantum = Decimal(1).scaleb(-market.price_decimals)
        ts = ts + int(rng.random() * 1000)
        if rng.random() < 0.7 or self._bv.get0(base) == 0:
            price = (last.price * (1 + APP_SPREAD)).quantize(quantum, ROUND_UP)
            sent = Decimal(25 + int(rng.random() * 225))
            fee = (sent * APP_FEE_RATE).quantize(CENT, ROUND_UP)
            if sent + fee > self._bv.get0("EUR"):
                return
            received = (sent / price).quantize(Decimal("1e-8"), ROUND_DOWN)
            item = BitvavoItem(
                new_uuid(rng),
                ts,
                "buy",
                ("EUR", sent),
                (base, received),
                ("EUR", fee),
                ("EUR", price),
            )
        else:
            price = (last.price * (1 - APP_SPREAD)).quantize(quantum, ROUND_DOWN)
            sent = (self._bv.get0(base) * Decimal("0.2")).quantize(Decimal("1e-8"), ROUND_DOWN)
            received = (sent * price).quantize(CENT, ROUND_DOWN)
            fee = (received * APP_FEE_RATE).quantize(CENT, ROUND_UP)
            if sent <= 0 or received <= fee:
                return
            item = BitvavoItem(
                new_uuid(rng),
                ts,
                "sell",
                (base, sent),
                ("EUR", received),
                ("EUR", fee),
                ("EUR", price),
            )
        self._bv_item(item)

    def _bv_item(self, item: BitvavoItem) -> None:
        deltas: dict[str, Decimal] = {}
        for leg, sign in ((item.sent, -1), (item.received, 1), (item.fee, -1)):
            if leg is not None:
                deltas[leg[0]] = deltas.get(leg[0], ZERO) + sign * leg[1]
        self._bv_apply(deltas)
        self.bitvavo.items.append(item)
        self._saw(item.ts_ms)

    def _bv_staking(self, ts: int) -> None:
        interval = max(DAY, min(7 * DAY, self.span // 8))
        for symbol, apr in (("ETH", Decimal("0.03")), ("ADA", Decimal("0.06"))):
            reward = (self._bv.get0(symbol) * apr * interval / (365 * DAY)).quantize(
                Decimal("1e-8"), ROUND_DOWN
            )
            if reward > 0:
                self._bv_item(
                    BitvavoItem(new_uuid(self.rng), ts, "staking", None, (symbol, reward), None)
                )

    def _reserve(self, ts: int, exchange: str, currency: str, amount: Decimal) -> None:
        book = self._bs if exchange == "bitstamp" else self._bv
        if book.get0(currency) < amount:
            return
        book.add(currency, -amount)  # held by the open order: never spent by later steps
        ledger = self.bitstamp if exchange == "bitstamp" else self.bitvavo
        ledger.reservations.append(Reservation(ts, currency, amount))

    # --- both ------------------------------------------------------------------------------

    def _random_order(self, ts: int, exchange: str) -> None:
        rng = self.rng
        if exchange == "bitstamp":
            symbols = ("btceur", "btceur", "etheur", "btcusd", "ethusd", "etheur", "btceur")
            book = self._bs
        else:
            symbols = ("BTC-EUR", "BTC-EUR", "ETH-EUR", "ADA-EUR", "ETH-EUR", "ADA-EUR", "BTC-EUR")
            book = self._bv
        symbol = symbols[int(rng.random() * len(symbols))]
        market = self.markets[(exchange, symbol)]
        base = market.base.lower() if exchange == "bitstamp" else market.base
        quote = market.quote.lower() if exchange == "bitstamp" else market.quote
        price = market.price_at(ts)
        base_value = book.get0(base) * price
        cash = book.get0(quote)
        if cash < 50 and base_value < 50:
            return
        buy = base_value < 50 or (cash >= 50 and rng.random() < 0.55)
        maker = rng.random() < 0.4
        if buy:
            median = 700 if exchange == "bitstamp" else 400
            target = Decimal(int(median * math.exp(0.6 * (rng.random() * 2 - 1))))
            share = Decimal(str(round(0.05 + 0.25 * rng.random(), 3)))
            size = min(cash * share, target).quantize(Decimal(1), ROUND_DOWN)
            if size < 25:
                return
        else:
            size = book.get0(base) * Decimal(str(round(0.15 + 0.35 * rng.random(), 2)))
        if exchange == "bitstamp":
            self._bs_order(ts, symbol, "buy" if buy else "sell", size, maker)
        else:
            self._bv_order(ts, symbol, "buy" if buy else "sell", size, maker)

    def _transfer(self, ts: int, source: str, asset: str, share: Decimal) -> None:
        """Move coins between the accounts: a withdrawal here, the same txid's deposit there."""
        rng = self.rng
        eight = Decimal("1e-8")
        ts = self._whole_second(ts)
        if source == "bitstamp":
            fee = BITSTAMP_WITHDRAWAL_FEES[asset]
            gross = (self._bs.get0(asset.lower()) * share).quantize(eight, ROUND_DOWN)
            if gross <= fee * 10:
                return
            net = gross - fee
            crypto = CryptoTransfer(
                NETWORKS[asset], self.addresses[("bitvavo", asset)], txid(rng, asset), net
            )
            # Bitstamp: the row's amount is what left the balance, the network fee included
            self._bs_record(
                BitstampEntry(ts, WITHDRAWAL, {asset.lower(): -gross}, fee, 8, crypto=crypto)
            )
            arrival = ts + int((25 + 45 * rng.random()) * MINUTE)
            padding = " " if self.quirks and asset == "BTC" else ""
            self._at(arrival, self._bv_deposit_crypto, asset, crypto, padding)
        else:
            fee = BITVAVO_WITHDRAWAL_FEES[asset]
            amount = (self._bv.get0(asset) * share).quantize(eight, ROUND_DOWN)
            if amount <= fee * 10:
                return
            crypto = CryptoTransfer(
                NETWORKS[asset], self.addresses[("bitstamp", asset)], txid(rng, asset), amount
            )
            # Bitvavo: `amount` is what arrives, the fee is charged on top
            self._bv_apply({asset: -(amount + fee)})
            self.bitvavo.transfers.append(
                BitvavoTransfer(
                    "withdrawal",
                    ts,
                    asset,
                    amount,
                    fee,
                    crypto.address,
                    crypto,
                    stages=CRYPTO_WITHDRAWAL_STAGES,
                    txid_from_ms=TXID_AFTER_MS,
                )
            )
            self._saw(ts)
            arrival = ts + int((40 + 40 * rng.random()) * MINUTE)
            self._at(arrival, self._bs_deposit_crypto, asset, crypto)

    def _bv_deposit_crypto(self, ts: int, asset: str, crypto: CryptoTransfer, padding: str) -> None:
        ts = self._whole_second(ts)
        self._bv_apply({asset: crypto.amount})
        self.bitvavo.transfers.append(
            BitvavoTransfer(
                "deposit",
                ts,
                asset,
                crypto.amount,
                ZERO,
                crypto.address,
                crypto,
                txid_padding=padding,
            )
        )
        self._saw(ts)

    def _bs_deposit_crypto(self, ts: int, asset: str, crypto: CryptoTransfer) -> None:
        ts = self._whole_second(ts)
        self._bs_record(
            BitstampEntry(ts, DEPOSIT, {asset.lower(): crypto.amount}, ZERO, 8, crypto=crypto)
        )

    # --- helpers ---------------------------------------------------------------------------

    def _tape(self, market: Market, ts: int, count: int) -> list[TapeTrade]:
        """The next `count` tape trades at or after `ts` (within 2 h and before now)."""
        return market.first_trades(ts, min(ts + 2 * HOUR, self.now), count)

    def _parts(self, qty: Decimal, count: int, quantum: Decimal) -> list[Decimal]:
        """Split `qty` into at most `count` positive parts on `quantum`, exactly."""
        if qty <= 0:
            return []
        units = int(qty / quantum)
        count = max(1, min(count, units))
        weights = [0.3 + self.rng.random() for _ in range(count)]
        total = sum(weights)
        cuts = [int(units * w / total) for w in weights]
        cuts[-1] += units - sum(cuts)
        parts = [Decimal(c) * quantum for c in cuts if c > 0]
        return parts
