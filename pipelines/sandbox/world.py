"""The simulated world both emulators serve: markets and the two accounts, from one seed.

`World(seed=…, days=…, now_ms=…)` is deterministic: the same seed and `now_ms` give identical
markets and ledgers. Without `now_ms` the clock is the wall clock: the accounts are generated
once for `[creation - days, creation]`, while the tape keeps producing trades as time passes.

The account window's market data starts at `genesis_ms`, a UTC midnight at least
`GENESIS_MARGIN_DAYS` before the account window. A few old Bitstamp rows
(2020–2021) lie before genesis on purpose: they show the ledger's int-`type` era. The tape itself
starts earlier, at `tape_start_ms`, so that those rows can be valued from candles as on the real
exchange. Like the rest of the tape it is generated only when first asked for (and cached): a
world builds what its accounts trade on, and a server what it serves.

`delisted` holds the markets the Bitvavo account traded and the exchange no longer lists
(`catalog.DELISTED`): the account script trades on their tape, the emulators serve none of their
market data (they are not in `markets`).

`listings` holds the markets that the exchange lists late (`catalog.LISTED_LATE`), each at a UTC
midnight about halfway through the account window: the emulators serve nothing of such a market
before its listing (its tape before it is never shown), and no account trades it.

`quirks` switches the ledgers' real-API oddities on (default) or off. The Bitstamp OHLC quirks (a
duplicated daily candle, 999 rows for limit 1000) belong to the server, which reads `quirks`.
"""

from __future__ import annotations

import time

from pipelines.sandbox.account_script import AccountScript
from pipelines.sandbox.accounts import BitstampAccount, BitvavoAccount, build_accounts
from pipelines.sandbox.catalog import DELISTED, LISTED_LATE, build_markets
from pipelines.sandbox.market import DAY_MS, Market

GENESIS_MARGIN_DAYS = 30
OLD_ROWS_TAPE_START_MS = 1_580_515_200_000  # 2020-02-01T00:00Z, a month before the first old row


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def listing_ms(history_start_ms: int, days: int) -> int:
    """A UTC midnight after the account window's start, about halfway through it."""
    listed = (history_start_ms + days * DAY_MS // 2) // DAY_MS * DAY_MS
    return listed if listed > history_start_ms else listed + DAY_MS


class World:
    """Markets (`markets[(exchange, symbol)]`) and accounts (`bitstamp`, `bitvavo`)."""

    def __init__(
        self, *, seed: int = 1, days: int = 90, now_ms: int | None = None, quirks: bool = True
    ) -> None:
        if days < 1:
            raise ValueError("days must be >= 1")
        self.seed = seed
        self.days = days
        self.quirks = quirks
        self._frozen_ms = now_ms
        self.created_ms = now_ms if now_ms is not None else wall_clock_ms()
        self.history_start_ms = self.created_ms - days * DAY_MS
        self.genesis_ms = (self.history_start_ms - GENESIS_MARGIN_DAYS * DAY_MS) // DAY_MS * DAY_MS
        self.tape_start_ms = min(self.genesis_ms, OLD_ROWS_TAPE_START_MS)
        self.markets: dict[tuple[str, str], Market] = build_markets(seed, self.tape_start_ms)
        self.delisted: dict[tuple[str, str], Market] = build_markets(
            seed, self.tape_start_ms, DELISTED
        )
        self.listings: dict[tuple[str, str], int] = {
            key: listing_ms(self.history_start_ms, days) for key in LISTED_LATE
        }
        script = AccountScript(
            seed=seed,
            now_ms=self.created_ms,
            days=days,
            genesis_ms=self.genesis_ms,
            quirks=quirks,
            markets={**self.markets, **self.delisted},
        ).run()
        accounts = build_accounts(script, self.markets)
        self.bitstamp: BitstampAccount = accounts[0]
        self.bitvavo: BitvavoAccount = accounts[1]

    @property
    def frozen(self) -> bool:
        """True when the clock stands still at `now_ms()`."""
        return self._frozen_ms is not None

    def now_ms(self) -> int:
        """The world's clock: frozen when `now_ms` was given, else the wall clock."""
        return self._frozen_ms if self._frozen_ms is not None else wall_clock_ms()

    def market(self, exchange: str, symbol: str) -> Market:
        return self.markets[(exchange, symbol)]

    def listed_ms(self, exchange: str, symbol: str) -> int:
        """When the exchange listed the market: its listing, else the tape's start."""
        market = self.markets[(exchange, symbol)]
        return max(market.genesis_ms, self.listings.get((exchange, symbol), market.genesis_ms))
