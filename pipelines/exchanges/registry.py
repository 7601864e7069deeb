"""Every exchange tally knows, by name: the one place that lists them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from warehouse.rules import ExchangeRules

# Any: each adapter is an `Exchange` of its own client class, and a mapping of them all can say
# only that each is some `ExchangeClient`'s.
EXCHANGES: Mapping[str, Exchange[Any]] = MappingProxyType({e.name: e for e in (BITSTAMP, BITVAVO)})


class UnknownExchangeError(KeyError, ValueError):
    """A name that no adapter declares: a `KeyError` (a lookup that failed) and a `ValueError`
    (what the name checks it replaced raised)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"no exchange is called {self.name!r} (known: {', '.join(EXCHANGES)})"


def names() -> tuple[str, ...]:
    """The exchanges' names, in the order tally lists them."""
    return tuple(EXCHANGES)


def get(name: str) -> Exchange[Any]:
    """The adapter of exchange `name`; `UnknownExchangeError` if none is declared."""
    try:
        return EXCHANGES[name]
    except KeyError:
        raise UnknownExchangeError(name) from None


def warehouse_rules() -> Mapping[str, ExchangeRules]:
    """Every exchange's data rules, by name: what `warehouse.build.build` is handed."""
    return {name: exchange.warehouse for name, exchange in EXCHANGES.items()}
