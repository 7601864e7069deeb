"""Bitstamp clock and nonce errors, and the signed query string.

`API0017` (timestamp outside the window) and `API0004` (nonce rejected) are retried once,
freshly signed; on `API0017` the clock offset is measured from the response's HTTP `Date`
header and kept for every later request. A second rejection is a clear fatal error. Checked
over real HTTP against the sandbox with a skewed client clock and with a skewed server clock.
A signed GET signs its query string without the leading `?` (EXCHANGES.md, "[doc] Bitstamp
signed GET"): a known answer for the client's signer and the sandbox's verifier, and on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from sandbox_clients import bitstamp_client
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import sandbox_runtime
from test_sandbox_helpers import BitstampClient as SignedRequests
from test_sandbox_helpers import loads
from werkzeug import Request, Response

from pipelines.credentials import Credentials
from pipelines.exchanges.bitstamp import BitstampSigner
from pipelines.exchanges.bitstamp_errors import classify_bitstamp
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.account_streams import sync_account
from pipelines.http import (
    AuthenticationError,
    ClockSkewError,
    HttpClient,
    RequestBudget,
    RetryPolicy,
    SignInput,
)
from pipelines.sandbox.auth import BitstampVerifier, KeyPair
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.wire import dumps
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SKEW_S = 400.0  # beyond the 150 s Bitstamp accepts
FAST_RETRY = RetryPolicy(
    max_attempts=6, max_total_seconds=30, base_seconds=0.01, max_backoff_seconds=0.05
)

# A known answer, written out from the documented recipe (no separators; the query string
# without its "?"; no content type and no body on a GET).
KEY, SECRET = "KEY0123456789abcdefKEY0123456789", "SECRETabcdef0123456789SECRETabcd"
NONCE = "f0a1b2c3-d4e5-4f60-8a1b-2c3d4e5f6a7b"
TIMESTAMP = "1711890420000"
HOST = "www.bitstamp.net"
PATH = "/api/v2/earn/transactions/"
QUERY = "currency=ETH&limit=2&offset=0"
MESSAGE = (
    "BITSTAMP KEY0123456789abcdefKEY0123456789"
    "GET"
    "www.bitstamp.net"
    "/api/v2/earn/transactions/"
    "currency=ETH&limit=2&offset=0"
    "f0a1b2c3-d4e5-4f60-8a1b-2c3d4e5f6a7b"
    "1711890420000"
    "v2"
)


world = world_fixture(seed=5, days=10, now_ms=NOW_MS)
sandbox = sandbox_fixture(rate_scale=100.0)


def stats(sandbox: Sandbox) -> dict[str, Any]:
    return requests.get(sandbox.bitstamp.stats_url, timeout=10).json()


Seen = tuple[int, dict[str, int]]  # account_balances requests, auth failures by code


def counted(sandbox: Sandbox) -> Seen:
    snapshot = stats(sandbox)
    requests_sent = snapshot["endpoints"].get("account_balances", {}).get("requests", 0)
    return requests_sent, dict(snapshot["auth_failures"])


def grew(before: Seen, after: Seen) -> Seen:
    """What the server saw in between: requests, and auth failures by code."""
    codes = set(before[1]) | set(after[1])
    failures = {c: after[1].get(c, 0) - before[1].get(c, 0) for c in sorted(codes)}
    return after[0] - before[0], {c: n for c, n in failures.items() if n}


# --- the signed query string -----------------------------------------------------------------


def test_signed_get_known_answer_signer_and_verifier() -> None:
    expected = hmac.new(SECRET.encode(), MESSAGE.encode(), hashlib.sha256).hexdigest()
    signer = BitstampSigner(
        Credentials.from_strings(KEY, SECRET),
        clock=lambda: int(TIMESTAMP) / 1000,
        new_nonce=lambda: NONCE,
    )
    headers = signer(SignInput("GET", HOST, PATH, f"?{QUERY}", "", ""))
    assert headers["X-Auth-Signature"] == expected
    assert (headers["X-Auth-Nonce"], headers["X-Auth-Timestamp"]) == (NONCE, TIMESTAMP)
    assert "Content-Type" not in headers

    verifier = BitstampVerifier(KeyPair(KEY, SECRET), clock=lambda: int(TIMESTAMP) / 1000)

    def verify(signed: dict[str, str]) -> str | None:
        failure = verifier.verify(
            method="GET", host=HOST, path=PATH, query=QUERY, headers=signed, body=""
        )
        return None if failure is None else failure.code

    assert verify(headers) is None
    # the same request signed over "…/?currency=…" is a bad signature, not a pass
    nonce = str(uuid.uuid4())
    with_mark = MESSAGE.replace(PATH, f"{PATH}?").replace(NONCE, nonce)
    other = {
        **headers,
        "X-Auth-Nonce": nonce,
        "X-Auth-Signature": hmac.new(
            SECRET.encode(), with_mark.encode(), hashlib.sha256
        ).hexdigest(),
    }
    assert verify(other) == "API0005"


def test_signed_get_with_a_query_verifies_on_the_wire(httpserver: HTTPServer) -> None:
    """The client's HTTP layer and signer send a signed GET with a query to a loopback server
    that checks it with the sandbox's verifier, exactly as received."""
    verifier = BitstampVerifier(KeyPair(KEY, SECRET))
    seen: list[tuple[str, str | None]] = []

    def handler(request: Request) -> Response:
        query = request.query_string.decode("ascii")
        failure = verifier.verify(
            method=request.method,
            host=request.host,
            path=request.path,
            query=query,
            headers=request.headers,
            body=request.get_data(as_text=True),
        )
        seen.append((query, None if failure is None else failure.code))
        if failure is not None:
            return Response(dumps(dict(failure.body)), status=failure.status)
        return Response("[]", content_type="application/json")

    httpserver.expect_request(PATH, method="GET").respond_with_handler(handler)
    signer = BitstampSigner(Credentials.from_strings(KEY, SECRET))
    with HttpClient(
        "bitstamp",
        httpserver.url_for("/"),
        classify=classify_bitstamp,
        limiter=RequestBudget(*BITSTAMP_PACING),
        retry=FAST_RETRY,
    ) as http:
        reply = http.request(
            "GET",
            PATH,
            endpoint="earn_transactions",
            params={"currency": "ETH", "limit": 2, "offset": 0},
            signer=signer,
        )
    assert reply.data == []
    assert seen == [(QUERY, None)]


