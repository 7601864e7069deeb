"""Probe of how long Bitvavo's newest candles take to settle (`bitvavo-candles-settle`).

Not settled by a few requests, so no request is made: the lag shows only by reading the same
candles again minutes apart (python-bitvavo-api issue 20: two reads seconds apart disagree), it
may vary with the exchange's load, and a read at one moment bounds nothing. tally does not need
the number: it reads a candle again until a read comes `candles_reread_minutes` after its close
(`pipelines.flows.settle`).
"""

from __future__ import annotations

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.rows import Spend, unsettled
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.flows.runtime import Runtime

EXCHANGE = BITVAVO.name
VARIANT = "bitvavo-candles-settle"


def probe_candles_settle(rt: Runtime) -> CheckRow:
    minutes = rt.settings.candles_reread_minutes
    why = (
        "how long the newest candles keep changing shows only over minutes of reading the same "
        "candles again, and may vary with load, so a few requests cannot bound it; "
        f"candles_reread_minutes is {minutes}"
    )
    return unsettled(
        EXCHANGE,
        VARIANT,
        why,
        Spend(),
        "none needed; raise candles_reread_minutes in tally.toml if landed candles ever "
        "disagree with a later read",
    )


PROBES = (Probe(VARIANT, BITVAVO, False, lambda r: probe_candles_settle(r.rt)),)
