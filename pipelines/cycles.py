"""How often Python's cycle collector runs in tally's own processes."""

from __future__ import annotations

import gc

# Every 10,000 new container objects instead of CPython's default 700 (the older generations'
# thresholds stay 10 and 10).
THRESHOLDS = (10_000, 10, 10)


def relax_cycle_collector() -> None:
    """Collect cycles ~14 times less often than the default. Importing Prefect, pydantic and
    polars creates a few hundred thousand long-lived objects that the default setting traverses
    again and again: about a sixth of a `tally sync`'s start-up CPU. Cycles are still collected,
    in larger batches. For a process that is tally's (the `tally` command, the test processes),
    not for a library call: the setting is the process's."""
    gc.set_threshold(*THRESHOLDS)