def test_sandbox_checks_a_query_signed_without_its_mark(sandbox: Sandbox) -> None:
    """The emulator signs the query as sent, minus the `?` (test-local signer)."""
    signed = SignedRequests(
        sandbox.bitstamp.base_url, sandbox.bitstamp.key, sandbox.bitstamp.secret
    )
    path, query = "/api/v2/account_balances/", "probe=1"
    for signed_query, code in ((query, None), (f"?{query}", "API0005")):
        headers = signed.headers("POST", path, "", query=signed_query)
        response = signed.send("POST", f"{path}?{query}", "", headers)
        body = loads(response.text)
        if code is None:
            assert response.status_code == 200 and isinstance(body, list), body
        else:
            assert response.status_code == 403 and body["code"] == code, body


# --- the clock offset ---------------------------------------------------------------------------


def test_api0017_is_clock_skew_and_carries_the_date_header() -> None:
    body = {"status": "error", "reason": "X-Auth-Timestamp header is out of boundaries"}
    error = classify_bitstamp(
        403,
        {**body, "code": "API0017"},
        endpoint="account_balances",
        headers={"Date": "Sun, 31 Mar 2024 13:07:00 GMT"},
        now=0.0,
    )
    assert type(error) is ClockSkewError
    assert error.server_time == datetime(2024, 3, 31, 13, 7, tzinfo=UTC).timestamp()
    assert error.code == "API0017" and "bitstamp account_balances" in str(error)
    nonce = classify_bitstamp(
        403, {"status": "error", "reason": "Invalid nonce", "code": "API0004"}, endpoint="e"
    )
    assert type(nonce) is AuthenticationError and nonce.code == "API0004"


def test_measured_offset_moves_every_later_timestamp() -> None:
    signer = BitstampSigner(Credentials.from_strings(KEY, SECRET), clock=lambda: 1_000.0)
    request = SignInput("POST", HOST, "/api/v2/account_balances/", "", "", "")
    assert signer(request)["X-Auth-Timestamp"] == "1000000"
    # `Date` says 1400 (truncated to the second): the server's time is taken as 1400.5
    assert signer.measure_offset(1_400.0) == 400_500
    assert signer(request)["X-Auth-Timestamp"] == "1400500"
    assert signer(request)["X-Auth-Timestamp"] == "1400500"


