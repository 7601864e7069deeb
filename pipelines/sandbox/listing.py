"""A market as the exchange shows it once it is listed: nothing of its tape before the listing.

`World.listings` names the markets an exchange lists after the tape starts. `listed(world,
exchange, market)` wraps such a market so that every helper of `tape.py` sees no trade before the
listing: `genesis_ms` is the listing, a candle opens at it at the earliest (a bucket that
straddles it aggregates only the trades after it), and the filled Bitstamp series starts at the
first trade after it. Any other market is returned as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pipelines.sandbox.tape import Bar, MarketLike, TradeLike, aggregate


def listed(world: Any, exchange: str, market: MarketLike) -> MarketLike:
    """`market` as served: hidden before its listing when the world lists it late."""
    when = getattr(world, "listings", {}).get((exchange, market.symbol))
    if when is None or when <= market.genesis_ms:
        return market
    return ListedMarket(market, when)


def first_price(market: MarketLike, now_ms: int) -> Decimal | None:
    """The price of the market's first trade (at or after `genesis_ms`, by `now_ms`)."""
    day = 86_400_000
    start = market.genesis_ms
    while start <= now_ms:
        found = market.trades(start, min(start + day, now_ms + 1))
        if found:
            return found[0].price
        start += day
    return None


class ListedMarket:
    """A `MarketLike` view of `market` from `listed_ms` on."""

    def __init__(self, market: MarketLike, listed_ms: int) -> None:
        self._market = market
        self.symbol = market.symbol
        self.base = market.base
        self.quote = market.quote
        self.price_decimals = market.price_decimals
        self.amount_decimals = market.amount_decimals
        self.genesis_ms = listed_ms

    def __repr__(self) -> str:
        return f"ListedMarket({self._market!r}, listed_ms={self.genesis_ms})"

    def trades(self, start_ms: int, end_ms: int) -> Sequence[TradeLike]:
        return self._market.trades(max(start_ms, self.genesis_ms), end_ms)

    def latest_trades(
        self, end_ms: int, limit: int, start_ms: int | None = None
    ) -> Sequence[TradeLike]:
        """The newest `limit` trades in `[start_ms, end_ms)` after the listing, newest first."""
        floor = self.genesis_ms if start_ms is None else max(start_ms, self.genesis_ms)
        latest = getattr(self._market, "latest_trades", None)
        if latest is not None:
            return list(latest(end_ms, limit, floor))
        return list(reversed(self.trades(floor, end_ms)))[:limit]

    def last_trade_before(self, t_ms: int) -> TradeLike | None:
        found = self.latest_trades(t_ms, 1)
        return found[0] if found else None

    def candles(self, interval_s: int, start_ms: int, end_ms: int) -> Sequence[Bar]:
        """Candles with open time in `[start_ms, end_ms)` holding trades after the listing."""
        step = interval_s * 1000
        straddling = self.genesis_ms // step * step
        first_whole = -(-self.genesis_ms // step) * step
        out: list[Bar] = []
        if straddling < self.genesis_ms and start_ms <= straddling < end_ms:
            after = self._market.trades(self.genesis_ms, straddling + step)
            if after:
                out.append(aggregate(straddling, after))
        out.extend(self._market.candles(interval_s, max(start_ms, first_whole), end_ms))
        return out

    def trade_uuid(self, trade: TradeLike) -> str:
        return self._market.trade_uuid(trade)
