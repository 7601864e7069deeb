"""Probes of how each exchange writes its JSON (`bitstamp-json-spacing`, `bitvavo-json-spacing`).

One public request each, read-only and harmless, whose body is read as it came: Bitstamp's
EUR/USD rate (`GET /api/v2/eur_usd/`), Bitvavo's clock (`GET /v2/time`, weight 1). A body
without whitespace between its tokens is `compact`; one with some is `spaced`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide
from pipelines.exchanges.bitstamp import BitstampClient
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.flows.runtime import Runtime

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string, escapes included


def probe_json_spacing(rt: Runtime, exchange: str) -> CheckRow:
    spend = Spend()
    if exchange == BITSTAMP.name:
        reply = spend.use(rt.client_as(exchange, BitstampClient)).eur_usd_reply()
    else:
        reply = spend.use(rt.client_as(exchange, BitvavoClient)).time_reply()
    between_strings = _STRING.sub(b'""', reply.text.encode())
    spacing = "spaced" if re.search(rb"\s", between_strings) else "compact"
    shown = reply.text[:60] + ("…" if len(reply.text) > 60 else "")
    evidence = Evidence()
    evidence.add((spacing,), f"{reply.url.split('?')[0]} came as {shown!r}")
    return decide(exchange, f"{exchange}-json-spacing", evidence, spend, nothing="")


def _probe(exchange: str) -> Callable[..., CheckRow]:
    return lambda run: probe_json_spacing(run.rt, exchange)


PROBES = (
    Probe("bitstamp-json-spacing", BITSTAMP, False, _probe(BITSTAMP.name)),
    Probe("bitvavo-json-spacing", BITVAVO, False, _probe(BITVAVO.name)),
)
