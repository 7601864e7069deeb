"""The simulated trade tape of one market: a pure function of (seed, exchange, symbol, time).

Nothing is stored. The tape is generated top-down so that a candle of any size costs about the
same to produce, and every candle is still the exact aggregate of the trades underneath it:

1. **Hours** (generated a UTC day at a time, cached): open, high, low, close, volume, trade count
   and the number of minutes that hold trades. The close sits on the market's hourly price path
   (prices.py), which follows real closes where the packaged data covers the hour.
2. **Five-minute blocks, then minutes** (generated an hour at a time, cached): the same split
   at both levels — the parent's active minutes, trades and volume are shared out over its
   children, the children's closes follow a bridge from the parent's open to its close inside
   its range, and the parent's high and low each land on one trade. Quiet minutes get no trades.
3. **Trades** (generated a minute at a time, cached): the first trade at the minute's open, the
   last at its close, one at its high and one at its low, the volume split over the trades;
   some trades share a millisecond (a taker order sweeping several makers).

All prices are integer ticks and all amounts integer units of the market's precision until they
become exact Decimals, so aggregating minutes into hours, hours into days and days into three-day
candles is exact and equals aggregating the trades. Days before `genesis_ms` hold no trades.

`Market` knows nothing of "now": the server cuts the tape at its clock (the future is already
determined, it is just not served).
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.sandbox.prices import Path, rng_for
from pipelines.sandbox.tape import Bar, TradeLike

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BLOCK_MS = 300_000
BLOCKS_PER_HOUR = 12
MINUTES_PER_BLOCK = 5
MAX_TRADES_PER_HOUR = 900  # keeps `seq` = minute * 1000 + index unique and ascending
BURST_SHARE = 0.12  # chance that a trade shares the previous trade's millisecond

# Relative activity per UTC hour of the day: quiet European night, busy US afternoon.
_DIURNAL = (
    0.45, 0.40, 0.35, 0.35, 0.40, 0.50, 0.70, 0.85, 1.00, 1.05, 1.10, 1.10,
    1.15, 1.25, 1.35, 1.40, 1.35, 1.25, 1.15, 1.05, 0.95, 0.85, 0.70, 0.55,
)  # fmt: skip
_NIGHT_HOURS = range(0, 6)
_SQRT3 = math.sqrt(3.0)
_TWO_PI = 2.0 * math.pi  # as `prices.normal` computes it: (2.0 * pi) * u
_QUIET_DAY: tuple[None, ...] = (None,) * 24  # a day before genesis

# Internal rows are plain int tuples: (open_ms, open, high, low, close, volume, trades[, minutes]).
Row = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TapeTrade:
    seq: int  # ascending with time; Bitstamp's `tid`
    ts_ms: int
    price: Decimal
    amount: Decimal
    side: str  # taker side: "buy" | "sell"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """How a market trades: precision, volatility and liquidity."""

    exchange: str
    symbol: str
    base: str
    quote: str
    price_decimals: int
    amount_decimals: int
    hourly_vol: float  # of log price
    trades_per_minute: float  # mean trades in a minute that has trades, at average activity
    active_day: float  # share of minutes with at least one trade (06-24 UTC)
    active_night: float  # same, 00-06 UTC
    empty_hour_day: float  # chance that a whole hour has no trade
    empty_hour_night: float
    mean_trade: float  # mean trade size, base units
    min_trade: float  # smallest trade size, base units


def market_key(seed: int, exchange: str, symbol: str, salt: str = "tape") -> int:
    digest = hashlib.blake2b(f"{seed}|{exchange}|{symbol}|{salt}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


def _split(total: int, weights: list[float], floors: list[int]) -> list[int]:
    """Split `total` into parts >= `floors`, roughly proportional to `weights`, exactly."""
    rest = total - sum(floors)
    scale = rest / sum(weights)
    parts = [f + int(w * scale) for f, w in zip(floors, weights, strict=True)]
    parts[weights.index(max(weights))] += total - sum(parts)
    return parts


class _Fifo(dict[int, Any]):
    """A dict that forgets its oldest entries past `cap` (writes go through `put`)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap
        self.lock = threading.Lock()

    def put(self, key: int, value: Any) -> Any:
        with self.lock:
            self[key] = value
            while len(self) > self.cap:
                del self[next(iter(self))]
        return value


