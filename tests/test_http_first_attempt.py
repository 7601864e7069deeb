"""The first attempt of a request goes without tenacity: its error, when one worth retrying,
is handed to tenacity as its first attempt's, and everything after it is as it was (the
back-off, the log line, the stop, the stats, the limiter)."""

from __future__ import annotations

import logging
import random

import pytest
from pytest_httpserver import HTTPServer
from test_http import make_client

from pipelines.http import NotFoundError, RetryPolicy, ServerError

POLICY = RetryPolicy(max_attempts=3, base_seconds=1.0, max_backoff_seconds=8.0, min_seconds=0.1)


def backoffs(seed: int, count: int) -> list[float]:
    """The waits `HttpClient` draws with `random.Random(seed)`: "equal jitter" on a doubling
    ceiling."""
    rng = random.Random(seed)
    waits = []
    for attempt in range(1, count + 1):
        ceiling = min(POLICY.max_backoff_seconds, POLICY.base_seconds * 2 ** (attempt - 1))
        waits.append(max(POLICY.min_seconds, ceiling / 2 + rng.uniform(0, ceiling / 2)))
    return waits


def test_a_first_failure_is_retried_as_tenacity_retries_it(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_oneshot_request("/v2/time").respond_with_data("", status=500)
    httpserver.expect_oneshot_request("/v2/time").respond_with_data("", status=502)
    httpserver.expect_request("/v2/time").respond_with_json({"time": 1})
    caplog.set_level(logging.INFO, logger="pipelines.http")
    client, clock, budget = make_client(
        "bitvavo", httpserver.url_for("/v2"), retry=POLICY, rng=random.Random(7)
    )
    assert client.request("GET", "/time", endpoint="time").data == {"time": 1}
    assert clock.sleeps == backoffs(7, 2)
    retries = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert retries == [
        f"bitvavo time: ServerError; retry 2/3 in {clock.sleeps[0]:.2f}s",
        f"bitvavo time: ServerError; retry 3/3 in {clock.sleeps[1]:.2f}s",
    ]
    assert (client.stats.requests, client.stats.retries) == (3, 2)
    assert client.stats.errors == {"ServerError": 2}
    assert [name for name, _ in budget.events] == ["acquire"] * 3


def test_a_first_failure_with_no_attempt_left_is_raised_after_its_backoff_is_drawn(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/v2/time").respond_with_data("", status=503)
    caplog.set_level(logging.INFO, logger="pipelines.http")
    rng = random.Random(7)
    client, clock, _ = make_client(
        "bitvavo", httpserver.url_for("/v2"), retry=RetryPolicy(max_attempts=1), rng=rng
    )
    with pytest.raises(ServerError) as caught:
        client.request("GET", "/time", endpoint="time")
    assert caught.value.status == 503 and caught.value.__context__ is None
    assert clock.sleeps == [] and client.stats.retries == 0
    assert not [record for record in caplog.records if "retry" in record.getMessage()]
    # tenacity drew the back-off before it stopped, as it always did
    assert rng.getstate() != random.Random(7).getstate()


def test_a_first_fatal_error_is_raised_at_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/nothing").respond_with_data("", status=404)
    rng = random.Random(7)
    client, clock, _ = make_client("bitvavo", httpserver.url_for("/v2"), retry=POLICY, rng=rng)
    with pytest.raises(NotFoundError):
        client.request("GET", "/nothing", endpoint="nothing")
    assert len(httpserver.log) == 1 and clock.sleeps == []
    assert (client.stats.requests, client.stats.retries) == (1, 0)
    assert rng.getstate() == random.Random(7).getstate()  # no back-off drawn
