"""The checks ask each exchange's adapter, never its name (tests/test_registry.py proves that
no code under `pipelines/checks` names one): what differs between exchanges is declared by the
adapters (`ExchangeChecks`), and every behaviour probe names its exchange by the adapter.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import pipelines.checks
import pipelines.checks.behaviours
from pipelines.checks.behaviours import PROBES
from pipelines.checks.behaviours.probe import Probe, ProbeRun
from pipelines.checks.permissions import public_reads
from pipelines.exchanges import registry
from pipelines.exchanges.adapter import Exchange


@pytest.mark.parametrize("exchange", registry.EXCHANGES.values(), ids=registry.names())
def test_every_adapter_declares_what_the_checks_ask(exchange: Exchange) -> None:
    facts = exchange.checks
    assert facts.key_settings.startswith(f"{exchange.title}: Settings")
    assert public_reads(exchange)["markets"] == exchange.ingestion.market_list
    assert facts.account_reads, "the cheap signed read before a sync"
    labels = [read.endpoint for read in facts.account_reads]
    assert len(set(labels)) == len(labels)
    why, by_hand = facts.trade_withdraw
    assert exchange.title in why and exchange.title in by_hand
    assert "{call}" in facts.permission_fix and "{where}" in facts.permission_fix


def test_every_probe_module_declares_its_probes_by_adapter_and_all_are_run() -> None:
    declared: list[Probe] = []
    package = pipelines.checks.behaviours
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        declared += getattr(loaded, "PROBES", ())
    assert sorted(p.variant for p in declared) == sorted(p.variant for p in PROBES)
    for probe in PROBES:
        assert probe.on is registry.get(probe.exchange), probe.variant
        assert probe.variant.startswith(f"{probe.exchange}-"), probe.variant


def test_a_shared_read_is_made_once_and_its_error_raised_again() -> None:
    calls: list[str] = []

    def sample(rt: object) -> list[str]:
        calls.append("sample")
        return ["value"]

    def broken(rt: object) -> object:
        calls.append("broken")
        raise LookupError("refused")

    run = ProbeRun(rt=None, exchanges=frozenset())  # type: ignore[arg-type]
    assert run.shared(sample) is run.shared(sample)
    with pytest.raises(LookupError) as first:
        run.shared(broken)
    with pytest.raises(LookupError) as again:
        run.shared(broken)
    assert again.value is first.value
    assert calls == ["sample", "broken"]
