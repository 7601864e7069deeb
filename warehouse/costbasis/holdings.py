"""`holdings(connection, on, currency)`: what each wallet held at 00:00 UTC of a day, valued.

The balance is the `ledger` replayed up to and including that moment, per wallet
("exchange/account") and asset; staking credits and debits are left out, so that coins in
staking count as held (they are still the owner's, as in the cost-basis lots). Every asset is
listed, fiat included (the reporting currency at 1); a fee whose asset the source did not name
(asset "?") cannot be held or valued and is left out. The price is the latest at or before the
moment (see `prices`); a missing one raises MissingPriceError listing every asset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb

from warehouse.costbasis.exact import EXACT, tidy
from warehouse.costbasis.model import Holding
from warehouse.costbasis.prices import DEFAULT_MAX_STALENESS, PriceBook


def holdings(
    connection: duckdb.DuckDBPyConnection,
    on: date,
    currency: str = "EUR",
    *,
    max_staleness: timedelta = DEFAULT_MAX_STALENESS,
) -> list[Holding]:
    """Balances at `on` 00:00 UTC per wallet and asset (non-zero only), with price and value."""
    moment = datetime(on.year, on.month, on.day, tzinfo=UTC)
    prices = PriceBook.load(connection, currency, max_staleness=max_staleness)
    rows = connection.execute(
        "select exchange || '/' || account as wallet, asset, sum(amount) as quantity "
        "from ledger where executed_at <= ? and kind <> 'staking' and asset <> '?' "
        "group by all having sum(amount) <> 0 order by wallet, asset",
        [moment],
    ).fetchall()
    result = []
    for wallet, asset, quantity in rows:
        price = prices.price(asset, moment)
        if price is None:
            prices.note_missing(asset, moment)
            continue
        amount = tidy(quantity)
        value = tidy(EXACT.multiply(amount, price))
        result.append(Holding(wallet, asset, amount, price, value))
    prices.raise_if_missing()
    return result
