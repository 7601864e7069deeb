"""The disposal schedule: one row per disposal (uk: per matched part), from the cost-basis engine
run over the whole history with the chosen method, kept for the period's days.

Columns: date (the method's calendar: uk counts Europe/London days), asset, quantity, proceeds,
cost, fees, gain (= proceeds - cost - fees), match_type, lots (the lots used:
'acquired-day quantity cost [reference]' joined by '; '), holding_days (shortest holding among
the lots; empty where it does not apply), taxable, exempt, wallet, reference, note, currency.
Yearly totals (the method's years: UK tax years for uk) are in the sidecar, never rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from warehouse.costbasis.model import Gain, LotUse
from warehouse.exports.context import Context
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export, Table

COLUMNS = (
    "date",
    "asset",
    "quantity",
    "proceeds",
    "cost",
    "fees",
    "gain",
    "match_type",
    "lots",
    "holding_days",
    "taxable",
    "exempt",
    "wallet",
    "reference",
    "note",
    "currency",
)
AMOUNTS = ("proceeds", "cost", "fees", "gain", "taxable", "exempt")


def build(context: Context) -> Export:
    result = context.result
    period, currency = context.period, context.options.currency
    gains = [g for g in result.gains if period.contains_day(g.date)]
    rows = sorted(
        (_row(g, currency) for g in gains),
        key=lambda r: (r[0], r[1], r[12], r[13], r[7], r),
    )
    name = f"gains-{period.label}-{context.options.method}-{currency}"
    return Export(
        format="gains",
        stem=name,
        tables=(Table(f"{name}.csv", COLUMNS, tuple(rows)),),
        notes=(
            f"Disposals by method {context.options.method} (lots: {context.options.lots}), "
            f"computed over the whole history; date is the day in {period.zone}.",
            "gain = proceeds - cost - fees = taxable + exempt.",
            "Yearly totals are under totals.years (the method's own years).",
        ),
        totals={"years": _yearly(gains, period.year_label)},
        warnings=tuple(result.warnings),
    )


def _yearly(gains: list[Gain], label: Callable[[date], str]) -> dict[str, dict[str, object]]:
    years: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    assets: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    counts: dict[str, int] = defaultdict(int)
    for g in gains:
        year = label(g.date)
        counts[year] += 1
        for field in AMOUNTS:
            years[year][field] += getattr(g, field)
            assets[year][g.asset][field] += getattr(g, field)
    return {
        year: {
            "disposals": counts[year],
            **{field: plain(years[year][field]) for field in AMOUNTS},
            "by_asset": {
                asset: {field: plain(totals[field]) for field in AMOUNTS}
                for asset, totals in sorted(assets[year].items())
            },
        }
        for year in sorted(years)
    }


def _row(g: Gain, currency: str) -> tuple[str, ...]:
    return (
        day(g.date),
        g.asset,
        plain(g.quantity),
        plain(g.proceeds),
        plain(g.cost),
        plain(g.fees),
        plain(g.gain),
        g.match_type,
        "; ".join(_lot(use) for use in g.lots),
        "" if g.holding_days is None else str(g.holding_days),
        plain(g.taxable),
        plain(g.exempt),
        g.wallet,
        g.reference,
        g.note,
        currency,
    )


def _lot(use: LotUse) -> str:
    acquired = use.acquired_at.date().isoformat()
    return f"{acquired} {plain(use.quantity)} {plain(use.cost)} [{use.lot_reference}]"
