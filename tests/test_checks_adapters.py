"""The checks ask each exchange's adapter, never its name.

`pipelines/checks` holds no string literal that is an exchange's name (docstrings and comments
aside: they may tell which exchange does what); what differs between exchanges is declared by
the adapters (`ExchangeChecks`), and every behaviour probe names its exchange by the adapter.
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import tokenize
from pathlib import Path

import pytest

import pipelines.checks
import pipelines.checks.behaviours
from pipelines.checks.behaviours import PROBES
from pipelines.checks.behaviours.probe import Probe, ProbeRun
from pipelines.exchanges import registry
from pipelines.exchanges.adapter import Exchange

CHECKS_DIR = Path(pipelines.checks.__file__).parent
NAMES = {name.lower() for name in registry.names()}
_NOT_CODE = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT}


def name_literals(source: str) -> list[tuple[int, str]]:
    """(line, token) of every string literal in `source` whose text is an exchange's name, in
    any case; a string that is a statement of its own (a docstring) is not code."""
    found = []
    statement_start = True
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in _NOT_CODE:
            statement_start = statement_start or token.type in (
                tokenize.NEWLINE,
                tokenize.INDENT,
                tokenize.DEDENT,
            )
            continue
        if token.type == tokenize.STRING and not statement_start:
            body = token.string.lstrip("rRbBuUfF")
            quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
            if body[len(quote) : -len(quote)].strip().lower() in NAMES:
                found.append((token.start[0], token.string))
        statement_start = False
    return found


def test_the_detector_finds_a_name_in_code_but_not_in_docstrings_or_comments() -> None:
    source = (
        '"""Module docstring: bitstamp."""\n'
        "def f(x):\n"
        '    """bitvavo"""\n'
        "    # 'bitstamp' in a comment\n"
        '    if x == "bitstamp":\n'
        "        return f'Bitvavo', 'bitstamp-perps', \"Bitstamp: Settings\"\n"
        "    return {'bitvavo': 1}\n"
    )
    assert name_literals(source) == [(5, '"bitstamp"'), (6, "f'Bitvavo'"), (7, "'bitvavo'")]


def test_no_exchange_name_in_the_checks_code() -> None:
    files = sorted(CHECKS_DIR.rglob("*.py"))
    assert len(files) > 10, files
    found = {
        str(path.relative_to(CHECKS_DIR)): hits
        for path in files
        if (hits := name_literals(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize("exchange", registry.EXCHANGES.values(), ids=registry.names())
def test_every_adapter_declares_what_the_checks_ask(exchange: Exchange) -> None:
    facts = exchange.checks
    assert facts.key_settings.startswith(f"{exchange.title}: Settings")
    assert facts.public_reads["markets"] == facts.markets_request
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
