"""The ledger export: one row per balance movement of both accounts, the accountant's raw
material, valued in the reporting currency where a price exists.

Columns: time (UTC), day (in the method's calendar), exchange, account, asset, amount (signed:
positive credits the account), kind, event_kind, event_type, market, reference, source, leg,
price, value, currency. price is one unit of the asset at the newest hour end at or before the
movement (the reporting currency itself is 1); value = amount × price, rounded half away from
zero to 18 decimals (as the warehouse's `fees` view), empty where there is no price. The sidecar
gives each account's opening balance, movements and closing balance per asset for the period.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from warehouse.costbasis.exact import EXACT
from warehouse.exports.context import Context
from warehouse.exports.text import day, iso_utc, plain
from warehouse.exports.writer import Export

COLUMNS = (
    "time",
    "day",
    "exchange",
    "account",
    "asset",
    "amount",
    "kind",
    "event_kind",
    "event_type",
    "market",
    "reference",
    "source",
    "leg",
    "price",
    "value",
    "currency",
)
QUANTUM = Decimal("1e-18")


def build(context: Context) -> Export:
    period, prices, currency = context.period, context.prices, context.options.currency
    rows = []
    unvalued = 0
    change: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in context.ledger():
        price = prices.price(row.asset, row.executed_at)
        value = rounded(prices.value(row.asset, row.executed_at, row.amount))
        unvalued += value is None
        change[(row.wallet, row.asset)] += row.amount
        rows.append(
            (
                iso_utc(row.executed_at),
                day(period.local_day(row.executed_at)),
                row.exchange,
                row.account,
                row.asset,
                plain(row.amount),
                row.kind,
                row.event_kind or "",
                row.event_type or "",
                row.market or "",
                row.reference,
                row.source or "",
                str(row.leg),
                plain(price),
                plain(value),
                currency,
            )
        )
    opening = _opening(context)
    balances: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for wallet, asset in sorted(set(opening) | set(change)):
        start = opening.get((wallet, asset), Decimal(0))
        moved = change.get((wallet, asset), Decimal(0))
        balances[wallet][asset] = {
            "opening": plain(start),
            "movements": plain(moved),
            "closing": plain(start + moved),
        }
    name = f"ledger-{period.label}-{currency}"
    return Export.one_file(
        "ledger",
        name,
        COLUMNS,
        rows,
        notes=(
            "One row per balance movement; amount is signed (positive credits the account).",
            "time is UTC; day is the movement's day in the period's timezone.",
            "price and value are empty where the warehouse has no price for the asset then.",
        ),
        totals={"balances": balances, "rows_without_value": unvalued},
    )


def rounded(value: Decimal | None) -> Decimal | None:
    """`value` rounded half away from zero to 18 decimals (ROUND_HALF_UP is away from zero)."""
    if value is None:
        return None
    return value.quantize(QUANTUM, rounding=ROUND_HALF_UP, context=EXACT)


def _opening(context: Context) -> dict[tuple[str, str], Decimal]:
    """Each (wallet, asset)'s sum of the amounts booked before the period, exact."""
    start = context.period.start_at
    if start is None:
        return {}
    totals: dict[tuple[str, str], Decimal] = {}
    for row in context.ledger_until(start):
        key = (row.wallet, row.asset)
        totals[key] = EXACT.add(totals[key], row.amount) if key in totals else row.amount
    return totals
