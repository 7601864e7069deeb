"""Holdings: what the owner held at the start of a day, valued (for method nl this is the box 3
figure: the holdings on 1 January at 00:00 in the Netherlands).

The day is --date, else the first day of the period (1 January of --year; uk: 6 April, the
start of the tax year), else the day after the last ledger movement; the moment is 00:00 of
that day in the method's timezone (Europe/Amsterdam for nl, Europe/Berlin for de,
Europe/London for uk, else UTC or --timezone). Balances and prices are the cost-basis engine's
`holdings`: movements booked before the moment count, none at or after it; each account's row
is its ledger balance then (the ledger export's opening balance for a period starting at that
moment), its coins in the exchange's staking have a row "<account> (staking)", and coins on
their way between two own accounts a row "<from> -> <to> (in transit)". Columns: date, wallet,
asset, quantity, price, value, currency; the sidecar totals the value, per asset and overall.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from warehouse.costbasis.holdings import holdings
from warehouse.costbasis.model import Holding
from warehouse.exports.context import Context
from warehouse.exports.options import ExportOptionError
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export

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


def name(context: Context) -> str:
    """The file stem: holdings-<day>-<currency>."""
    return f"holdings-{day(holdings_day(context))}-{context.options.currency}"


def listing(context: Context) -> list[tuple[Holding, tuple[str, ...]]]:
    """The holdings with their CSV rows, in the file's order (row n is the n-th)."""
    on, currency = holdings_day(context), context.options.currency
    held = holdings(
        context.connection,
        on,
        currency,
        zone=context.period.zone,
        prices=context.prices,
        history=context.history,
    )
    pairs = [
        (
            h,
            (
                day(on),
                h.wallet,
                h.asset,
                plain(h.quantity),
                plain(h.price),
                plain(h.value),
                currency,
            ),
        )
        for h in held
    ]
    return sorted(pairs, key=lambda pair: pair[1])


def build(context: Context) -> Export:
    on, currency, zone = holdings_day(context), context.options.currency, context.period.zone
    pairs = listing(context)
    held = [h for h, _ in pairs]
    rows = tuple(row for _, row in pairs)
    by_asset: dict[str, Decimal] = defaultdict(Decimal)
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    for h in held:
        by_asset[h.asset] += h.value
        quantity[h.asset] += h.quantity
    stem = name(context)
    moment = context.period.instant(on)
    return Export.one_file(
        "holdings",
        stem,
        COLUMNS,
        rows,
        notes=(
            f"Balances at {day(on)} 00:00 {zone} ({moment.isoformat()}), valued in {currency}: "
            "movements booked before that moment, none at or after it.",
            "An account's row is its ledger balance then; '<account> (staking)' is what it had "
            "in the exchange's staking, '<from> -> <to> (in transit)' what was on its way "
            "between two own accounts.",
            "For method nl: the box 3 figure is the total value on 1 January.",
        ),
        totals={
            "date": day(on),
            "moment": moment.isoformat(),
            "value": plain(sum(by_asset.values(), Decimal(0))),
            "by_asset": {
                asset: {"quantity": plain(quantity[asset]), "value": plain(value)}
                for asset, value in sorted(by_asset.items())
            },
        },
    )
