"""The disposal schedule: one row per disposal (uk: per matched part; fifo, lifo, hifo: per
holding term), from the cost-basis engine run over the whole history with the chosen method,
kept for the period's days.

Columns: date (the method's calendar: uk counts Europe/London days, de Europe/Berlin days),
asset, quantity, proceeds, cost, fees, gain (= proceeds - cost - fees), match_type, lots (the
lots used: 'acquired-day quantity cost [reference]' joined by '; ', the day in the same
calendar as date), holding_days (shortest holding among the lots; empty where it does not
apply), taxable, exempt, wallet, reference, note (fifo, lifo, hifo: "long-term: held over one
year" on the rows whose lots were all held over a year), currency. Yearly totals (the method's
years: UK tax years for uk) are in the sidecar, never rows.

A UK tax year is provisional until the data reach the end of the 30 days after it: an
acquisition then can still rematch a disposal of the year (30-day rule, CRYPTO22253). The data
reach as far as the last movement in the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

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


def name(context: Context) -> str:
    """The file stem: gains-<period>-<method>-<currency>."""
    options = context.options
    return f"gains-{context.period.label}-{options.method}-{options.currency}"


def schedule(context: Context) -> list[tuple[Gain, tuple[str, ...]]]:
    """The period's gains with their CSV rows, in the file's order (row n is the n-th)."""
    period, currency = context.period, context.options.currency
    zone = ZoneInfo(period.zone)
    pairs = [(g, _row(g, currency, zone)) for g in context.result.gains]
    pairs = [(g, row) for g, row in pairs if period.contains_day(g.date)]
    return sorted(pairs, key=lambda pair: _order(pair[1]))


def provisional(context: Context) -> str:
    """Why the period's uk figures may still change ("" when they cannot)."""
    period = context.period
    until = period.matching_end_at
    if until is None:
        return ""
    last = context.last_movement()
    if last is not None and last >= until:
        return ""
    reach = "no movement" if last is None else f"the last movement is at {last.isoformat()}"
    return (
        f"tax year {period.label} is provisional: acquisitions up to {until.isoformat()} can "
        f"still rematch its disposals (30-day rule, CRYPTO22253) and {reach}"
    )


def build(context: Context) -> Export:
    result = context.result
    period = context.period
    pairs = schedule(context)
    stem = name(context)
    reason = provisional(context)
    return Export(
        format="gains",
        stem=stem,
        tables=(Table(f"{stem}.csv", COLUMNS, tuple(row for _, row in pairs)),),
        notes=(
            f"Disposals by method {context.options.method} (lots: {context.options.lots}), "
            f"computed over the whole history; date and the lots' days are days in "
            f"{period.zone}.",
            "gain = proceeds - cost - fees = taxable + exempt.",
            "Yearly totals are under totals.years (the method's own years).",
        ),
        totals={"years": _yearly([g for g, _ in pairs], period.year_label)},
        warnings=(*result.warnings, *([reason] if reason else [])),
    )


def _order(row: tuple[str, ...]) -> tuple[object, ...]:
    return (row[0], row[1], row[12], row[13], row[7], row)


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


def _row(g: Gain, currency: str, zone: ZoneInfo) -> tuple[str, ...]:
    return (
        day(g.date),
        g.asset,
        plain(g.quantity),
        plain(g.proceeds),
        plain(g.cost),
        plain(g.fees),
        plain(g.gain),
        g.match_type,
        "; ".join(_lot(use, zone) for use in g.lots),
        "" if g.holding_days is None else str(g.holding_days),
        plain(g.taxable),
        plain(g.exempt),
        g.wallet,
        g.reference,
        g.note,
        currency,
    )


def _lot(use: LotUse, zone: ZoneInfo) -> str:
    acquired = use.acquired_at.astimezone(zone).date().isoformat()
    return f"{acquired} {plain(use.quantity)} {plain(use.cost)} [{use.lot_reference}]"
