"""uk: the engine's gains restated as HMRC's computations, one per token and London day, in pence.

All of a token's disposals on one day are a single disposal (TCGA92 s.105(1)(a); CRYPTO22200
"same day rule"; CRYPTO22252: "treated as a single disposal of 1,500 token B for £1,400"), so
the day has one computation: the day's consideration, less the allowable costs of the tokens
each rule identified (CRYPTO22255 lists them as "30 day (11/09 - 500 token E)" and "S104"). A
`Part` is one line of it, in this order: the same day's acquisitions, each day's acquisitions in
the 30 days after (one part per acquisition day, earliest first), the section 104 pool, and
tokens no acquisition covers. Each part states

- proceeds: its share of the day's consideration by quantity, the parts taking their shares in
  the order above and the last one what remains (as BittyTax splits the day's disposal,
  transactions.py `split_sell`); a rebate (negative fee) is consideration received, not a cost;
- cost: the acquisition cost itself of the tokens matched, without its incidental costs;
- fees: the incidental costs of acquiring the tokens matched (the engine follows them through
  the 30 days and the pool: `LotUse.fees`) and the part's share of the day's incidental costs
  of disposal (TCGA92 s.38(1)(a), (c));
- gain = proceeds - cost - fees.

HMRC states computations in money: the acquisition cost itself is not to be rounded away from
the records, incidental costs may be (CG14207), and the worked examples state a cost's share as
an amount of money (CRYPTO22252 writes £1,000 × 1,500 / 1,600 = £937.50 as £938). tally states
proceeds, cost and fees each to the penny (the hundredth of the reporting currency), rounded half
to even, exactly as BittyTax 0.6.0 states each disposal it matched (tax_event.py
`TaxEventCapitalGains`: `quantize(Decimal("0.00"))` in Python's default rounding, half even), so
that both state the same figures; `exact` keeps the unrounded figures beside them. (BittyTax
computes with 30 significant digits, tally exactly: a figure within about 1e-25 of a half penny
could still round apart.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from warehouse.costbasis.exact import EXACT, Splitter
from warehouse.costbasis.model import ZERO, Gain, LotUse
from warehouse.costbasis.steps import NO_ACQUISITION

PENNY = Decimal("0.01")
SAME_DAY, BED_AND_BREAKFAST, SECTION_104 = "same-day", "bed-and-breakfast", "section-104"
ORDER = (SAME_DAY, BED_AND_BREAKFAST, SECTION_104, NO_ACQUISITION)


@dataclass(frozen=True)
class Part:
    """One line of a day's computation: `stated` in pence, `exact` unrounded (same fields)."""

    stated: Gain
    exact: Gain


def computations(gains: Iterable[Gain]) -> list[Part]:
    """The parts of every (day, asset)'s computation, days in the order of their first gain."""
    days: dict[tuple[date, str], list[Gain]] = {}
    for gain in gains:
        days.setdefault((gain.date, gain.asset), []).append(gain)
    return [part for day_gains in days.values() for part in _day(day_gains)]


def pence(value: Decimal) -> Decimal:
    return value.quantize(PENNY, rounding=ROUND_HALF_EVEN, context=EXACT)


@dataclass
class _Matched:
    """What one rule (and, for the 30 days, one acquisition day) matched of the day's disposal:
    the lot uses of the day's several disposals added up per lot."""

    match_type: str
    quantity: Decimal = ZERO
    uses: dict[tuple[str, datetime], LotUse] = field(default_factory=dict)

    def add(self, quantity: Decimal, uses: Iterable[LotUse]) -> None:
        self.quantity = EXACT.add(self.quantity, quantity)
        for use in uses:
            lot = (use.lot_reference, use.acquired_at)
            self.uses[lot] = _added(self.uses[lot], use) if lot in self.uses else use


def _day(gains: Sequence[Gain]) -> list[Part]:
    quantity = _sum(g.quantity for g in gains)
    consideration = _sum(EXACT.subtract(g.proceeds, min(g.fees, ZERO)) for g in gains)
    disposal_fees = _sum(max(g.fees, ZERO) for g in gains)
    splitter = Splitter(quantity, consideration, disposal_fees)
    first = gains[0]
    day = replace(
        first,
        wallet=", ".join(sorted({g.wallet for g in gains})),
        reference=", ".join(dict.fromkeys(g.reference for g in gains)),
        note="; ".join(dict.fromkeys(g.note for g in gains if g.note)),
    )
    parts = []
    for matched in _matched(gains):
        proceeds, fees_of_disposal = splitter.take(matched.quantity)
        uses = tuple(matched.uses.values())
        acquisition_fees = _sum(use.fees or ZERO for use in uses)
        cost = EXACT.subtract(_sum(use.cost for use in uses), acquisition_fees)
        fees = EXACT.add(acquisition_fees, fees_of_disposal)
        exact = _part(day, matched, proceeds, cost, fees)
        stated = _part(day, matched, pence(proceeds), pence(cost), pence(fees))
        parts.append(Part(stated=stated, exact=exact))
    return parts


def _matched(gains: Sequence[Gain]) -> list[_Matched]:
    """The day's parts in the computation's order."""
    parts: dict[tuple[int, float], _Matched] = {}
    for gain in gains:
        rank = ORDER.index(gain.match_type)
        if gain.match_type == BED_AND_BREAKFAST:
            # a part per acquisition day: its acquisitions are one (s.105(1)(a)), one lot
            for use in gain.lots:
                key = (rank, use.acquired_at.timestamp())
                parts.setdefault(key, _Matched(gain.match_type)).add(use.quantity, (use,))
        else:
            parts.setdefault((rank, 0.0), _Matched(gain.match_type)).add(gain.quantity, gain.lots)
    return [parts[key] for key in sorted(parts)]


def _added(one: LotUse, other: LotUse) -> LotUse:
    fees = None
    if one.fees is not None or other.fees is not None:
        fees = EXACT.add(one.fees or ZERO, other.fees or ZERO)
    return replace(
        one,
        quantity=EXACT.add(one.quantity, other.quantity),
        cost=EXACT.add(one.cost, other.cost),
        fees=fees,
    )


def _part(day: Gain, matched: _Matched, proceeds: Decimal, cost: Decimal, fees: Decimal) -> Gain:
    gain = EXACT.subtract(EXACT.subtract(proceeds, cost), fees)
    return replace(
        day,
        quantity=matched.quantity,
        proceeds=proceeds,
        cost=cost,
        fees=fees,
        gain=gain,
        match_type=matched.match_type,
        lots=tuple(matched.uses.values()),
        holding_days=0 if matched.match_type == SAME_DAY else None,
        taxable=gain,
        exempt=ZERO,
    )


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total
