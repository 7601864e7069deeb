"""What every probe shares: its row (the verdict in words), the requests it cost, whether an
exchange has a key.

Every row's detail ends with what the probe spent, counted by the clients themselves
(`HttpStats`: every attempt sent, retries included), e.g. "(2 requests, weight 10)" or
"(bitvavo 2 requests, weight 6; bitstamp 1 request)". Bitvavo counts weight against 1000 a
minute per key; Bitstamp counts requests only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.realities import HANDLING, MEANINGS, Evidence
from pipelines.config import ConfigError
from pipelines.exchanges.registry import EXCHANGES
from pipelines.flows.runtime import Runtime
from pipelines.http import HttpClient


class HasHttp(Protocol):
    @property
    def http(self) -> HttpClient: ...


C = TypeVar("C", bound=HasHttp)


class Spend:
    """What the clients a probe uses send from the moment the probe takes them (`use`)."""

    def __init__(self) -> None:
        self._marks: dict[str, tuple[HttpClient, int, int]] = {}

    def use(self, client: C) -> C:
        http = client.http
        if http.exchange not in self._marks:
            self._marks[http.exchange] = (http, http.stats.requests, http.stats.weight)
        return client

    def counts(self) -> dict[str, tuple[int, int]]:
        """Exchange → (requests, weight) sent since `use`."""
        return {
            name: (http.stats.requests - requests, http.stats.weight - weight)
            for name, (http, requests, weight) in self._marks.items()
        }

    def text(self, note: str = "") -> str:
        """E.g. "(2 requests, weight 10)", "(bitvavo 1 request, weight 5; bitstamp 1
        request)", "(no request)"; `note` says what they were."""
        counts = {name: sent for name, sent in self.counts().items() if sent[0]}
        parts = []
        for name, (requests, weight) in counts.items():
            text = f"{requests} request{'' if requests == 1 else 's'}"
            if _weighed(name):
                text += f", weight {weight}"
            parts.append(text if len(counts) == 1 else f"{name} {text}")
        spent = "; ".join(parts) or "no request"
        return f"({spent}: {note})" if note else f"({spent})"

    def __str__(self) -> str:
        return self.text()


def _weighed(exchange: str) -> bool:
    """Whether `exchange`'s budget is a weight, not a count of requests."""
    adapter = EXCHANGES.get(exchange)
    return adapter is not None and adapter.checks.weighed


def has_key(rt: Runtime, exchange: str) -> bool:
    """Whether `exchange` is configured with an API key (the account can be read)."""
    try:
        return rt.settings.exchange(exchange).credentials is not None
    except ConfigError:
        return False


def check_name(variant: str) -> str:
    return f"probe: {variant}"


def settled(exchange: str, variant: str, reality: str, seen: str, spend: Spend | str) -> CheckRow:
    """`ok`: the exchange plays `reality`, and tally handles it."""
    return CheckRow(
        check_name(variant),
        exchange,
        "ok",
        f"{variant}={reality}: {MEANINGS[variant][reality]}; seen: {seen}. "
        f"{_sentence(HANDLING[variant])} {spend}",
    )


def unsettled(exchange: str, variant: str, why: str, spend: Spend | str, fix: str = "") -> CheckRow:
    """`skip`: nothing on the account settles the point (why), and tally handles every
    reality."""
    return CheckRow(
        check_name(variant),
        exchange,
        "skip",
        f"not settled: {why}. {_sentence(HANDLING[variant])} {spend}",
        fix,
    )


def unknown(exchange: str, variant: str, seen: str, spend: Spend | str) -> CheckRow:
    """`warn`: what the exchange does is none of the realities tally was built for."""
    known = ", ".join(MEANINGS[variant]) or "—"
    return CheckRow(
        check_name(variant),
        exchange,
        "warn",
        f"none of the known realities ({known}): {seen} {spend}",
        "a finding: report this row to tally's maintainers, so that the sandbox plays it and "
        "the clients are checked against it",
    )


def failed(exchange: str, variant: str, error: str, spend: Spend | str, fix: str) -> CheckRow:
    """`fail`: the probe could not run; `fix` says what the user can do."""
    return CheckRow(check_name(variant), exchange, "fail", f"{error} {spend}", fix)


def decide(
    exchange: str,
    variant: str,
    evidence: Evidence,
    spend: Spend | str,
    *,
    nothing: str,
    fix: str = "",
) -> CheckRow:
    """The row `evidence` makes: one reality left → ok; none → warn; several → skip (as when
    there is no evidence at all: `nothing` says why)."""
    choices = MEANINGS[variant]
    if not evidence:
        return unsettled(exchange, variant, nothing, spend, fix)
    left = evidence.realities(choices)
    if len(left) == 1:
        (reality,) = left
        seen = evidence.example(reality)
        if len(evidence) > 1:
            seen = f"{len(evidence)} observations, e.g. {seen}"
        return settled(exchange, variant, reality, seen, spend)
    if not left:
        return unknown(exchange, variant, "; ".join(evidence.conflicts(choices)) + ".", spend)
    return unsettled(
        exchange,
        variant,
        f"what was seen fits {_either(sorted(left, key=list(choices).index))} alike "
        f"(e.g. {evidence.observations[0][1]})",
        spend,
        fix,
    )


def _either(names: Iterable[str]) -> str:
    names = list(names)
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."
