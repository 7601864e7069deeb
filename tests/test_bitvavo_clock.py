"""Bitvavo refuses a signed request outside its access window (errorCode 304); the client then
reads the exchange's time and signs with the offset. The time must be asked unsigned: a signed
`GET /v2/time` from a clock that far off is refused too, and the client could never recover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.credentials import Credentials
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.http import RetryPolicy, WeightBudget
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

OFFSET_S = 45.0  # the exchange's clock ahead of ours: far outside the 10 s access window


@pytest.fixture(scope="module")
def skewed() -> Iterator[Sandbox]:
    world = World(seed=61, days=2, now_ms=1_711_843_200_000)
    with start_sandbox(seed=61, world=world, bitvavo_clock_offset_s=OFFSET_S) as running:
        yield running


def client_of(sandbox: Sandbox) -> BitvavoClient:
    endpoint = sandbox.bitvavo
    return BitvavoClient(
        endpoint.base_url,
        Credentials.from_strings(endpoint.key, endpoint.secret),
        classify=BITVAVO.classify,
        limiter=WeightBudget(headers=WEIGHT_HEADERS),
        retry=RetryPolicy(max_attempts=2, max_total_seconds=5, base_seconds=0.1),
    )


def test_a_signed_read_from_a_clock_outside_the_window_recovers(skewed: Sandbox) -> None:
    with client_of(skewed) as client:
        balances = client.balance()  # refused with 304, then the offset, then answered
        offset_ms = client.sync_clock()
    assert balances, "the account has balances"
    assert abs(offset_ms - OFFSET_S * 1000) <= 1_500


def test_the_time_is_asked_unsigned(skewed: Sandbox) -> None:
    with client_of(skewed) as client:
        offset_ms = client.sync_clock()  # signed, this would be refused: the clock is 45 s off
    assert abs(offset_ms - OFFSET_S * 1000) <= 1_500
