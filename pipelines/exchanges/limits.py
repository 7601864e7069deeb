"""The exchanges' fixed limits and tally's pacing defaults, each written once.

Read by the clients (which refuse what the exchange would) and by their adapters (which declare
them to the flows and the configuration) alike, so that neither imports the other. Standard
library only: the registry imports it. Sources: docs/exchanges.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final, NamedTuple

# --- Bitstamp ---------------------------------------------------------------------------------

PUBLIC_TRADE_WINDOWS: Final[Mapping[str, int]] = {"minute": 60, "hour": 3600, "day": 86400}
"""`GET /api/v2/transactions/{pair}/?time=…`: the rolling windows served, in seconds."""


class BitstampPacing(NamedTuple):
    """How fast tally sends to Bitstamp, which sends no rate-limit headers: ccxt paces at 8,000
    requests per 10 minutes (the documented limit is 10,000) and the per-second limit is 400.
    `[bitstamp]`'s own keys in tally.toml (`ExchangeSettings.options`)."""

    requests_per_window: int = 8000
    window_seconds: float = 600.0
    max_requests_per_second: float = 400.0


BITSTAMP_PACING: Final = BitstampPacing()
"""The built-in pacing: `[bitstamp]`'s defaults in tally.toml and the clients'."""

OHLC_LIMIT: Final = 1000
"""`GET /api/v2/ohlc/{pair}/`: the most candles a page holds (`limit` 1–1000)."""

# --- Bitvavo ----------------------------------------------------------------------------------

CANDLE_LIMIT: Final = 1440
"""`GET /v2/{market}/candles`: the most candles (or intervals: not documented) a page holds."""

MAX_TRADE_SPAN: Final = timedelta(hours=24)
"""`GET /v2/{market}/trades`: the longest `end − start` recent docs allow (open: walked within)."""

ACCESS_WINDOW_MS: Final = 10_000
"""How long a signed request stays valid (`Bitvavo-Access-Window`), as tally sends it."""
ACCESS_WINDOW_BOUNDS_MS: Final = (100, 60_000)
"""The access windows Bitvavo accepts, in milliseconds, both ends included."""


class BitvavoOptions(NamedTuple):
    """`[bitvavo]`'s own keys in tally.toml (`ExchangeSettings.options`); it is paced from
    Bitvavo's rate-limit headers, so it has no pacing keys."""

    access_window_ms: int = ACCESS_WINDOW_MS
