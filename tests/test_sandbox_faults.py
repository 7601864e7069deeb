"""Fault injection over HTTP: every kind shows up, successes stay byte-identical, runs repeat."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from test_sandbox_helpers import NOW_MS, clients, loads, shared_world

from pipelines.sandbox.faults import FAULT_KINDS
from pipelines.sandbox.server import Sandbox, start_sandbox

SLOW = 0.05
Call = Callable[[Sandbox], requests.Response]


def _calls() -> list[tuple[str, Call]]:
    return [
        (
            "bitstamp ohlc",
            lambda s: clients(s)[0].get(
                "/api/v2/ohlc/btceur/", {"step": 300, "limit": 50, "end": 1711000200}
            ),
        ),
        (
            "bitstamp ledger",
            lambda s: clients(s)[0].post("/api/v2/user_transactions/", {"limit": 20}),
        ),
        (
            "bitvavo candles",
            lambda s: clients(s)[1].public(
                "/BTC-EUR/candles", {"interval": "1h", "limit": 30, "end": NOW_MS - 86_400_000}
            ),
        ),
        ("bitvavo balance", lambda s: clients(s)[1].get("/balance")),
    ]


@pytest.fixture(scope="module")
def clean() -> Iterator[Sandbox]:
    with start_sandbox(now_ms=NOW_MS, rate_scale=1000.0, world=shared_world()) as running:
        yield running


def faulty(rate: float, kinds: str | None = None) -> Sandbox:
    return start_sandbox(
        now_ms=NOW_MS,
        rate_scale=1000.0,
        faults=rate,
        fault_kinds=kinds,
        slow_seconds=SLOW,
        world=shared_world(),
    )


def classify(call: Call, sandbox: Sandbox, reference: bytes) -> tuple[str, float]:
    """What the client saw: success, or which kind of failure."""
    started = time.monotonic()
    try:
        response = call(sandbox)
    except requests.exceptions.ChunkedEncodingError:
        return "truncated", time.monotonic() - started  # fewer bytes than Content-Length
    except requests.exceptions.ConnectionError:
        return "reset", time.monotonic() - started
    elapsed = time.monotonic() - started
    if response.status_code == 429:
        return "rate_limited", elapsed
    if response.status_code >= 500:
        try:
            code = json.loads(response.text).get("errorCode")
        except ValueError:
            code = None
        return ("error_body" if code in (107, 108, 109) else "server_error"), elapsed
    assert response.status_code == 200, response.text
    if response.content == reference:
        return "ok", elapsed
    try:
        body = loads(response.text)
    except ValueError:
        return "truncated", elapsed  # a cut body with a matching Content-Length
    assert isinstance(body, dict) and ("error" in body or body.get("status") == "error"), body
    return "error_body", elapsed  # Bitstamp: an error with HTTP 200


def test_every_fault_kind_appears_and_successes_are_byte_identical(clean: Sandbox):
    calls = _calls()
    references = {name: call(clean).content for name, call in calls}
    assert all(references.values())
    seen: Counter[str] = Counter()
    slow_successes = 0
    with faulty(0.5) as sandbox:
        for i in range(240):
            name, call = calls[i % len(calls)]
            kind, elapsed = classify(call, sandbox, references[name])
            seen[kind] += 1
            if kind == "ok" and elapsed >= SLOW:
                slow_successes += 1
        stats = {
            ex: loads(requests.get(endpoint.stats_url, timeout=5).text)
            for ex, endpoint in (("bitstamp", sandbox.bitstamp), ("bitvavo", sandbox.bitvavo))
        }
    injected: Counter[str] = Counter()
    for one in stats.values():
        injected.update(one["faults"])
    expected = {k for k in FAULT_KINDS if k != "malformed_row"}
    assert set(injected) == expected, injected
    for kind in ("reset", "truncated", "rate_limited", "server_error", "error_body"):
        assert seen[kind] == injected[kind], (kind, seen, injected)
    assert slow_successes >= injected["slow"] > 0  # slow ones still deliver the exact body
    assert 0.35 * 240 < sum(injected.values()) < 0.65 * 240  # about half


def test_the_fault_sequence_repeats_from_the_seed(clean: Sandbox):
    _name, call = _calls()[0]
    reference = call(clean).content

    def run() -> list[str]:
        with faulty(0.5) as sandbox:
            return [classify(call, sandbox, reference)[0] for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert len(set(first)) >= 4


def test_malformed_rows_only_when_selected(clean: Sandbox):
    bitstamp_clean, bitvavo_clean = clients(clean)
    seen: set[str] = set()
    with faulty(1.0, "malformed_row") as sandbox:
        bitstamp, bitvavo = clients(sandbox)
        for i in range(30):
            end = 1711000000 - i * 3600
            good = loads(
                bitstamp_clean.get(
                    "/api/v2/ohlc/btceur/", {"step": 60, "limit": 5, "end": end}
                ).text
            )
            bad = loads(
                bitstamp.get("/api/v2/ohlc/btceur/", {"step": 60, "limit": 5, "end": end}).text
            )
            seen.add(difference(good["data"]["ohlc"], bad["data"]["ohlc"]))
            params = {"interval": "1m", "limit": 5, "end": NOW_MS - i * 3_600_000}
            good_rows = loads(bitvavo_clean.public("/BTC-EUR/candles", params).text)
            bad_rows = loads(bitvavo.public("/BTC-EUR/candles", params).text)
            seen.add(difference(good_rows, bad_rows))
        # a reply without rows is never touched
        assert (
            bitstamp.get("/api/v2/eur_usd/").content
            == bitstamp_clean.get("/api/v2/eur_usd/").content
        )
    assert seen == {"missing_field", "non_numeric", "unknown_shape"}


def difference(good: list[Any], bad: list[Any]) -> str:
    """How exactly one row of `bad` differs from `good`."""
    assert len(good) == len(bad) and good
    changed = [(g, b) for g, b in zip(good, bad, strict=True) if g != b]
    assert len(changed) == 1, changed
    g, b = changed[0]
    if type(g) is not type(b):
        return "unknown_shape"
    if len(b) < len(g):
        return "missing_field"
    values = b.values() if isinstance(b, dict) else b
    assert any(v == "not-a-number" for v in values), b
    return "non_numeric"


def test_time_and_stats_are_never_faulted():
    with faulty(1.0, "all") as sandbox:
        _, bitvavo = clients(sandbox)
        for _ in range(20):
            response = bitvavo.public("/time")
            assert response.status_code == 200 and "time" in loads(response.text)
            stats = requests.get(sandbox.bitstamp.stats_url, timeout=5)
            assert stats.status_code == 200 and loads(stats.text)["exchange"] == "bitstamp"
        # everything else is faulted at rate 1
        for _ in range(20):
            with contextlib.suppress(requests.exceptions.RequestException):
                bitvavo.public("/markets")
        stats = loads(requests.get(sandbox.bitvavo.stats_url, timeout=5).text)
        assert sum(stats["faults"].values()) == 20
        assert stats["endpoints"]["time"]["requests"] == 20