@pytest.mark.parametrize("skew", [SKEW_S, -SKEW_S])
def test_a_skewed_client_recovers_with_exactly_one_retry(sandbox: Sandbox, skew: float) -> None:
    before = counted(sandbox)
    with bitstamp_client(sandbox, retry=FAST_RETRY, clock=lambda: time.time() + skew) as client:
        first = client.balances()
        assert grew(before, counted(sandbox)) == (2, {"API0017": 1})
        assert client.http.stats.by_endpoint()["account_balances"].retries == 1
        # the offset is kept: later requests pass at once
        second = client.balances()
        third = client.trading_fees()
    assert grew(before, counted(sandbox)) == (3, {"API0017": 1})
    assert first and second and third
    assert {b.asset for b in first} == {b.asset for b in second}


def test_a_skewed_server_is_measured_from_its_date_header(world: World) -> None:
    """A server whose clock is off (its `Date` header with it): the client follows it."""
    with start_sandbox(
        seed=5, world=world, rate_scale=100.0, bitstamp_clock_offset_s=-SKEW_S
    ) as skewed:
        before = counted(skewed)
        with bitstamp_client(skewed, retry=FAST_RETRY) as client:
            assert client.balances()
            assert client.balances()
        assert grew(before, counted(skewed)) == (3, {"API0017": 1})


def test_a_clock_that_keeps_jumping_fails_clearly_after_one_retry(sandbox: Sandbox) -> None:
    """Each reading 400 s later than the one before: the measured offset is stale at once."""
    jumps = itertools.count(1)
    before = counted(sandbox)
    client = bitstamp_client(
        sandbox, retry=FAST_RETRY, clock=lambda: time.time() + SKEW_S * next(jumps)
    )
    with client, pytest.raises(ClockSkewError) as caught:
        client.balances()
    assert grew(before, counted(sandbox)) == (2, {"API0017": 2})
    message = str(caught.value)
    assert message.startswith("bitstamp account_balances: ")
    assert "API0017" in message and "rejected again after one retry" in message
    assert "Date header" in message and "system clock" in message
    assert caught.value.code == "API0017"


# --- the nonce ---------------------------------------------------------------------------------


def test_a_reused_nonce_is_retried_once_with_a_fresh_one(sandbox: Sandbox) -> None:
    reused = str(uuid.uuid4())
    nonces = itertools.chain([reused, reused], (str(uuid.uuid4()) for _ in itertools.count()))
    before = counted(sandbox)
    with bitstamp_client(sandbox, retry=FAST_RETRY, new_nonce=lambda: next(nonces)) as client:
        assert client.balances()
        assert client.balances()  # its first nonce is the one already used
    assert grew(before, counted(sandbox)) == (3, {"API0004": 1})


def test_a_nonce_rejected_twice_is_fatal(sandbox: Sandbox) -> None:
    stuck = str(uuid.uuid4())
    before = counted(sandbox)
    with bitstamp_client(sandbox, retry=FAST_RETRY, new_nonce=lambda: stuck) as client:
        assert client.balances()
        with pytest.raises(AuthenticationError) as caught:
            client.balances()
    assert grew(before, counted(sandbox)) == (3, {"API0004": 2})
    assert caught.value.code == "API0004"
    assert "rejected again after one retry with a fresh nonce" in str(caught.value)


# --- a whole account sync against a server whose clock is off ---------------------------------


def test_account_sync_against_a_skewed_server_retries_once(world: World, tmp_path: Path) -> None:
    with start_sandbox(
        seed=5, world=world, rate_scale=100.0, bitstamp_clock_offset_s=SKEW_S
    ) as skewed:
        rt = sandbox_runtime(skewed, tmp_path, now=NOW, retry=FAST_RETRY)
        try:
            results = sync_account(rt, "bitstamp")
        finally:
            rt.close()
        after = stats(skewed)
    assert after["auth_failures"] == {"API0017": 1}
    assert sum(r.retries for r in results) == 1
    assert results[0].rows.get("bitstamp_ledger", 0) == len(world.bitstamp.user_transactions)
