"""Holdings: each account's balance of every asset at the start of a day, valued (for method
nl this is the box 3 figure: the holdings on 1 January).

The day is --date, else the first day of the period (1 January of --year; uk: 6 April, the
start of the tax year), else the day after the last ledger movement. Balances and prices are
the cost-basis engine's `holdings` (00:00 UTC of that day; coins in the exchange's staking
count as held). Columns: date, wallet, asset, quantity, price, value, currency; the sidecar
totals the value, per asset and overall.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from warehouse.costbasis.events import holdings
from warehouse.exports.context import Context
from warehouse.exports.options import ExportOptionError
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export, Table

COLUMNS = ("date", "wallet", "asset", "quantity", "price", "value", "currency")


def holdings_day(context: Context) -> date:
    if context.options.on is not None:
        return context.options.on
    if context.period.first is not None:
        return context.period.first
    last = context.last_movement()
    if last is None:
        raise ExportOptionError("the ledger is empty: nothing is held")
    return context.period.local_day(last) + timedelta(days=1)


def build(context: Context) -> Export:
    on, currency = holdings_day(context), context.options.currency
    held = holdings(context.connection, on, currency)
    rows = tuple(
        sorted(
            (
                day(on),
                h.wallet,
                h.asset,
                plain(h.quantity),
                plain(h.price),
                plain(h.value),
                currency,
            )
            for h in held
        )
    )
    by_asset: dict[str, Decimal] = defaultdict(Decimal)
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    for h in held:
        by_asset[h.asset] += h.value
        quantity[h.asset] += h.quantity
    name = f"holdings-{day(on)}-{currency}"
    return Export(
        format="holdings",
        stem=name,
        tables=(Table(f"{name}.csv", COLUMNS, rows),),
        notes=(
            f"Balances at {day(on)} 00:00 UTC per account, valued in {currency}; coins in an "
            "exchange's staking count as held.",
            "For method nl: the box 3 figure is the total value on 1 January.",
        ),
        totals={
            "date": day(on),
            "value": plain(sum(by_asset.values(), Decimal(0))),
            "by_asset": {
                asset: {"quantity": plain(quantity[asset]), "value": plain(value)}
                for asset, value in sorted(by_asset.items())
            },
        },
    )
