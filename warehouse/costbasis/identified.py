"""fifo, lifo, hifo: each disposal consumes whole or partial lots in the method's order.

`replay` is the chronological driver the lot-based methods share (de and nl use it too):
acquisitions and income add a lot, moves carry lots to the other wallet (FIFO, keeping their
acquisition time and cost), disposals take lots and hand them to the method's `Dispose`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo
from decimal import Decimal

from warehouse.costbasis.exact import EXACT
from warehouse.costbasis.lots import ORDERS, LotBook, Order
from warehouse.costbasis.model import ZERO, Gain, LotUse
from warehouse.costbasis.steps import (
    Outcome,
    Step,
    disposal_splitter,
    gain_part,
    holding_days,
    no_acquisition,
)

Dispose = Callable[[Step, list[LotUse], Decimal], tuple[list[Gain], list[str]]]


def replay(steps: Sequence[Step], order: Order, dispose: Dispose) -> Outcome:
    book = LotBook(order)
    gains: list[Gain] = []
    warnings: list[str] = []
    for step in steps:
        event = step.event
        if event.kind in ("acquire", "income"):
            cost = event.value if event.value is not None else ZERO
            book.add(step.key, event.asset, event.at, event.quantity, cost, event.reference)
        elif event.kind == "move":
            if step.to_key is None or step.to_key == step.key:
                continue
            _, shortfall = book.move(step.key, step.to_key, event.asset, event.quantity)
            if shortfall != ZERO:
                warnings.append(move_shortfall(step, shortfall))
                book.add(step.to_key, event.asset, event.at, shortfall, ZERO, event.reference)
        else:
            uses, shortfall = book.take(step.key, event.asset, event.quantity)
            new_gains, new_warnings = dispose(step, uses, shortfall)
            gains += new_gains
            warnings += new_warnings
    return Outcome(gains, book.open_lots(), warnings)


def move_shortfall(step: Step, shortfall: Decimal) -> str:
    return (
        f"{step.asset}: {shortfall} moved from {step.key} to {step.to_key} on "
        f"{step.day.isoformat()} (reference {step.event.reference or '-'}) with no acquisition "
        f"known in {step.key}: it arrives at cost 0"
    )


def total_cost(uses: Sequence[LotUse]) -> Decimal:
    total = ZERO
    for use in uses:
        total = EXACT.add(total, use.cost)
    return total


def run(steps: Sequence[Step], method: str, zone: tzinfo) -> Outcome:
    """One Gain per disposal with every lot it used (plus a "no-acquisition" Gain for any part
    no lot covered)."""

    def dispose(step: Step, uses: list[LotUse], shortfall: Decimal) -> tuple[list[Gain], list[str]]:
        splitter = disposal_splitter(step)
        gains: list[Gain] = []
        warnings: list[str] = []
        matched = EXACT.subtract(step.quantity, shortfall)
        if matched != ZERO:
            gains.append(
                gain_part(
                    step,
                    splitter,
                    matched,
                    total_cost(uses),
                    method,
                    uses,
                    holding_days(step, uses, zone),
                )
            )
        if shortfall != ZERO:
            gain, warning = no_acquisition(step, splitter, shortfall)
            gains.append(gain)
            warnings.append(warning)
        return gains, warnings

    return replay(steps, ORDERS[method], dispose)
