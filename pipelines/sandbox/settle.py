"""Bitvavo's unsettled newest candles (`bitvavo-candles-settle=MINUTES`).

Users of the official SDK report (python-bitvavo-api issue 20) that two reads of the newest
candles a few seconds apart disagree: the first read's OHLCV are "not finalized", the second
misses some candles the first had. The sandbox plays this as an aggregator that lags: every
closed candle whose interval ended within the last MINUTES before `now` is served either not at
all or as the aggregate of only the first part of its interval's trades (its volume, high, low
and close still to change). Which, and how large a part, is a deterministic function of (seed,
market, interval, open time, now), so a read at another `now` may differ, and a read made
MINUTES after the candle closed returns it complete. The open candle is served as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pipelines.sandbox.tape import Bar, MarketLike, aggregate

MISSING_SHARE = 0.25  # of the unsettled candles, this share is left out of a read
MIN_PART, MAX_PART = 0.2, 0.95  # the share of its interval a served unsettled candle aggregates


def unsettled(
    market: MarketLike,
    interval: str,
    interval_ms: int,
    bars: Sequence[Bar],
    *,
    now_ms: int,
    settle_ms: int,
    seed: int,
) -> list[Bar]:
    """`bars` as a read at `now_ms` sees them when candles take `settle_ms` to settle."""
    out: list[Bar] = []
    for bar in bars:
        close = bar.open_ms + interval_ms
        if not now_ms - settle_ms < close <= now_ms:
            out.append(bar)
            continue
        draw = _draw(seed, market.symbol, interval, bar.open_ms, now_ms)
        if draw < MISSING_SHARE:
            continue
        part = MIN_PART + (MAX_PART - MIN_PART) * (draw - MISSING_SHARE) / (1 - MISSING_SHARE)
        trades = market.trades(bar.open_ms, bar.open_ms + max(1, int(interval_ms * part)))
        if trades:
            out.append(aggregate(bar.open_ms, trades))
    return out


def _draw(seed: int, symbol: str, interval: str, open_ms: int, now_ms: int) -> float:
    """A uniform number in [0, 1) fixed by its arguments."""
    text = f"{seed}|{symbol}|{interval}|{open_ms}|{now_ms}|settle"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
