"""Values in the reporting currency, through the cost-basis engine's valuation (`PriceBook`), so
that every export prices exactly as the gains and income schedules do.

A price is the newest hourly close at or before the moment, no staler than the engine allows;
the reporting currency is worth 1; a value is quantity × price, exact. Nothing is priced at 0:
`value` returns None without a price, and `require` collects the missing (asset, time) pairs
that `check` raises as MissingPriceError.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import duckdb

from warehouse.costbasis.prices import DEFAULT_MAX_STALENESS, PriceBook


class Prices:
    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        currency: str,
        *,
        loaded: PriceBook | None = None,
    ) -> None:
        """The prices in `currency`: `loaded` (read before, as `PriceBook.load` reads them with
        the default staleness), else read now."""
        self.currency = currency
        if loaded is None:
            self._book = PriceBook.load(connection, currency)  # raises for an unknown currency
        elif (loaded.currency, loaded.max_staleness) != (currency, DEFAULT_MAX_STALENESS):
            raise ValueError(f"prices in {loaded.currency} given for an export in {currency}")
        else:
            self._book = loaded.fresh()  # its own record of what is missing

    @property
    def book(self) -> PriceBook:
        """The prices as loaded (its `fresh()` copy values them elsewhere, reading nothing)."""
        return self._book

    def price(self, asset: str, at: datetime) -> Decimal | None:
        """One unit of `asset` in the reporting currency at `at`, or None."""
        return self._book.price(asset, at)

    def value(self, asset: str, at: datetime, quantity: Decimal) -> Decimal | None:
        """quantity of `asset` in the reporting currency at `at`, or None without a price."""
        if asset == self.currency:
            return quantity
        return self._book.value(asset, quantity, at, record=False)

    def require(self, asset: str, at: datetime, quantity: Decimal) -> Decimal:
        """Like `value`, but a missing price is remembered and 0 returned as a placeholder:
        call `check()` before anything that used it is written."""
        value = self.value(asset, at, quantity)
        if value is None:
            self._book.note_missing(asset, at)
            return Decimal(0)
        return value

    def check(self) -> None:
        """Raise MissingPriceError listing every (asset, time) `require` could not price."""
        self._book.raise_if_missing()
