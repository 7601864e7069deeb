"""Probe of how Bitvavo words an errorCode 205 (`bitvavo-error-text`).

One public request that must be refused, read-only and harmless: the candles (weight 1) of a
market that cannot exist, `UNKNOWN_MARKET`. Its 205 names the `market` parameter as real logs
show ("market parameter is invalid.": `parameter`) or as the errors page documents ("Invalid
parameter: market": `documented`). Any other answer is reported as seen.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.flows.runtime import Runtime
from pipelines.http import ExchangeError, InvalidRequestError, NotFoundError

EXCHANGE = BITVAVO.name
VARIANT = "bitvavo-error-text"
UNKNOWN_MARKET = "TALLYPROBE-EUR"
REFUSED = "205"
WORDINGS = {
    "parameter": re.compile(r"^(\w+) parameter is invalid\b"),
    "documented": re.compile(r"^Invalid parameter: (\w+)"),
}


def probe_error_text(rt: Runtime) -> CheckRow:
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    asked = f"/{UNKNOWN_MARKET}/candles"
    evidence = Evidence()
    try:
        page = client.candles(UNKNOWN_MARKET, "1d", start=now - timedelta(days=1), end=now, limit=1)
    except (InvalidRequestError, NotFoundError) as error:  # answers; the rest is a failure
        evidence.add(
            wordings(error), f'{asked} was refused with errorCode {error.code}: "{reason(error)}"'
        )
    else:
        evidence.add((), f"{asked} answered with {len(page.records)} candles instead of a 205.")
    return decide(EXCHANGE, VARIANT, evidence, spend, nothing="")


def wordings(error: ExchangeError) -> list[str]:
    """The realities whose wording an errorCode 205 `error` has (none for another code)."""
    text = reason(error)
    if error.code != REFUSED:
        return []
    return [name for name, wording in WORDINGS.items() if wording.match(text)]


def reason(error: ExchangeError) -> str:
    """The exchange's own text in `error`'s message ("bitvavo candles: invalid request (code
    205, HTTP 400): <text>")."""
    text = str(error)
    return text.partition("): ")[2] or text


PROBES = (Probe(VARIANT, BITVAVO, False, lambda r: probe_error_text(r.rt)),)