class Market:
    """One market of one exchange (contracts.md §C): trades and candles for any time range."""

    def __init__(self, spec: MarketSpec, path: Path, *, seed: int, genesis_ms: int) -> None:
        if genesis_ms % DAY_MS:
            raise ValueError("genesis_ms must be a UTC midnight")
        self.spec = spec
        self.exchange = spec.exchange
        self.symbol = spec.symbol
        self.base = spec.base
        self.quote = spec.quote
        self.price_decimals = spec.price_decimals
        self.amount_decimals = spec.amount_decimals
        self.genesis_ms = genesis_ms
        self._path = path
        self._key = market_key(seed, spec.exchange, spec.symbol)
        self._uuid_key = self._key.to_bytes(8, "big")
        self._ticks = 10**spec.price_decimals
        self._units = 10**spec.amount_decimals
        self._min_units = max(1, round(spec.min_trade * self._units))
        # an amount in units is `Decimal(units) * self._unit`: the same Decimal (coefficient and
        # exponent) as `Decimal(units).scaleb(-amount_decimals)`, and cheaper
        self._unit = Decimal(1).scaleb(-spec.amount_decimals)
        # per UTC hour of the day: (chance of an empty hour, share of active minutes, activity)
        self._hour_shapes = tuple(
            (spec.empty_hour_night, spec.active_night, _DIURNAL[i])
            if i in _NIGHT_HOURS
            else (spec.empty_hour_day, spec.active_day, _DIURNAL[i])
            for i in range(24)
        )
        self._days: dict[int, tuple[Row | None, ...]] = {}
        self._day_rows: dict[int, Row | None] = {}
        self._day_buckets: dict[tuple[int, int], list[Row]] = {}
        self._blocks: _Fifo = _Fifo(65_536)
        self._minutes: _Fifo = _Fifo(8_192)
        self._trades: _Fifo = _Fifo(32_768)
        self._prices: dict[int, Decimal] = {}

    def __repr__(self) -> str:
        return f"Market({self.exchange!r}, {self.symbol!r})"

    # --- public surface ------------------------------------------------------------------

    def trades(self, start_ms: int, end_ms: int) -> list[TapeTrade]:
        """Trades with `start_ms <= ts_ms < end_ms`, ascending by (ts_ms, seq)."""
        start_ms = max(start_ms, self.genesis_ms)
        out: list[TapeTrade] = []
        for minute in self._minutes_between(start_ms, end_ms):
            trades = self._minute_trades(minute)
            open_ms = minute[0]
            if open_ms >= start_ms and open_ms + MINUTE_MS <= end_ms:
                out.extend(trades)
            else:
                out.extend(t for t in trades if start_ms <= t.ts_ms < end_ms)
        return out

    def first_trades(self, start_ms: int, end_ms: int, count: int) -> list[TapeTrade]:
        """`trades(start_ms, end_ms)[:count]`, generating no minute after the last one used."""
        start_ms = max(start_ms, self.genesis_ms)
        out: list[TapeTrade] = []
        for minute in self._minutes_between(start_ms, end_ms):
            if len(out) >= count:
                break
            out.extend(t for t in self._minute_trades(minute) if start_ms <= t.ts_ms < end_ms)
        return out[:count]

    def latest_trades(
        self, end_ms: int, limit: int, start_ms: int | None = None
    ) -> list[TapeTrade]:
        """The newest `limit` trades with `start_ms <= ts_ms < end_ms`, NEWEST FIRST."""
        floor = max(self.genesis_ms, start_ms if start_ms is not None else self.genesis_ms)
        out: list[TapeTrade] = []
        if end_ms <= floor or limit <= 0:
            return out
        for hour in range((end_ms - 1) // HOUR_MS, floor // HOUR_MS - 1, -1):
            for minute in reversed(self._hour_minutes(hour)):
                open_ms = minute[0]
                if open_ms >= end_ms:
                    continue
                if open_ms + MINUTE_MS <= floor:
                    return out
                for trade in reversed(self._minute_trades(minute)):
                    if floor <= trade.ts_ms < end_ms:
                        out.append(trade)
                        if len(out) == limit:
                            return out
        return out

    def last_trade_before(self, t_ms: int) -> TapeTrade | None:
        """The last trade with `ts_ms < t_ms`, or None before genesis."""
        found = self.latest_trades(t_ms, 1)
        return found[0] if found else None

    def candles(self, interval_s: int, start_ms: int, end_ms: int) -> list[Bar]:
        """Candles with open time in `[start_ms, end_ms)` that hold trades, ascending.

        `interval_s` is any multiple of 60; buckets are aligned to the Unix epoch. Each candle is
        the exact aggregate of `trades()` over its whole bucket (even past `end_ms`).
        """
        step = interval_s * 1000
        if interval_s <= 0 or step % MINUTE_MS:
            raise ValueError(f"unsupported interval {interval_s}s")
        first = max(-(-start_ms // step) * step, self.genesis_ms // step * step)
        if first >= end_ms:
            return []
        stop = (end_ms - 1) // step * step + step  # end of the last bucket opening before end_ms
        if step % DAY_MS == 0:
            rows = self._day_units(first, stop)
            unit = DAY_MS
        elif step % HOUR_MS == 0 and DAY_MS % step == 0:
            rows = self._day_bucket_units(step, first, stop)
            unit = step
        elif step % HOUR_MS == 0:
            rows = self._hour_units(first, stop)
            unit = HOUR_MS
        elif step % BLOCK_MS == 0:
            rows = self._block_units(first, stop)
            unit = BLOCK_MS
        else:
            rows = self._minute_units(first, stop)
            unit = MINUTE_MS
        if step != unit:
            rows = _group(rows, step)
        return self._bars(rows)

    def trade_uuid(self, trade: TradeLike) -> str:
        """The deterministic UUID (version 4 layout) Bitvavo would give this trade."""
        digest = bytearray(
            hashlib.blake2b(
                self._uuid_key + trade.seq.to_bytes(8, "big"), digest_size=16, person=b"trade-id"
            ).digest()
        )
        # `str(uuid.UUID(bytes=digest, version=4))` written out (pages hold a thousand trades)
        digest[6] = digest[6] & 0x0F | 0x40  # version 4
        digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def price_at(self, ts_ms: int) -> Decimal:
        """The path's mid price at any time (also before genesis), on the market's tick."""
        hour, rest = divmod(ts_ms, HOUR_MS)
        a, b = self._path.log_at(hour), self._path.log_at(hour + 1)
        level = math.exp(a + (b - a) * rest / HOUR_MS)
        return Decimal(max(1, round(level * self._ticks))).scaleb(-self.price_decimals)

    # --- conversions ---------------------------------------------------------------------

    def _price(self, ticks: int) -> Decimal:
        """Ticks as an exact Decimal with the market's decimals (interned: prices repeat)."""
        value = self._prices.get(ticks)
        if value is None:
            if len(self._prices) > 200_000:
                self._prices.clear()
            value = self._prices[ticks] = Decimal(ticks).scaleb(-self.price_decimals)
        return value

    def _bars(self, rows: list[Row]) -> list[Bar]:
        """Int rows as candles (`_price` inlined: a page converts thousands of prices; each
        Bar made by `tuple.__new__`, which skips the named tuple's own Python-level `__new__`)."""
        known, price, unit = self._prices.get, self._price, self._unit
        new = tuple.__new__
        return [
            new(
                Bar,
                (
                    row[0],
                    known(row[1]) or price(row[1]),
                    known(row[2]) or price(row[2]),
                    known(row[3]) or price(row[3]),
                    known(row[4]) or price(row[4]),
                    Decimal(row[5]) * unit,
                    row[6],
                ),
            )
            for row in rows
        ]

    def _minutes_between(self, start_ms: int, end_ms: int) -> Iterator[Row]:
        """The minutes that hold trades and overlap `[start_ms, end_ms)`, ascending."""
        if start_ms >= end_ms:
            return
        for hour in range(start_ms // HOUR_MS, (end_ms - 1) // HOUR_MS + 1):
            for minute in self._hour_minutes(hour):
                open_ms = minute[0]
                if open_ms + MINUTE_MS <= start_ms:
                    continue
                if open_ms >= end_ms:
                    return
                yield minute

    # --- units: complete minutes, hours and days as int rows -----------------------------

    def _minute_units(self, start: int, stop: int) -> list[Row]:
        return self._sub_hour_units(self._hour_minutes, start, stop)

    def _block_units(self, start: int, stop: int) -> list[Row]:
        return self._sub_hour_units(self._hour_blocks, start, stop)

    @staticmethod
    def _sub_hour_units(rows_of: Callable[[int], list[Row]], start: int, stop: int) -> list[Row]:
        out: list[Row] = []
        for hour in range(start // HOUR_MS, (stop - 1) // HOUR_MS + 1):
            rows = rows_of(hour)
            if rows and start <= rows[0][0] and rows[-1][0] < stop:
                out.extend(rows)
            else:
                out.extend(r for r in rows if start <= r[0] < stop)
        return out

    def _hour_units(self, start: int, stop: int) -> list[Row]:
        out: list[Row] = []
        for day in range(start // DAY_MS, (stop - 1) // DAY_MS + 1):
            out.extend(h for h in self._day_hours(day) if h is not None and start <= h[0] < stop)
        return out

    def _day_bucket_units(self, step: int, start: int, stop: int) -> list[Row]:
        """Buckets of `step` (a whole number of hours dividing a day), cached per day."""
        out: list[Row] = []
        first = max(start // DAY_MS, self.genesis_ms // DAY_MS)
        for day in range(first, (stop - 1) // DAY_MS + 1):
            key = (step, day)
            rows = self._day_buckets.get(key)
            if rows is None:
                hours = [h for h in self._day_hours(day) if h is not None]
                rows = self._day_buckets[key] = _group(hours, step) if step != HOUR_MS else hours
            out.extend(r for r in rows if start <= r[0] < stop)
        return out

    def _day_units(self, start: int, stop: int) -> list[Row]:
        first = max(start // DAY_MS, self.genesis_ms // DAY_MS)
        rows = (self.day_row(day) for day in range(first, (stop - 1) // DAY_MS + 1))
        return [row for row in rows if row is not None]

    def day_row(self, day: int) -> Row | None:
        """The aggregate of day `day` (days since the epoch), cached."""
        if day in self._day_rows:
            return self._day_rows[day]
        hours = [h for h in self._day_hours(day) if h is not None]
        row = _aggregate(day * DAY_MS, hours) if hours else None
        self._day_rows[day] = row
        return row

    # --- level 1: hours --------------------------------------------------------------------

    def _day_hours(self, day: int) -> tuple[Row | None, ...]:
        if day * DAY_MS < self.genesis_ms:
            return _QUIET_DAY
        hours = self._days.get(day)
        if hours is None:
            hours = self._days[day] = self._generate_day(day)
        return hours

    def _generate_day(self, day: int) -> tuple[Row | None, ...]:
        # `prices.normal` written out, every lookup hoisted and `min`/`max` as comparisons: this
        # runs for every hour of every market, and the floats must come out bit for bit as they
        # always did (same draws in the same order, same operations on the same operands)
        spec, ticks, min_units = self.spec, self._ticks, self._min_units
        exp, log, sqrt, cos = math.exp, math.log, math.sqrt, math.cos
        two_pi, most = _TWO_PI, MAX_TRADES_PER_HOUR
        levels = self._path.logs(day * 24, 25)  # the log price at each hour boundary
        vol, mean_units = spec.hourly_vol, spec.mean_trade * self._units
        per_minute_mean = spec.trades_per_minute
        rnd = rng_for(self._key, 10, day).random
        open_ms = day * DAY_MS
        out: list[Row | None] = []
        append = out.append
        for i, (empty, base_share, diurnal) in enumerate(self._hour_shapes):
            if rnd() < empty:
                append(None)
                open_ms += HOUR_MS
                continue
            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            activity = diurnal * exp(0.35 * n - 0.06)
            share = base_share * (0.85 + 0.15 * (1.6 if activity > 1.6 else activity))
            if share > 1.0:
                share = 1.0
            spread = sqrt(60 * share * (1 - share))
            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            minutes = int(60 * share + spread * n + 0.5)
            minutes = 1 if minutes < 1 else 60 if minutes > 60 else minutes
            per_minute = per_minute_mean * activity
            if per_minute < 1.0:
                per_minute = 1.0
            trades = int(minutes * per_minute + 0.5)
            if trades < minutes:
                trades = minutes
            if trades > most:
                trades = most

            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            open_ = round(exp(levels[i] + 0.0004 * n) * ticks)
            if open_ < 1:
                open_ = 1
            if trades == 1:
                close = open_
            else:
                close = round(exp(levels[i + 1]) * ticks)
                if close < 1:
                    close = 1
            top, bottom = (open_, close) if open_ >= close else (close, open_)
            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            up = round(top * (exp(abs(n) * vol * 0.6) - 1))
            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            down = round(bottom * (1 - exp(-abs(n) * vol * 0.6)))
            if trades == 3:  # one middle trade: only one side may reach past open/close
                if rnd() < 0.5:
                    up = 0
                else:
                    down = 0
            elif trades < 3:
                up = down = 0
            low = bottom - down
            if low < 1:
                low = 1

            n = sqrt(-2.0 * log(1.0 - rnd())) * cos(two_pi * rnd())
            volume = round(trades * (mean_units * exp(0.5 * n - 0.125)))
            if volume < trades * min_units:
                volume = trades * min_units
            append((open_ms, open_, top + up, low, close, volume, trades, minutes))
            open_ms += HOUR_MS
        return tuple(out)

    # --- level 2: five-minute blocks and minutes ------------------------------------------

    def _hour_blocks(self, hour: int) -> list[Row]:
        """The hour's 5-minute blocks that hold trades (rows carry their active minute count)."""
        blocks = self._blocks.get(hour)
        if blocks is None:
            row = self._day_hours(hour // 24)[hour % 24]
            if row is None:
                blocks = []
            else:
                rng = rng_for(self._key, 11, hour)
                blocks = self._split_row(rng, row, BLOCKS_PER_HOUR, BLOCK_MS, MINUTES_PER_BLOCK)
            blocks = self._blocks.put(hour, blocks)
        return blocks

    def _hour_minutes(self, hour: int) -> list[Row]:
        minutes = self._minutes.get(hour)
        if minutes is None:
            rng = rng_for(self._key, 12, hour)
            minutes = []
            for block in self._hour_blocks(hour):
                minutes.extend(self._split_row(rng, block, MINUTES_PER_BLOCK, MINUTE_MS, 1))
            minutes = self._minutes.put(hour, minutes)
        return minutes

    def _split_row(
        self, rng: random.Random, row: Row, slots: int, slot_ms: int, capacity: int
    ) -> list[Row]:
        """Split a row into its children, whose aggregate is exactly `row`.

        `row` = (open_ms, open, high, low, close, volume, trades, minutes): `minutes` active
        minutes spread over `slots` children of `capacity` minutes each. The children's closes
        follow a bridge from open to close inside [low, high]; the row's high and low are each
        put on one of its trades (never its first or last), so each child stays consistent:
        one trade means open = high = low = close, two trades leave no room past open/close,
        three trades leave room on one side only.
        """
        open_ms, o, h, l, c, volume, n, k = row  # noqa: E741
        rnd = rng.random

        places = slots * capacity
        if k == places:
            children = list(range(slots))
            floors = [capacity] * slots
        else:
            pool = list(range(places))
            for i in range(k):
                j = i + int(rnd() * (places - i))
                pool[i], pool[j] = pool[j], pool[i]
            if capacity == 1:
                children = sorted(pool[:k])
                floors = [1] * k
            else:
                per_slot = [0] * slots
                for place in pool[:k]:
                    per_slot[place // capacity] += 1
                children = [i for i, used in enumerate(per_slot) if used]
                floors = [used for used in per_slot if used]
        m = len(children)
        if m == 1:  # one child holds everything
            return [(open_ms + children[0] * slot_ms, o, h, l, c, volume, n, k)]

        # trades, then volume, shared out as `_split` does (written out: the floors' sums are
        # known, k active minutes and n trades of at least `min_units` each)
        log = math.log
        weights = [(0.05 - log(1.0 - rnd())) * f for f in floors]
        scale = (n - k) / sum(weights)
        counts = [f + int(w * scale) for f, w in zip(floors, weights, strict=True)]
        counts[weights.index(max(weights))] += n - sum(counts)
        weights = [cnt * (0.5 + rnd()) for cnt in counts]
        min_units = self._min_units
        scale = (volume - n * min_units) / sum(weights)
        volumes = [cnt * min_units + int(w * scale) for cnt, w in zip(counts, weights, strict=True)]
        volumes[weights.index(max(weights))] += volume - sum(volumes)

        # closes of the children: a bridge from open to close inside [low, high]
        # (steps: a sum of four uniforms, close enough to normal and much cheaper)
        scale = (h - l) * 0.35 / math.sqrt(m)
        sigma = scale * _SQRT3
        walk = [0.0]
        x = 0.0
        for _ in range(m):
            x += sigma * (rnd() + rnd() + rnd() + rnd() - 2.0)
            walk.append(x)
        drift = ((c - o) - x) / m
        # child i runs from bridge point i to point i + 1 (point 0 = open, point m = close,
        # the others rounded and kept inside [low, high]); clamps written out: this is hot
        firsts = [0] * m
        lasts = [0] * m
        point = o
        for i in range(m):
            if i + 1 < m:
                p = round(o + drift * (i + 1) + walk[i + 1])
                after = h if p > h else l if p < l else p
            else:
                after = c
            last = after
            if i == 0:
                first = o
                if counts[0] == 1:
                    last = o
            elif counts[i] == 1:
                first = last
            else:
                p = point + int(rnd() * 3) - 1
                first = h if p > h else l if p < l else p
            firsts[i], lasts[i] = first, last
            point = after

        tops: list[int | None] = [None] * m
        bottoms: list[int | None] = [None] * m
        need_high = h > max(o, c)
        need_low = l < min(o, c)
        if need_high or need_low:
            starts = []
            total = 0
            for cnt in counts:
                starts.append(total)
                total += cnt
            taken = -1
            for value, is_high, needed in ((h, True, need_high), (l, False, need_low)):
                if not needed:
                    continue
                t = 1 + int(rnd() * (n - 2))
                while t == taken:
                    t = 1 + int(rnd() * (n - 2))
                taken = t
                i = bisect_right(starts, t) - 1
                pos = t - starts[i]
                if pos == 0:
                    firsts[i] = value
                    if counts[i] == 1:
                        lasts[i] = value
                elif pos == counts[i] - 1:
                    lasts[i] = value
                elif is_high:
                    tops[i] = value
                else:
                    bottoms[i] = value

        out: list[Row] = []
        append = out.append
        nudge = max(1.0, scale * 0.5)
        for child, first, last, top, bottom, cnt, units, used in zip(
            children, firsts, lasts, tops, bottoms, counts, volumes, floors, strict=True
        ):
            high, low = (first, last) if first >= last else (last, first)
            if cnt >= 3:
                free = cnt - 2 - (top is not None) - (bottom is not None)
                if free > 0 and top is None and rnd() < 0.5:
                    top = high + int(rnd() * nudge)
                    if top > h:
                        top = h
                    free -= 1
                if free > 0 and bottom is None and rnd() < 0.5:
                    bottom = low - int(rnd() * nudge)
                    if bottom < l:
                        bottom = l
                if top is not None and top > high:
                    high = top
                if bottom is not None and bottom < low:
                    low = bottom
            append((open_ms + child * slot_ms, first, high, low, last, units, cnt, used))
        return out

    # --- level 3: trades -------------------------------------------------------------------

    def _minute_trades(self, minute: Row) -> list[TapeTrade]:
        trades = self._trades.get(minute[0])
        if trades is None:
            trades = self._trades.put(minute[0], self._generate_trades(minute))
        return trades

    def _generate_trades(self, minute: Row) -> list[TapeTrade]:
        open_ms, first, high, low, last, volume, n = minute[:7]
        index = open_ms // MINUTE_MS
        rng = rng_for(self._key, 12, index)
        rnd = rng.random

        stamps = sorted(int(rnd() * MINUTE_MS) for _ in range(n))
        buy = rnd() < 0.5
        sides = [buy]
        for j in range(1, n):
            if rnd() < BURST_SHARE:
                stamps[j] = stamps[j - 1]
                sides.append(sides[-1])
            else:
                sides.append(rnd() < 0.5)

        if n == 1:
            prices = [first]
        else:
            span = max(1, (high - low) // 4)
            prices = [first]
            for j in range(1, n - 1):
                base = first + (last - first) * j / (n - 1)
                prices.append(min(high, max(low, round(base + (rnd() - 0.5) * span))))
            prices.append(last)
            middle = list(range(1, n - 1))
            if high > max(first, last):
                prices[middle.pop(int(rnd() * len(middle)))] = high
            if low < min(first, last):
                prices[middle.pop(int(rnd() * len(middle)))] = low

        weights = [(0.02 - math.log(1.0 - rnd())) ** 2 for _ in range(n)]
        amounts = _split(volume, weights, [self._min_units] * n)

        price, unit = self._price, self._unit
        seq0 = index * 1000
        return [
            TapeTrade(
                seq0 + j,
                open_ms + stamps[j],
                price(prices[j]),
                Decimal(amounts[j]) * unit,
                "buy" if sides[j] else "sell",
            )
            for j in range(n)
        ]


def _aggregate(open_ms: int, rows: list[Row]) -> Row:
    return (
        open_ms,
        rows[0][1],
        max(r[2] for r in rows),
        min(r[3] for r in rows),
        rows[-1][4],
        sum(r[5] for r in rows),
        sum(r[6] for r in rows),
    )


def _group(rows: list[Row], step: int) -> list[Row]:
    """Aggregate ascending unit rows into epoch-aligned buckets of `step` ms."""
    out: list[Row] = []
    bucket: list[Row] = []
    current = None
    for row in rows:
        b = row[0] // step * step
        if b != current:
            if bucket:
                assert current is not None  # set with the bucket's first row
                out.append(_aggregate(current, bucket))
            bucket, current = [row], b
        else:
            bucket.append(row)
    if bucket:
        assert current is not None
        out.append(_aggregate(current, bucket))
    return out
