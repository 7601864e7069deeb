"""The shape of an exchange: everything the rest of tally may know about one, in one object.

An `Exchange` adapter is declared once per exchange (`bitstamp_adapter`, `bitvavo_adapter`) and
found through `pipelines.exchanges.registry`. Modules outside `pipelines.exchanges` ask an
adapter for what differs between exchanges (how to build a client, classify an error, pace
requests, name a market, walk pages, which streams exist, what to check) instead of comparing
an exchange's name. The sandbox stays independent and never imports this module.

Each concern is a small declaration of its own, added as a field here; an adapter module fills
them in, so that adding an exchange means writing one adapter and its client, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

from pipelines.exchanges.checks_facts import ExchangeChecks
from pipelines.exchanges.client import ClientT
from pipelines.exchanges.ingestion import Ingestion
from warehouse.rules import ExchangeRules

if TYPE_CHECKING:
    from pipelines.http import Classifier


@dataclass(frozen=True)
class Exchange(Generic[ClientT]):
    """One exchange, as tally knows it; `ClientT` is the class of its client, what its walks and
    checks are written for (the registry, which holds every exchange, knows only that each is
    an `ExchangeClient`)."""

    name: str  # config section, lake partition `exchange=`, environment prefix, CLI choice
    title: str  # how people write it: "Bitstamp"
    checks: ExchangeChecks[ClientT]  # what `pipelines.checks` asks of it
    classify: Classifier  # its error rules (`*_errors.py`): its client factory hands them on
    ingestion: Ingestion[ClientT]  # config section, client, budget, walks, streams (`ingestion`)
    warehouse: ExchangeRules  # its data rules, handed to the warehouse build (`*_warehouse.py`)
