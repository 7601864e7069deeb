"""The currencies tally values things in: the exports (`tally export --currency`), the notebooks
and `reporting_currency` in `tally.toml` read this one list.

Standard library only: `tally --help` imports it. Every currency here needs its rate in the
warehouse's `prices` view (USD and GBP through Bitstamp's EUR-USD and GBP-EUR markets).
"""

from __future__ import annotations

REPORTING_CURRENCIES = ("EUR", "USD", "GBP")
DEFAULT_REPORTING_CURRENCY = "EUR"
