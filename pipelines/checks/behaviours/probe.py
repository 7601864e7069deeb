"""A behaviour probe, declared: which open point it settles, on which exchange, and how.

Each probe module declares its `PROBES`, naming its exchange by the adapter object
(`BITSTAMP`, `BITVAVO`), never by a string; `pipelines.checks.behaviours` runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pipelines.checks import CheckRow
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.client import ExchangeClient
from pipelines.flows.runtime import Runtime

T = TypeVar("T")


def runtime_client(rt: Runtime, exchange: str) -> ExchangeClient:
    """`exchange`'s client in `rt`."""
    return rt.client(exchange)


class ProbeRun:
    """One run of the probes: the runtime, the exchanges asked, and what probes share."""

    def __init__(self, rt: Runtime, exchanges: frozenset[str]) -> None:
        self.rt = rt
        self.exchanges = exchanges
        self._shared: dict[Callable[[Runtime], Any], tuple[Any, Exception | None]] = {}

    def shared(self, read: Callable[[Runtime], T]) -> T:
        """`read(rt)`, read once per run: a later call gets the same value, or the same error
        raised again (e.g. the history sample two Bitvavo probes judge)."""
        if read not in self._shared:
            try:
                self._shared[read] = (read(self.rt), None)
            except Exception as error:
                self._shared[read] = (None, error)
                raise
        value, failure = self._shared[read]
        if failure is not None:
            raise failure
        return cast(T, value)


@dataclass(frozen=True)
class Probe:
    """One open point's probe: its variant (`tally sandbox --variant` name), the exchange it
    asks, whether it reads the account (skipped without an API key), and the probe itself."""

    variant: str
    on: Exchange
    needs_key: bool
    run: Callable[[ProbeRun], CheckRow]

    @property
    def exchange(self) -> str:
        return self.on.name
