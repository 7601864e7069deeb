"""Valuation in the reporting currency from the warehouse's `prices` view.

The price of an asset at a moment is the latest `priced_at` at or before it (an hourly close),
provided its observation is no older than `max_staleness` (default 7 days) at that moment:
a stale or absent price is missing, never 0. The reporting currency itself is worth 1.
The `prices` view values in EUR, USD and GBP (GBP through the Bitstamp GBP-EUR close, inverted).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa

from warehouse.costbasis.exact import EXACT, tidy
from warehouse.costbasis.model import MissingPriceError, UnsupportedCurrencyError

WAREHOUSE_CURRENCIES = ("EUR", "USD", "GBP")
DEFAULT_MAX_STALENESS = timedelta(days=7)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def check_currency(currency: str) -> None:
    if currency not in WAREHOUSE_CURRENCIES:
        raise UnsupportedCurrencyError(
            f"reporting in {currency} is not available yet: no {currency} market is landed, "
            f"so the warehouse values in {', '.join(WAREHOUSE_CURRENCIES)} only (view `prices`)"
        )


@dataclass
class Series:
    """One asset's prices in time order, times in microseconds since the epoch (a lookup
    converts one moment instead of the load converting every hour). A price is kept as the
    view's text until it is first asked for, then as a tidy Decimal."""

    priced_at: list[int] = field(default_factory=list)
    price: list[str | Decimal] = field(default_factory=list)
    observed_at: list[int] = field(default_factory=list)

    def price_at(self, index: int) -> Decimal:
        price = self.price[index]
        if isinstance(price, str):
            price = self.price[index] = tidy(Decimal(price))
        return price


def micros(moment: datetime) -> int:
    """A timezone-aware moment in microseconds since the epoch, exactly."""
    return (moment - EPOCH) // MICROSECOND


class PriceBook:
    """Prices by asset; `value` records every (asset, time) it could not value in `missing`."""

    def __init__(
        self,
        currency: str,
        rows: Iterable[tuple[str, datetime, Decimal, datetime]] = (),
        *,
        max_staleness: timedelta = DEFAULT_MAX_STALENESS,
    ) -> None:
        """rows: (asset, priced_at, price, observed_at), any order."""
        self.currency = currency
        self.max_staleness = max_staleness
        self._staleness = max_staleness // MICROSECOND
        self.missing: set[tuple[str, datetime]] = set()
        self._series: dict[str, Series] = {}
        for asset, priced_at, price, observed_at in sorted(rows, key=lambda r: (r[0], r[1])):
            series = self._series.setdefault(asset, Series())
            series.priced_at.append(micros(priced_at))
            series.price.append(tidy(price))
            series.observed_at.append(micros(observed_at))

    @classmethod
    def load(
        cls,
        connection: duckdb.DuckDBPyConnection,
        currency: str,
        *,
        max_staleness: timedelta = DEFAULT_MAX_STALENESS,
    ) -> PriceBook:
        check_currency(currency)
        book = cls(currency, max_staleness=max_staleness)
        # Fetched as Arrow columns and converted a column at a time: times as integers, the
        # price (DECIMAL(38,18), exact in Arrow) as its text; a timestamp with time zone and a
        # DECIMAL fetched as Python objects would cost one object per hour.
        table = connection.execute(
            "select asset, epoch_us(priced_at) as priced_at, price, "
            "epoch_us(observed_at) as observed_at "
            "from prices where currency = ? order by asset, priced_at",
            [currency],
        ).to_arrow_table()
        assets = table["asset"].to_pylist()
        priced_at = table["priced_at"].to_pylist()
        price = table["price"].cast(pa.string()).to_pylist()
        observed_at = table["observed_at"].to_pylist()
        start = 0
        for asset, run in itertools.groupby(assets):
            end = start + sum(1 for _ in run)
            book._series[asset] = Series(
                priced_at[start:end], price[start:end], observed_at[start:end]
            )
            start = end
        return book

    def fresh(self) -> PriceBook:
        """A book over the same prices with nothing missing yet (the prices are read once, and
        only here: a caller that already loaded them need not read the view again)."""
        book = PriceBook(self.currency, max_staleness=self.max_staleness)
        book._series = self._series
        return book

    def price(self, asset: str, at: datetime) -> Decimal | None:
        if asset == self.currency:
            return Decimal(1)
        series = self._series.get(asset)
        if series is None:
            return None
        moment = micros(at)
        index = bisect.bisect_right(series.priced_at, moment) - 1
        if index < 0 or moment - series.observed_at[index] > self._staleness:
            return None
        return series.price_at(index)

    def value(
        self, asset: str, quantity: Decimal, at: datetime, *, record: bool = True
    ) -> Decimal | None:
        """quantity × price at `at`, exact; None (and noted in `missing`) without a price."""
        price = self.price(asset, at)
        if price is None:
            if record:
                self.note_missing(asset, at)
            return None
        return tidy(EXACT.multiply(quantity, price))

    def note_missing(self, asset: str, at: datetime) -> None:
        self.missing.add((asset, at.astimezone(UTC)))

    def raise_if_missing(self) -> None:
        if self.missing:
            raise MissingPriceError(self.missing, self.currency)
