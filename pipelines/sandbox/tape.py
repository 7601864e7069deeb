"""What a market looks like from the server at a given `now`: trades and bars up to now.

The world's `Market` is a pure function of time and knows nothing of "now"; these helpers cut
it at `now_ms` (a trade at `ts_ms <= now_ms` has happened) and rebuild the still-open bar from
the trades that have happened so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple, Protocol

LOOKBACK_START_MS = 3_600_000


class TradeLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def side(self) -> str: ...


class Bar(NamedTuple):
    """One candle: the world's own (`Market.candles`) and every bar the server builds (a named
    tuple, not a frozen dataclass: pages build thousands, and a tuple is made much faster)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int

    @classmethod
    def flat(cls, open_ms: int, price: Decimal) -> Bar:
        return cls(open_ms, price, price, price, price, Decimal(0), 0)


class MarketLike(Protocol):
    """The part of the world's `Market` the server uses (contracts.md §C)."""

    symbol: str
    base: str
    quote: str
    price_decimals: int
    amount_decimals: int
    genesis_ms: int

    def trades(self, start_ms: int, end_ms: int) -> Sequence[TradeLike]: ...
    def candles(self, interval_s: int, start_ms: int, end_ms: int) -> Sequence[Bar]: ...
    def trade_uuid(self, trade: TradeLike) -> str: ...


def aggregate(open_ms: int, trades: Sequence[TradeLike]) -> Bar:
    prices = [t.price for t in trades]
    volume = sum((t.amount for t in trades), Decimal(0))
    return Bar(open_ms, prices[0], max(prices), min(prices), prices[-1], volume, len(trades))


def trades_until(market: MarketLike, start_ms: int, end_ms: int, now_ms: int) -> list[TradeLike]:
    """Trades with `start_ms <= ts < end_ms` that have happened by `now_ms`, ascending."""
    end_ms = min(end_ms, now_ms + 1)
    if end_ms <= start_ms:
        return []
    return list(market.trades(start_ms, end_ms))


def latest_trades_until(
    market: MarketLike, start_ms: int, end_ms: int, now_ms: int, limit: int
) -> list[TradeLike]:
    """The newest `limit` trades with `start_ms <= ts < end_ms` (cut at now), NEWEST FIRST."""
    end_ms = min(end_ms, now_ms + 1)
    if end_ms <= start_ms or limit <= 0:
        return []
    latest = getattr(market, "latest_trades", None)
    if latest is not None:  # the world's Market walks backwards and stops early
        return list(latest(end_ms, limit, start_ms))
    trades = list(market.trades(start_ms, end_ms))
    trades.reverse()
    return trades[:limit]


def traded_bars(
    market: MarketLike, interval_ms: int, start_ms: int, end_ms: int, now_ms: int
) -> list[Bar]:
    """Bars that hold trades, with open time in `[start_ms, end_ms)`, as known at `now_ms`.

    Closed bars come from the market's own aggregates; the bar holding `now_ms` is aggregated
    from the trades up to now only. Ascending by open time.
    """
    end_ms = min(end_ms, now_ms + 1)
    if end_ms <= start_ms:
        return []
    current_open = now_ms // interval_ms * interval_ms
    bars: list[Bar] = []
    closed_end = min(end_ms, current_open)
    if closed_end > start_ms:
        bars = list(market.candles(interval_ms // 1000, start_ms, closed_end))
    if start_ms <= current_open < end_ms:
        live = trades_until(market, current_open, current_open + interval_ms, now_ms)
        if live:
            bars.append(aggregate(current_open, live))
    return bars


def close_before(market: MarketLike, t_ms: int) -> Decimal | None:
    """The price of the last trade before `t_ms`, or None if nothing traded before it."""
    last_trade_before = getattr(market, "last_trade_before", None)
    if last_trade_before is not None:  # the world's Market has a fast path
        trade = last_trade_before(t_ms)
        return None if trade is None else trade.price
    span = LOOKBACK_START_MS
    end = t_ms
    while end > market.genesis_ms:
        start = max(market.genesis_ms, end - span)
        trades = market.trades(start, end)
        if trades:
            return trades[-1].price
        end = start
        span *= 4
    return None


def filled_bars(
    market: MarketLike, interval_ms: int, first_open_ms: int, last_open_ms: int, now_ms: int
) -> list[Bar]:
    """Every bar from `first_open_ms` to `last_open_ms` (both aligned, inclusive), Bitstamp-style.

    An interval without trades gets a flat zero-volume bar at the previous close; intervals
    before the market's first trade get nothing.
    """
    if last_open_ms < first_open_ms:
        return []
    bars = traded_bars(market, interval_ms, first_open_ms, last_open_ms + interval_ms, now_ms)
    if len(bars) == (last_open_ms - first_open_ms) // interval_ms + 1:
        return bars  # no interval without trades
    by_open = {bar.open_ms: bar for bar in bars}
    previous = None if first_open_ms in by_open else close_before(market, first_open_ms)
    out: list[Bar] = []
    for open_ms in range(first_open_ms, last_open_ms + 1, interval_ms):
        bar = by_open.get(open_ms)
        if bar is not None:
            out.append(bar)
            previous = bar.close
        elif previous is not None:
            out.append(Bar.flat(open_ms, previous))
    return out
