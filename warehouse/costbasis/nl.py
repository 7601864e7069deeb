"""nl: no realised gains. Box 3 taxes the holdings on 1 January (valued by
`events.holdings`), not disposals, so `compute` returns no Gain. Lots are still kept (FIFO) so
that the open lots say what is held and at what cost; income is still listed (the rewards
received, for the record)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from warehouse.costbasis.exact import Splitter
from warehouse.costbasis.identified import replay
from warehouse.costbasis.lots import FIRST_IN
from warehouse.costbasis.model import Gain, LotUse
from warehouse.costbasis.steps import Outcome, Step


def run(steps: Sequence[Step]) -> Outcome:
    def dispose(step: Step, uses: list[LotUse], matched: Decimal, splitter: Splitter) -> list[Gain]:
        return []

    def unmatched(step: Step, splitter: Splitter, shortfall: Decimal) -> tuple[Gain | None, str]:
        return None, (
            f"{step.asset}: {shortfall} disposed of on {step.day.isoformat()} in {step.key} "
            f"(reference {step.event.reference or '-'}) with no acquisition known"
        )

    return replay(steps, FIRST_IN, dispose, unmatched)
