"""de: FIFO with the one-year holding exemption (§ 23 EStG, private Veräußerungsgeschäfte).

A lot held for more than one year is exempt: the period starts the day after the acquisition
and ends on the same calendar day one year later (BGB §§ 187, 188; an acquisition on 29
February ends on 28 February), so a sale on the anniversary is taxable and one a day later
exempt (`steps.held_over_a_year`). Days are calendar days in the zone `compute` was given
(Europe/Berlin unless told otherwise). One Gain per disposal: its gain is split by lot into
`taxable` (held one year or less) and `exempt`.

Lots are identified first in, first out per wallet by default: the BMF letter of 10 May 2022
on virtual currencies and other tokens (IV C 1 - S 2256/19/10003 :001, BStBl. I 2022, 668)
admits FIFO and requires a "walletbezogene Betrachtung", the order applied to each wallet's
own units. A move between the owner's wallets is no sale: it carries the source wallet's
oldest lots, with their acquisition days, to the other wallet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from decimal import Decimal

from warehouse.costbasis.exact import EXACT, Splitter
from warehouse.costbasis.identified import replay, total_cost
from warehouse.costbasis.lots import FIRST_IN
from warehouse.costbasis.model import ZERO, Gain, LotUse
from warehouse.costbasis.steps import (
    Outcome,
    Step,
    gain_part,
    held_over_a_year,
    holding_days,
    local_day,
)


def run(steps: Sequence[Step], zone: tzinfo) -> Outcome:
    # a part no lot covered (replay's default): its holding period is unknown, all of it taxable
    def dispose(step: Step, uses: list[LotUse], matched: Decimal, splitter: Splitter) -> list[Gain]:
        gains: list[Gain] = []
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
        return gains

    return replay(steps, FIRST_IN, dispose)
