"""The disposal schedule: one row per disposal (uk: per part of a day's computation; fifo, lifo,
hifo: per holding term), from the cost-basis engine run over the whole history with the chosen
method, kept for the period's days.

Columns: date (the method's calendar: uk counts Europe/London days, de Europe/Berlin days),
asset, quantity, proceeds, cost, fees, gain (= proceeds - cost - fees), match_type, lots (the
lots used: 'acquired-day quantity cost [reference]' joined by '; ', the day in the same
calendar as date), holding_days (shortest holding among the lots; empty where it does not
apply), taxable, exempt, wallet, reference, note (fifo, lifo, hifo: "long-term: held over one
year" on the rows whose lots were all held over a year), currency. Yearly totals (the method's
years: UK tax years for uk) are in the sidecar, never rows.

uk states HMRC's computations (`computation`): a token's disposals of one London day are one
disposal, a row per part of it (same day; 30 days, one row per acquisition day; section 104),
with wallet, reference and note those of the whole day's disposals. Its proceeds, cost (the
acquisition cost itself), fees (the incidental costs of acquisition and disposal) and gain are
in pence, rounded as BittyTax rounds them; the columns exact_proceeds, exact_cost, exact_fees
and exact_gain keep the exact figures (the lots column states the lots' exact costs, their
incidental costs included).

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
from warehouse.exports.computation import ORDER, computations
from warehouse.exports.context import Context
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export

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
EXACT_AMOUNTS = ("proceeds", "cost", "fees", "gain")
UK_COLUMNS = (*COLUMNS, *(f"exact_{field}" for field in EXACT_AMOUNTS))
AMOUNTS = ("proceeds", "cost", "fees", "gain", "taxable", "exempt")


def name(context: Context) -> str:
    """The file stem: gains-<period>-<method>-<currency>."""
    options = context.options
    return f"gains-{context.period.label}-{options.method}-{options.currency}"


def columns(context: Context) -> tuple[str, ...]:
    return UK_COLUMNS if context.options.method == "uk" else COLUMNS


def schedule(context: Context) -> list[tuple[Gain, tuple[str, ...]]]:
    """The period's gains as the file states them (uk: in pence) with their CSV rows, in the
    file's order (row n is the n-th)."""
    return [(stated, row) for stated, _, row in _lines(context)]


def _lines(context: Context) -> list[tuple[Gain, Gain, tuple[str, ...]]]:
    """(stated, exact, row) for each row of the file, in its order."""
    period, currency = context.period, context.options.currency
    zone = ZoneInfo(period.zone)
    gains = [g for g in context.result.gains if period.contains_day(g.date)]
    if context.options.method == "uk":
        lines = [
            (part.stated, part.exact, (*_row(part.stated, currency, zone), *_exact(part.exact)))
            for part in computations(gains)
        ]
        return sorted(lines, key=lambda line: _uk_order(line[2]))
    lines = [(g, g, _row(g, currency, zone)) for g in gains]
    return sorted(lines, key=lambda line: _order(line[2]))


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
    lines = _lines(context)
    stem = name(context)
    reason = provisional(context)
    uk = context.options.method == "uk"
    years = _yearly([stated for stated, _, _ in lines], period.year_label)
    if uk:
        exact = _yearly([exact for _, exact, _ in lines], period.year_label)
        for year, totals in years.items():
            totals.update({f"exact_{f}": exact[year][f] for f in EXACT_AMOUNTS})
    return Export.one_file(
        "gains",
        stem,
        columns(context),
        (row for _, _, row in lines),
        notes=(
            f"Disposals by method {context.options.method} (lots: {context.options.lots}), "
            f"computed over the whole history; date and the lots' days are days in "
            f"{period.zone}.",
            "gain = proceeds - cost - fees = taxable + exempt.",
            *(
                (
                    "uk: a token's disposals of one day are one disposal (TCGA92 s.105); each "
                    "row is a part of its computation. proceeds, cost (the acquisition cost "
                    "itself), fees (incidental costs of acquisition and disposal) and gain are "
                    "in pence, each rounded half to even as BittyTax does; exact_* are exact.",
                )
                if uk
                else ()
            ),
            "Yearly totals are under totals.years (the method's own years).",
        ),
        totals={"years": years},
        warnings=(*result.warnings, *([reason] if reason else [])),
    )


def _order(row: tuple[str, ...]) -> tuple[object, ...]:
    return (row[0], row[1], row[12], row[13], row[7], row)


def _uk_order(row: tuple[str, ...]) -> tuple[object, ...]:
    """A day's computation in its own order: same day, 30 days (by the lots' day), pool."""
    return (row[0], row[1], ORDER.index(row[7]), row[8], row)


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


def _exact(g: Gain) -> tuple[str, ...]:
    return tuple(plain(getattr(g, field)) for field in EXACT_AMOUNTS)


def _lot(use: LotUse, zone: ZoneInfo) -> str:
    acquired = use.acquired_at.astimezone(zone).date().isoformat()
    return f"{acquired} {plain(use.quantity)} {plain(use.cost)} [{use.lot_reference}]"
