"""Cost basis: gains, income and open lots from the unified ledger, exact in Decimal.

    events = events_from_warehouse(connection, currency="EUR")
    result = compute(events, method="fifo", lots="pooled", timezone="UTC")
    on_new_year = holdings(connection, date(2024, 1, 1), "EUR", zone="Europe/Amsterdam")

Modules: `model` (Event, Lot, Gain, Income, Result, Holding, errors), `engine` (`compute`),
one per method family — `identified` (fifo, lifo, hifo), `uk` (HMRC same day, 30 days,
section 104), `de` (FIFO per wallet, one-year exemption), `nl` (no gains) — on `lots` (the
lot book) and `steps` (prepared events, gain parts), `exact` (the arithmetic), `events` (Events
from the warehouse views), `holdings` (balances at the start of a day) and `prices` (the
valuation lookup). The engine itself is pure: no DuckDB below `events` and `holdings`.
"""

from __future__ import annotations

from warehouse.costbasis.engine import compute
from warehouse.costbasis.events import events_from_warehouse, holdings
from warehouse.costbasis.model import (
    FIAT_CURRENCIES,
    LOT_MODES,
    METHODS,
    Event,
    Gain,
    Holding,
    Income,
    Lot,
    LotUse,
    MissingPriceError,
    Result,
    UnsupportedCurrencyError,
)

__all__ = [
    "FIAT_CURRENCIES",
    "LOT_MODES",
    "METHODS",
    "Event",
    "Gain",
    "Holding",
    "Income",
    "Lot",
    "LotUse",
    "MissingPriceError",
    "Result",
    "UnsupportedCurrencyError",
    "compute",
    "events_from_warehouse",
    "holdings",
]
