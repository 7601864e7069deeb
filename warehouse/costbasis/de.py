"""de: FIFO with the one-year holding exemption (§ 23 EStG, private Veräußerungsgeschäfte).

A lot held for more than one year is exempt: the period starts the day after the acquisition
and ends on the same calendar day one year later (BGB §§ 187, 188; an acquisition on 29
February ends on 28 February), so a disposal on a later day than that is exempt. Days are
calendar days in the zone `compute` was given (pass "Europe/Berlin"). One Gain per disposal:
its gain is split by lot into `taxable` (held one year or less) and `exempt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, tzinfo
from decimal import Decimal

from warehouse.costbasis.exact import EXACT, Splitter
from warehouse.costbasis.identified import replay, total_cost
from warehouse.costbasis.lots import FIRST_IN
from warehouse.costbasis.model import ZERO, Gain, LotUse
from warehouse.costbasis.steps import (
    Outcome,
    Step,
    disposal_splitter,
    gain_part,
    holding_days,
    local_day,
    no_acquisition,
)


def one_year_after(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return date(day.year + 1, 2, 28)


def held_over_a_year(acquired: date, disposed: date) -> bool:
    return disposed > one_year_after(acquired)


def run(steps: Sequence[Step], zone: tzinfo) -> Outcome:
    def dispose(step: Step, uses: list[LotUse], shortfall: Decimal) -> tuple[list[Gain], list[str]]:
        splitter = disposal_splitter(step)
        gains: list[Gain] = []
        warnings: list[str] = []
        matched = EXACT.subtract(step.quantity, shortfall)
        if matched != ZERO:
            proceeds, fees = splitter.take(matched)
            by_lot = Splitter(matched, proceeds, fees)
            exempt = ZERO
            for use in uses:
                lot_proceeds, lot_fees = by_lot.take(use.quantity)
                if held_over_a_year(local_day(use.acquired_at, zone), step.day):
                    lot_gain = EXACT.subtract(EXACT.subtract(lot_proceeds, use.cost), lot_fees)
                    exempt = EXACT.add(exempt, lot_gain)
            gains.append(
                gain_part(
                    step,
                    Splitter(matched, proceeds, fees),
                    matched,
                    total_cost(uses),
                    "fifo",
                    uses,
                    holding_days(step, uses, zone),
                    exempt=exempt,
                )
            )
        if shortfall != ZERO:
            # holding period unknown: all of it taxable
            gain, warning = no_acquisition(step, splitter, shortfall)
            gains.append(gain)
            warnings.append(warning)
        return gains, warnings

    return replay(steps, FIRST_IN, dispose)
