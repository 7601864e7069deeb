"""The rewards schedule: one row per reward (staking, referral, distribution…), valued on
receipt, from the cost-basis engine, kept for the period's days.

Columns: date (the method's calendar), asset, quantity, value, kind, wallet, reference,
currency. Yearly totals per kind are in the sidecar.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from warehouse.costbasis.model import Income
from warehouse.exports.context import Context
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export

COLUMNS = ("date", "asset", "quantity", "value", "kind", "wallet", "reference", "currency")


def build(context: Context) -> Export:
    result = context.result
    period, currency = context.period, context.options.currency
    income = [i for i in result.income if period.contains_day(i.date)]
    rows = sorted((_row(i, currency) for i in income), key=lambda r: (r[0], r[1], r[5], r[6], r))
    name = f"income-{period.label}-{context.options.method}-{currency}"
    return Export.one_file(
        "income",
        name,
        COLUMNS,
        rows,
        notes=(
            f"Rewards valued on receipt in {currency}; date is the day in {period.zone}.",
            "Yearly totals per kind are under totals.years.",
        ),
        totals={"years": _yearly(income, period.year_label)},
        warnings=tuple(result.warnings),
    )


def _yearly(income: list[Income], label: Callable[[date], str]) -> dict[str, dict[str, object]]:
    values: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: dict[str, int] = defaultdict(int)
    for i in income:
        year = label(i.date)
        counts[year] += 1
        values[year][i.kind] += i.value
    return {
        year: {
            "rewards": counts[year],
            "value": plain(sum(values[year].values(), Decimal(0))),
            "by_kind": {kind: plain(v) for kind, v in sorted(values[year].items())},
        }
        for year in sorted(values)
    }


def _row(i: Income, currency: str) -> tuple[str, ...]:
    return (
        day(i.date),
        i.asset,
        plain(i.quantity),
        plain(i.value),
        i.kind,
        i.wallet,
        i.reference,
        currency,
    )
