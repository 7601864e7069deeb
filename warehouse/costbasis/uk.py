"""uk: HMRC share matching for cryptoassets (CRYPTO22200–CRYPTO22275, TCGA92 ss.104–106A).

Per asset (and per wallet with per-account lots), on Europe/London calendar days:

1. same day: all acquisitions of a day are one acquisition (their costs added), matched with
   that day's disposals first, whatever the order within the day;
2. bed and breakfast: what remains of a disposal is matched with acquisitions in the 30 days
   after it, earliest first, earlier disposals first (an acquisition matched here never enters
   the pool);
3. section 104 pool: the rest comes out of the pool at its average cost. A day's acquisitions
   not matched by 1 or 2 join the pool at the start of that day.

A disposal yields one Gain per rule that matched part of it ("same-day",
"bed-and-breakfast", "section-104"), and a "no-acquisition" Gain for any part nothing covers.
Fees are allowable (in the events' values and fees); a fee paid in a token is its own
disposal (made so by `events`). The acquisitions' incidental costs (their fees; a rebate is
none: it lowers the acquisition cost itself) are followed through the same day, the 30 days
and the pool beside the costs they are part of: each LotUse says how much of its cost they
are. Per-account moves carry the pool's average cost to the other wallet's pool. The 30-day
rule looks ahead: compute over events that run at least 30 days past the period reported.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from warehouse.costbasis.exact import EXACT, share
from warehouse.costbasis.identified import move_shortfall, total_cost
from warehouse.costbasis.model import ZERO, Gain, Lot, LotUse
from warehouse.costbasis.steps import (
    Outcome,
    Step,
    disposal_splitter,
    gain_part,
    no_acquisition,
)

POOL_REFERENCE = "section 104 pool"
BED_AND_BREAKFAST_DAYS = 30


@dataclass
class DayAcquisition:
    """Every acquisition of one asset in one wallet key on one day, as a single acquisition;
    quantity and cost are what is still unmatched."""

    first_at: datetime
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    fees: Decimal = ZERO  # of cost: the incidental costs of acquisition
    references: list[str] = field(default_factory=list)
    pooled: bool = False

    @property
    def reference(self) -> str:
        if len(self.references) <= 3:
            return ", ".join(self.references)
        return f"{self.references[0]} and {len(self.references) - 1} more"

    def take(self, quantity: Decimal) -> LotUse:
        cost, fees = _part(self.cost, self.fees, quantity, self.quantity)
        self.quantity = EXACT.subtract(self.quantity, quantity)
        self.cost = EXACT.subtract(self.cost, cost)
        self.fees = EXACT.subtract(self.fees, fees)
        return LotUse(self.reference, self.first_at, quantity, cost, fees)


@dataclass
class Matching:
    step: Step
    remaining: Decimal
    same_day: list[LotUse] = field(default_factory=list)
    bed_and_breakfast: list[LotUse] = field(default_factory=list)


@dataclass
class Pool:
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    fees: Decimal = ZERO  # of cost: the incidental costs of acquisition
    since: datetime | None = None

    def add(self, quantity: Decimal, cost: Decimal, fees: Decimal, at: datetime) -> None:
        if self.since is None or self.quantity == ZERO:
            self.since = at
        self.quantity = EXACT.add(self.quantity, quantity)
        self.cost = EXACT.add(self.cost, cost)
        self.fees = EXACT.add(self.fees, fees)

    def take(self, quantity: Decimal) -> tuple[Decimal, Decimal]:
        """The cost of `quantity` taken out, and how much of it is incidental costs."""
        cost, fees = _part(self.cost, self.fees, quantity, self.quantity)
        self.quantity = EXACT.subtract(self.quantity, quantity)
        self.cost = EXACT.subtract(self.cost, cost)
        self.fees = EXACT.subtract(self.fees, fees)
        return cost, fees


def _part(
    cost: Decimal, fees: Decimal, quantity: Decimal, whole: Decimal
) -> tuple[Decimal, Decimal]:
    if quantity == whole:
        return cost, fees
    return share(cost, quantity, whole), share(fees, quantity, whole)


Key = tuple[str, str]  # (wallet key, asset)


def run(steps: Sequence[Step]) -> Outcome:
    acquisitions = _acquisitions(steps)
    matchings = [Matching(step, step.quantity) for step in steps if step.event.kind == "dispose"]
    _match_same_day(matchings, acquisitions)
    _match_bed_and_breakfast(matchings, acquisitions)
    return _replay(steps, acquisitions, {id(m.step): m for m in matchings})


def _acquisitions(steps: Sequence[Step]) -> dict[Key, dict[date, DayAcquisition]]:
    days: dict[Key, dict[date, DayAcquisition]] = {}
    for step in steps:
        event = step.event
        if event.kind not in ("acquire", "income"):
            continue
        by_day = days.setdefault((step.key, step.asset), {})
        acquisition = by_day.setdefault(step.day, DayAcquisition(first_at=event.at))
        acquisition.quantity = EXACT.add(acquisition.quantity, event.quantity)
        acquisition.cost = EXACT.add(acquisition.cost, event.value or ZERO)
        acquisition.fees = EXACT.add(acquisition.fees, max(event.fees, ZERO))
        acquisition.references.append(event.reference)
    return {key: dict(sorted(by_day.items())) for key, by_day in days.items()}


def _match_same_day(
    matchings: list[Matching], acquisitions: dict[Key, dict[date, DayAcquisition]]
) -> None:
    for matching in matchings:
        step = matching.step
        acquisition = acquisitions.get((step.key, step.asset), {}).get(step.day)
        if acquisition is None or acquisition.quantity == ZERO:
            continue
        quantity = min(matching.remaining, acquisition.quantity)
        matching.same_day.append(acquisition.take(quantity))
        matching.remaining = EXACT.subtract(matching.remaining, quantity)


def _match_bed_and_breakfast(
    matchings: list[Matching], acquisitions: dict[Key, dict[date, DayAcquisition]]
) -> None:
    day_lists: dict[Key, list[date]] = {}
    for matching in matchings:  # in disposal order: earlier disposals first
        if matching.remaining == ZERO:
            continue
        step = matching.step
        key = (step.key, step.asset)
        by_day = acquisitions.get(key, {})
        if key not in day_lists:
            day_lists[key] = list(by_day)
        days = day_lists[key]
        last = step.day + timedelta(days=BED_AND_BREAKFAST_DAYS)
        for day in days[bisect.bisect_right(days, step.day) :]:
            if day > last or matching.remaining == ZERO:
                break
            acquisition = by_day[day]
            if acquisition.quantity == ZERO:
                continue
            quantity = min(matching.remaining, acquisition.quantity)
            matching.bed_and_breakfast.append(acquisition.take(quantity))
            matching.remaining = EXACT.subtract(matching.remaining, quantity)


def _replay(
    steps: Sequence[Step],
    acquisitions: dict[Key, dict[date, DayAcquisition]],
    matchings: dict[int, Matching],
) -> Outcome:
    pools: dict[Key, Pool] = {}
    gains: list[Gain] = []
    warnings: list[str] = []

    def pool_in(key: str, asset: str, day: date) -> Pool:
        """The pool, with that day's unmatched acquisitions added first."""
        pool = pools.setdefault((key, asset), Pool())
        acquisition = acquisitions.get((key, asset), {}).get(day)
        if acquisition is not None and not acquisition.pooled:
            acquisition.pooled = True
            if acquisition.quantity != ZERO:
                pool.add(
                    acquisition.quantity, acquisition.cost, acquisition.fees, acquisition.first_at
                )
        return pool

    for step in steps:
        event = step.event
        if event.kind in ("acquire", "income"):
            pool_in(step.key, step.asset, step.day)
        elif event.kind == "move":
            if step.to_key is None or step.to_key == step.key:
                continue
            source = pool_in(step.key, step.asset, step.day)
            target = pool_in(step.to_key, step.asset, step.day)
            moved = min(event.quantity, source.quantity)
            if moved != ZERO:
                since = source.since or event.at
                target.add(moved, *source.take(moved), since)
            shortfall = EXACT.subtract(event.quantity, moved)
            if shortfall != ZERO:
                warnings.append(move_shortfall(step, shortfall))
                target.add(shortfall, ZERO, ZERO, event.at)
        else:
            pool = pool_in(step.key, step.asset, step.day)
            new_gains, new_warnings = _dispose(step, matchings[id(step)], pool)
            gains += new_gains
            warnings += new_warnings

    open_lots = [
        Lot(asset, key, pool.since, pool.quantity, pool.cost, POOL_REFERENCE)
        for (key, asset), pool in sorted(pools.items())
        if pool.quantity != ZERO and pool.since is not None
    ]
    return Outcome(gains, open_lots, warnings)


def _dispose(step: Step, matching: Matching, pool: Pool) -> tuple[list[Gain], list[str]]:
    splitter = disposal_splitter(step)
    gains: list[Gain] = []
    warnings: list[str] = []
    for match_type, uses, days in (
        ("same-day", matching.same_day, 0),
        ("bed-and-breakfast", matching.bed_and_breakfast, None),
    ):
        if uses:
            quantity = sum((use.quantity for use in uses), ZERO)
            gains.append(
                gain_part(step, splitter, quantity, total_cost(uses), match_type, uses, days)
            )
    from_pool = min(matching.remaining, pool.quantity)
    if from_pool != ZERO:
        since = pool.since or step.event.at
        cost, fees = pool.take(from_pool)
        use = LotUse(POOL_REFERENCE, since, from_pool, cost, fees)
        gains.append(gain_part(step, splitter, from_pool, cost, "section-104", [use], None))
    shortfall = EXACT.subtract(matching.remaining, from_pool)
    if shortfall != ZERO:
        gain, warning = no_acquisition(step, splitter, shortfall)
        gains.append(gain)
        warnings.append(warning)
    return gains, warnings
