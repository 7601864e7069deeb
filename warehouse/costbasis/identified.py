"""fifo, lifo, hifo: each disposal consumes whole or partial lots in the method's order.

`replay` is the chronological driver the lot-based methods share (de and nl use it too):
acquisitions and income add a lot, moves carry lots to the other wallet (FIFO, keeping their
acquisition time and cost), disposals take lots and hand them to the method's `Dispose`; the
part of a disposal no lot covers goes to its `Unmatched` (by default reported at cost 0 with a
warning, `steps.no_acquisition`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo
from decimal import Decimal

from warehouse.costbasis.exact import EXACT, Splitter
from warehouse.costbasis.lots import ORDERS, LotBook, Order
from warehouse.costbasis.model import ZERO, Gain, LotUse
from warehouse.costbasis.steps import (
    Outcome,
    Step,
    disposal_splitter,
    gain_part,
    held_over_a_year,
    holding_days,
    local_day,
    no_acquisition,
)

LONG_TERM = "long-term: held over one year"

# (disposal, lot parts used, their quantity, shares of its proceeds and fees) -> their Gains
Dispose = Callable[[Step, list[LotUse], Decimal, Splitter], list[Gain]]
# (disposal, shares of its proceeds and fees left, quantity no lot covered) -> (Gain, warning)
Unmatched = Callable[[Step, Splitter, Decimal], tuple[Gain | None, str]]


def replay(
    steps: Sequence[Step], order: Order, dispose: Dispose, unmatched: Unmatched = no_acquisition
) -> Outcome:
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
            splitter = disposal_splitter(step)
            gains += dispose(step, uses, EXACT.subtract(step.quantity, shortfall), splitter)
            if shortfall != ZERO:
                gain, warning = unmatched(step, splitter, shortfall)
                gains += [gain] if gain is not None else []
                warnings.append(warning)
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
    """Per disposal, one Gain for the lots held one year or less and one for the lots held over
    one year (noted LONG_TERM), each with the lots it used (plus a "no-acquisition" Gain for
    any part no lot covered): every Gain is wholly short or wholly long-term."""

    def dispose(step: Step, uses: list[LotUse], matched: Decimal, splitter: Splitter) -> list[Gain]:
        gains: list[Gain] = []
        for long_term, part in _by_term(step, uses, zone):
            quantity = sum((use.quantity for use in part), ZERO)
            gains.append(
                gain_part(
                    step,
                    splitter,
                    quantity,
                    total_cost(part),
                    method,
                    part,
                    holding_days(step, part, zone),
                    note=LONG_TERM if long_term else "",
                )
            )
        return gains

    return replay(steps, ORDERS[method], dispose)


def _by_term(step: Step, uses: list[LotUse], zone: tzinfo) -> list[tuple[bool, list[LotUse]]]:
    """The lots used, split into held over one year or not, in the order each term first
    appears among them."""
    parts: dict[bool, list[LotUse]] = {}
    for use in uses:
        long_term = held_over_a_year(local_day(use.acquired_at, zone), step.day)
        parts.setdefault(long_term, []).append(use)
    return list(parts.items())
