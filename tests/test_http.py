"""HttpClient against real local HTTP servers (each exchange's classifier from its adapter), and
the error classification of both exchanges."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import socket
import struct
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fakeclock import T0, FakeClock
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.credentials import Credentials
from pipelines.exchanges.bitstamp_errors import classify_bitstamp
from pipelines.exchanges.bitvavo_errors import classify_bitvavo
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.registry import get as adapter
from pipelines.http import (
    NOT_JSON,
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    FatalError,
    HttpClient,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestBudget,
    RetryableError,
    RetryPolicy,
    ServerError,
    SignInput,
    TransportError,
    Usage,
)

FAST = RetryPolicy(max_attempts=5, max_total_seconds=60, base_seconds=0.01, min_seconds=0.01)


class RecordingBudget(RequestBudget):
    """A real RequestBudget that also notes the order of calls the client makes."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(*BITSTAMP_PACING, clock=clock, sleep=clock.sleep)
        self.events: list[tuple[str, float]] = []

    def acquire(self, weight: int = 1) -> None:
        super().acquire(weight)
        self.events.append(("acquire", weight))

    def block_until(self, epoch_seconds: float) -> None:
        self.events.append(("block_until", epoch_seconds))
        super().block_until(epoch_seconds)


def make_client(
    exchange: str,
    base_url: str,
    clock: FakeClock | None = None,
    retry: RetryPolicy = FAST,
    **kwargs: Any,
) -> tuple[HttpClient, FakeClock, RecordingBudget]:
    clock = clock or FakeClock()
    budget = RecordingBudget(clock)
    client = HttpClient(
        exchange,
        base_url,
        classify=adapter(exchange).classify,
        limiter=budget,
        retry=retry,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )
    return client, clock, budget


# ---------------------------------------------------------------------------- raw socket server


def loopback_listener() -> tuple[socket.socket, str]:
    """A socket listening on a free loopback port, and the base URL to reach it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def read_head(conn: socket.socket) -> bytes | None:
    """The head of the request arriving on `conn`; None when the client closes before its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n\r\n")[0]


class RawServer:
    """Speaks just enough HTTP/1.1 to misbehave: per connection, "reset", "truncate" or "ok"."""

    def __init__(self, script: list[str], body: bytes = b'{"ok": true}') -> None:
        self.script = script
        self.body = body
        self.connections = 0
        self.sock, self.url = loopback_listener()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                read_head(conn)
                action = self.script[min(self.connections, len(self.script) - 1)]
                self.connections += 1
                if action == "reset":
                    # SO_LINGER 0: close() sends RST instead of FIN
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif action == "truncate":
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100\r\nConnection: close\r\n\r\n" + self.body[:5]
                    )
                else:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                        % len(self.body)
                        + self.body
                    )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_server() -> Any:
    servers: list[RawServer] = []

    def start(script: list[str]) -> RawServer:
        server = RawServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# --------------------------------------------------------------------------------- retrying


def test_retries_429_500_502_then_succeeds(httpserver: HTTPServer) -> None:
    for status in (429, 500, 502):
        httpserver.expect_oneshot_request("/api/v2/ticker/btceur/").respond_with_data(
            "<html>busy</html>", status=status, content_type="text/html"
        )
    httpserver.expect_request("/api/v2/ticker/btceur/").respond_with_json({"last": "1"})
    client, clock, _ = make_client("bitstamp", httpserver.url_for("/"))
    reply = client.request("GET", "/api/v2/ticker/btceur/", endpoint="ticker")
    assert reply.data == {"last": "1"}
    assert [response.status_code for _, response in httpserver.log] == [429, 500, 502, 200]
    assert len(clock.sleeps) == 3 and all(wait > 0 for wait in clock.sleeps)
    assert client.stats.retries == 3
    assert client.stats.errors == {"RateLimitedError": 1, "ServerError": 2}


@pytest.mark.parametrize(
    "body",
    ['{"data": [1, 2', "<html>oops</html>", ""],
    ids=["truncated-json", "html", "empty"],
)
def test_retries_malformed_bodies_then_succeeds(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_oneshot_request("/v2/time").respond_with_data(body, status=200)
    httpserver.expect_request("/v2/time").respond_with_json({"time": 1})
    client, clock, _ = make_client("bitvavo", httpserver.url_for("/v2"))
    reply = client.request("GET", "/time", endpoint="time")
    assert reply.data == {"time": 1}
    assert len(httpserver.log) == 2
    assert client.stats.errors == {"MalformedResponseError": 1}
    assert len(clock.sleeps) == 1


def test_retries_connection_reset_then_succeeds(raw_server: Any) -> None:
    server = raw_server(["reset", "reset", "ok"])
    client, clock, _ = make_client("bitvavo", server.url + "/v2")
    reply = client.request("GET", "/time", endpoint="time")
    assert reply.data == {"ok": True}
    assert server.connections == 3
    assert len(clock.sleeps) == 2 and min(clock.sleeps) > 0
    assert client.stats.errors == {"TransportError": 2}
    assert client.stats.requests == 3 and client.stats.retries == 2


def test_retries_body_cut_short_of_content_length(raw_server: Any) -> None:
    server = raw_server(["truncate", "ok"])
    client, _, _ = make_client("bitstamp", server.url)
    reply = client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd")
    assert reply.data == {"ok": True}
    assert server.connections == 2
    assert client.stats.errors == {"MalformedResponseError": 1}


def test_connection_refused_is_retried_then_raised() -> None:
    port = closed_port()
    client, clock, _ = make_client(
        "bitstamp", f"http://127.0.0.1:{port}", retry=RetryPolicy(max_attempts=3, base_seconds=0.01)
    )
    with pytest.raises(TransportError) as caught:
        client.request(
            "GET", "/api/v2/eur_usd/", endpoint="eur_usd", signer=lambda _: {"X-Auth": "s3cr3t!!"}
        )
    # the requests exception (it carries the signed request and its headers) is not chained
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert client.stats.requests == 3
    assert len(clock.sleeps) == 2
    assert "bitstamp eur_usd" in str(caught.value)


def test_read_timeout_is_retried() -> None:
    calls = []

    def answer(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.4)  # longer than the read timeout
        return Response('{"time": 2}', content_type="application/json")

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)  # the slow one must not queue
    server.expect_request("/v2/time").respond_with_handler(answer)
    server.start()
    try:
        client, _, _ = make_client("bitvavo", server.url_for("/v2"), timeout=(1.0, 0.15))
        reply = client.request("GET", "/time", endpoint="time")
    finally:
        server.stop()
    assert reply.data == {"time": 2}
    assert len(calls) == 2
    assert client.stats.errors == {"TransportError": 1}


# ------------------------------------------------------------------------------ fatal errors

FATAL_CASES = [
    (
        "bitstamp",
        403,
        {"status": "error", "reason": "Invalid signature", "code": "API0005"},
        AuthenticationError,
        "API0005",
    ),
    (
        "bitstamp",
        200,
        {"status": "error", "reason": {"__all__": ["Invalid offset."]}},
        InvalidRequestError,
        None,
    ),
    (
        "bitstamp",
        200,
        {"status": "error", "reason": "Invalid limit.", "response_code": "400.011"},
        InvalidRequestError,
        "400.011",
    ),
    (
        "bitvavo",
        403,
        {"errorCode": 309, "error": "The signature is invalid."},
        AuthenticationError,
        "309",
    ),
    ("bitvavo", 404, None, NotFoundError, None),
    ("bitstamp", 404, None, NotFoundError, None),
]


@pytest.mark.parametrize(("exchange", "status", "body", "expected", "code"), FATAL_CASES)
def test_fatal_errors_raise_at_once(
    httpserver: HTTPServer,
    exchange: str,
    status: int,
    body: dict[str, Any] | None,
    expected: type[ExchangeError],
    code: str | None,
) -> None:
    text = json.dumps(body) if body is not None else "<html>Not Found</html>"
    httpserver.expect_request("/x/private/").respond_with_data(text, status=status)
    client, clock, _ = make_client(exchange, httpserver.url_for("/x"))
    with pytest.raises(FatalError) as caught:
        client.request("POST", "/private/", endpoint="private", form={"limit": 1})
    error = caught.value
    assert type(error) is expected
    assert len(httpserver.log) == 1
    assert clock.sleeps == []
    assert (error.exchange, error.endpoint, error.status, error.code) == (
        exchange,
        "private",
        status,
        code,
    )
    assert f"{exchange} private" in str(error)
    if code:
        assert code in str(error)


def test_bitvavo_clock_skew_is_fatal_here(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/balance").respond_with_json(
        {"errorCode": 304, "error": "Request was not received within acceptable window."},
        status=403,
    )
    client, _, _ = make_client("bitvavo", httpserver.url_for("/v2"))
    with pytest.raises(ClockSkewError):
        client.request("GET", "/balance", endpoint="balance", weight=5)
    assert len(httpserver.log) == 1


# ----------------------------------------------------------------------- honouring the exchange


def test_retry_after_seconds_is_honoured_and_blocks_the_limiter(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/api/v2/eur_usd/").respond_with_data(
        "", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request("/api/v2/eur_usd/").respond_with_json({"buy": "1.1"})
    client, clock, budget = make_client("bitstamp", httpserver.url_for("/"))
    client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd")
    assert clock.sleeps == [7.0]
    # the limiter was told before the request was sent again
    blocks = [i for i, (name, _) in enumerate(budget.events) if name == "block_until"]
    acquires = [i for i, (name, _) in enumerate(budget.events) if name == "acquire"]
    assert blocks and blocks[0] < acquires[1]
    assert budget.events[blocks[0]][1] == pytest.approx(T0 + 7.0)


def test_retry_after_http_date_is_honoured(httpserver: HTTPServer) -> None:
    when = datetime.fromtimestamp(T0 + 30, UTC)
    httpserver.expect_oneshot_request("/api/v2/eur_usd/").respond_with_data(
        "", status=503, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    httpserver.expect_request("/api/v2/eur_usd/").respond_with_json({"buy": "1.1"})
    client, clock, _ = make_client("bitstamp", httpserver.url_for("/"))
    client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd")
    assert len(clock.sleeps) == 1
    assert 30.0 <= clock.sleeps[0] <= 31.0


def test_bitvavo_resetat_is_honoured(httpserver: HTTPServer) -> None:
    reset_ms = int((T0 + 12.5) * 1000)
    httpserver.expect_oneshot_request("/v2/trades").respond_with_json(
        {"errorCode": 110, "error": "Rate limit exceeded."},
        status=429,
        headers={"Bitvavo-Ratelimit-Remaining": "0", "Bitvavo-Ratelimit-ResetAt": str(reset_ms)},
    )
    httpserver.expect_request("/v2/trades").respond_with_json([])
    client, clock, budget = make_client("bitvavo", httpserver.url_for("/v2"))
    client.request("GET", "/trades", endpoint="trades", params={"market": "BTC-EUR"}, weight=5)
    assert len(clock.sleeps) == 1
    assert 12.5 <= clock.sleeps[0] <= 13.0
    assert ("block_until", pytest.approx(T0 + clock.sleeps[0])) in budget.events
    assert client.stats.weight == 10


def test_bitvavo_ban_expiry_is_honoured(httpserver: HTTPServer) -> None:
    expiry_ms = int((T0 + 95) * 1000)
    message = (
        "Your IP or API key has been banned for not respecting the rate limit. "
        f"The ban expires at {expiry_ms}."
    )
    httpserver.expect_oneshot_request("/v2/balance").respond_with_json(
        {"errorCode": 105, "error": message}, status=429
    )
    httpserver.expect_request("/v2/balance").respond_with_json([])
    policy = RetryPolicy(max_total_seconds=300, base_seconds=0.01)
    client, clock, budget = make_client("bitvavo", httpserver.url_for("/v2"), retry=policy)
    client.request("GET", "/balance", endpoint="balance", weight=5)
    assert len(clock.sleeps) == 1
    assert 95.0 <= clock.sleeps[0] <= 95.5
    blocked = [value for name, value in budget.events if name == "block_until"]
    assert blocked and min(blocked) >= T0 + 95.0


def test_a_ban_longer_than_the_retry_budget_raises_at_once(httpserver: HTTPServer) -> None:
    expiry_ms = int((T0 + 900) * 1000)
    httpserver.expect_request("/v2/balance").respond_with_json(
        {"errorCode": 105, "error": f"Banned. The ban expires at {expiry_ms}."}, status=429
    )
    client, clock, budget = make_client(
        "bitvavo", httpserver.url_for("/v2"), retry=RetryPolicy(max_total_seconds=300)
    )
    with pytest.raises(RateLimitedError) as caught:
        client.request("GET", "/balance", endpoint="balance", weight=5)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 900
    assert len(httpserver.log) == 1 and clock.sleeps == []
    # other threads still hold off until the ban is over
    assert any(name == "block_until" and value >= T0 + 900 for name, value in budget.events)


def test_backoff_is_never_zero_and_bounded_by_attempts(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/time").respond_with_data("", status=500)
    policy = RetryPolicy(max_attempts=4, base_seconds=0.0, min_seconds=0.02)
    client, clock, _ = make_client("bitvavo", httpserver.url_for("/v2"), retry=policy)
    with pytest.raises(ServerError):
        client.request("GET", "/time", endpoint="time")
    assert len(httpserver.log) == 4
    assert len(clock.sleeps) == 3
    assert all(wait >= 0.02 for wait in clock.sleeps)


def test_backoff_grows_exponentially_with_jitter(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/time").respond_with_data("", status=502)
    policy = RetryPolicy(max_attempts=6, base_seconds=1.0, max_backoff_seconds=8.0)
    client, clock, _ = make_client("bitvavo", httpserver.url_for("/v2"), retry=policy)
    with pytest.raises(ServerError):
        client.request("GET", "/time", endpoint="time")
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(clock.sleeps) == len(ceilings)
    for wait, ceiling in zip(clock.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_retrying_is_bounded_by_total_seconds(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/time").respond_with_data("", status=503)
    policy = RetryPolicy(
        max_attempts=1000, max_total_seconds=5.0, base_seconds=1.0, max_backoff_seconds=1.0
    )
    client, clock, _ = make_client("bitvavo", httpserver.url_for("/v2"), retry=policy)
    with pytest.raises(ServerError):
        client.request("GET", "/time", endpoint="time")
    assert sum(clock.sleeps) <= 5.0
    assert len(clock.sleeps) >= 4  # each wait is 0.5-1 s
    assert len(httpserver.log) == len(clock.sleeps) + 1


# ------------------------------------------------------------- what is signed is what is sent


def test_signer_sees_exactly_what_is_sent_on_every_attempt(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/api/v2/user_transactions/").respond_with_data(
        "", status=502
    )
    httpserver.expect_request("/api/v2/user_transactions/").respond_with_json([])
    signed: list[SignInput] = []

    def signer(what: SignInput) -> Mapping[str, str]:
        signed.append(what)
        return {"X-Auth-Nonce": f"nonce-{len(signed)}"}

    client, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    client.request(
        "POST",
        "/api/v2/user_transactions/",
        endpoint="user_transactions",
        params={"z": "last", "a": "x y+z/é~", "n": Decimal("1E+3"), "flag": True, "skip": None},
        form={"sort": "asc", "limit": 1000, "since_id": 17},
        signer=signer,
    )
    assert len(signed) == 2 and len(httpserver.log) == 2
    for what, (request, _) in zip(signed, httpserver.log, strict=True):
        assert what.method == request.method == "POST"
        assert what.host == request.headers["Host"] == f"{httpserver.host}:{httpserver.port}"
        assert what.path == request.path == "/api/v2/user_transactions/"
        assert what.query == "?" + request.query_string.decode("ascii")
        assert what.content_type == request.headers["Content-Type"]
        assert what.content_type == "application/x-www-form-urlencoded"
        assert what.body == request.get_data(as_text=True)
    request = httpserver.log[0][0]
    assert parse_qsl(request.query_string.decode()) == [
        ("z", "last"),
        ("a", "x y+z/é~"),
        ("n", "1000"),
        ("flag", "true"),
    ]
    assert parse_qsl(request.get_data(as_text=True)) == [
        ("sort", "asc"),
        ("limit", "1000"),
        ("since_id", "17"),
    ]
    # a fresh signature per attempt, and the one sent is the one made for that attempt
    assert [r.headers["X-Auth-Nonce"] for r, _ in httpserver.log] == ["nonce-1", "nonce-2"]


def test_empty_post_has_no_content_type_and_no_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v2/account_balances/", method="POST").respond_with_json([])
    signed: list[SignInput] = []

    def signer(what: SignInput) -> Mapping[str, str]:
        signed.append(what)
        return {"X-Auth": "BITSTAMP key"}

    client, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    client.request("POST", "/api/v2/account_balances/", endpoint="balances", signer=signer)
    request = httpserver.log[0][0]
    assert "Content-Type" not in request.headers
    assert request.get_data() == b""
    assert request.query_string == b""
    assert signed[0].content_type == "" and signed[0].body == "" and signed[0].query == ""
    assert request.headers["User-Agent"].startswith("tally/")
    assert "read-only" in request.headers["User-Agent"]


def test_path_is_appended_to_base_path_and_reply_is_exact(httpserver: HTTPServer) -> None:
    text = '{"price": 0.1, "big": 12345678901234567890.123456789, "n": 3}'
    httpserver.expect_request("/v2/BTC-EUR/candles").respond_with_data(
        text, content_type="application/json", headers={"Bitvavo-Ratelimit-Remaining": "990"}
    )
    client, _, _ = make_client("bitvavo", httpserver.url_for("/v2/"))
    reply = client.request(
        "GET", "/BTC-EUR/candles", endpoint="candles", params={"interval": "1h", "limit": 2}
    )
    assert reply.text == text
    assert reply.data["price"] == Decimal("0.1") and isinstance(reply.data["price"], Decimal)
    assert reply.data["big"] == Decimal("12345678901234567890.123456789")
    assert reply.data["n"] == 3
    assert reply.status == 200
    assert reply.headers["bitvavo-ratelimit-remaining"] == "990"
    assert reply.url == httpserver.url_for("/v2/BTC-EUR/candles") + "?interval=1h&limit=2"
    assert reply.fetched_at == datetime.fromtimestamp(T0, UTC)
    assert text not in repr(reply)


def test_float_parameters_are_refused(httpserver: HTTPServer) -> None:
    client, _, _ = make_client("bitvavo", httpserver.url_for("/v2"))
    with pytest.raises(TypeError):
        client.request("GET", "/time", endpoint="time", params={"x": 0.1})
    assert httpserver.log == []


# ------------------------------------------------------------------------------------- secrets


def test_secrets_never_reach_logs_or_exceptions(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    key_text = "KEYplanted0123456789abcdef"
    secret_text = "SECRETplanted9876543210zyxw"
    credentials = Credentials.from_strings(key_text, secret_text)
    signatures: list[str] = []

    def signer(what: SignInput) -> Mapping[str, str]:
        message = f"{what.method}{what.host}{what.path}{what.query}{what.body}"
        signature = hmac.new(
            credentials.secret.reveal().encode(), message.encode(), hashlib.sha256
        ).hexdigest()
        signatures.append(signature)
        return {
            "X-Auth": f"BITSTAMP {credentials.key.reveal()}",
            "X-Auth-Signature": signature,
            "X-Planted-Secret": credentials.secret.reveal(),
        }

    # an exchange that echoes what it got, in a retryable and then a fatal error
    httpserver.expect_oneshot_request("/api/v2/fees/trading/").respond_with_data("", status=500)
    httpserver.expect_request("/api/v2/fees/trading/").respond_with_json(
        {
            "status": "error",
            "reason": f"API key {key_text} not found (secret {secret_text})",
            "code": "API0001",
        },
        status=403,
    )
    caplog.set_level(logging.DEBUG)
    client, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    with pytest.raises(AuthenticationError) as caught:
        client.request("POST", "/api/v2/fees/trading/", endpoint="fees", signer=signer)
    # the secrets really were on the wire (so the checks below can fail)
    sent = httpserver.log[0][0].headers
    assert sent["X-Planted-Secret"] == secret_text and key_text in sent["X-Auth"]
    texts = [str(caught.value), repr(caught.value), caplog.text, repr(client), repr(client.stats)]
    for text in texts:
        assert key_text not in text
        assert secret_text not in text
        for signature in signatures:
            assert signature not in text
    assert "API0001" in str(caught.value)
    assert "fees" in caplog.text  # it did log


# ---------------------------------------------------------------------------------------- stats


def test_stats_per_endpoint(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/v2/trades").respond_with_data("", status=500)
    httpserver.expect_request("/v2/trades").respond_with_json([])
    httpserver.expect_request("/v2/markets").respond_with_json(
        {"errorCode": 205, "error": "market parameter is invalid."}, status=400
    )
    client, _, _ = make_client("bitvavo", httpserver.url_for("/v2"))
    client.request("GET", "/trades", endpoint="trades", weight=5)
    client.request("GET", "/trades", endpoint="trades", weight=5)
    with pytest.raises(InvalidRequestError):
        client.request("GET", "/markets", endpoint="markets")
    per = client.stats.by_endpoint()
    assert (per["trades"].requests, per["trades"].retries, per["trades"].weight) == (3, 1, 15)
    assert per["trades"].errors == {"ServerError": 1}
    assert (per["markets"].requests, per["markets"].retries) == (1, 0)
    assert per["markets"].errors == {"InvalidRequestError": 1}
    summary = client.stats.as_dict()
    assert (summary["requests"], summary["retries"], summary["weight"]) == (4, 1, 16)
    assert summary["errors"] == {"ServerError": 1, "InvalidRequestError": 1}


def test_usage_readings_give_one_stream_its_share(httpserver: HTTPServer) -> None:
    """`HttpStats.usage()` is the one meter streams and probes read: a reading at one moment,
    and what a stream used is its end reading less its start reading."""
    httpserver.expect_oneshot_request("/v2/trades").respond_with_data("", status=502)
    httpserver.expect_request("/v2/trades").respond_with_json([])
    client, _, _ = make_client("bitvavo", httpserver.url_for("/v2"))
    client.request("GET", "/trades", endpoint="trades", weight=5)  # another stream's share
    start = client.stats.usage()
    assert start == Usage(requests=2, weight=10, retries=1)
    client.request("GET", "/trades", endpoint="trades", weight=5)
    client.request("GET", "/trades", endpoint="trades", weight=5)
    assert client.stats.usage() - start == Usage(requests=2, weight=10, retries=0)
    assert client.stats.usage() == Usage(
        client.stats.requests, client.stats.weight, client.stats.retries
    )


def test_exceptions_survive_pickling() -> None:
    error = classify_bitvavo(
        429,
        {"errorCode": 105, "error": "The ban expires at 1700000100000."},
        endpoint="trades",
        now=T0,
    )
    assert isinstance(error, RateLimitedError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitedError
    assert (copy.exchange, copy.endpoint, copy.code, copy.status) == (
        "bitvavo",
        "trades",
        "105",
        429,
    )
    assert copy.retry_after == error.retry_after
    assert str(copy) == str(error)


# ----------------------------------------------------------------------------- classification

# Expected class of every recorded error body, from the docs (EXCHANGES.md, Bitstamp's and
# Bitvavo's error pages): keyed by a piece of the body so a new sample must be added here.
BITSTAMP_SAMPLE_EXPECTATIONS: dict[str, type[ExchangeError]] = {
    '"API0004"': AuthenticationError,  # invalid nonce (HTTP 403)
    '"API0001"': AuthenticationError,  # API key not found
    '"API0019"': AuthenticationError,  # Content-Type header not accepted
    "Missing key, signature and nonce": AuthenticationError,
    '"400.021"': InvalidRequestError,  # order validation
    "You can only buy": InvalidRequestError,  # {"__all__": [...]} validation
    '"Order not found"': InvalidRequestError,
    "You have only 0.00000000 BTC": InvalidRequestError,  # {"error": {field: [...]}}
    "API access disabled": PermissionDeniedError,
}
BITVAVO_SAMPLE_EXPECTATIONS: dict[int, type[ExchangeError]] = {
    203: InvalidRequestError,  # parameter required
    205: InvalidRequestError,  # parameter invalid
    216: InvalidRequestError,  # insufficient balance
    233: InvalidRequestError,  # order not active
    305: AuthenticationError,  # no active API key
    308: AuthenticationError,  # signature length
    309: AuthenticationError,  # signature invalid
}


def _load(samples_dir: Path, name: str) -> list[dict[str, Any]]:
    text = (samples_dir / "recorded" / name).read_text()
    return json.loads(text, parse_float=Decimal)


def test_every_recorded_bitstamp_error_is_classified(samples_dir: Path) -> None:
    entries = _load(samples_dir, "bitstamp_errors.json")
    assert len(entries) == len(BITSTAMP_SAMPLE_EXPECTATIONS)
    for entry in entries:
        body = json.dumps(entry["body"])
        keys = [key for key in BITSTAMP_SAMPLE_EXPECTATIONS if key in body]
        assert len(keys) == 1, f"no single expectation for {body}"
        expected = BITSTAMP_SAMPLE_EXPECTATIONS[keys[0]]
        status = entry["http_status"] or 200  # Bitstamp errors arrive with HTTP 200 too
        error = classify_bitstamp(status, entry["body"], endpoint="sample", now=T0)
        assert type(error) is expected, body
        assert isinstance(error, FatalError)
        code = entry["body"].get("code") or entry["body"].get("response_code")
        if code:
            assert error.code == code and code in str(error)
        assert str(error).startswith("bitstamp sample: ")


def test_every_recorded_bitvavo_error_is_classified(samples_dir: Path) -> None:
    entries = _load(samples_dir, "bitvavo_errors.json")
    assert {entry["body"]["errorCode"] for entry in entries} == set(BITVAVO_SAMPLE_EXPECTATIONS)
    for entry in entries:
        code = entry["body"]["errorCode"]
        for status in {entry["http_status"] or 400, 200}:
            error = classify_bitvavo(status, entry["body"], endpoint="sample", now=T0)
            assert type(error) is BITVAVO_SAMPLE_EXPECTATIONS[code], (status, entry["body"])
            assert error.code == str(code)
            assert f"code {code}" in str(error)


MAINTENANCE = {"error": "Bitstamp.net is under scheduled maintenance. We'll be back soon."}

MORE_BITSTAMP_CASES = [
    (200, MAINTENANCE, ServerError),
    (503, MAINTENANCE, ServerError),
    (
        200,
        {"status": "error", "reason": "Rate limit exceeded", "response_code": "400.002"},
        RateLimitedError,
    ),
    (
        200,
        {"status": "error", "reason": "Invalid offset.", "response_code": "400.010"},
        InvalidRequestError,
    ),
    (
        200,
        {"status": "error", "reason": "Invalid since_timestamp.", "response_code": "400.013"},
        InvalidRequestError,
    ),
    (
        403,
        {"status": "error", "reason": "No permission found", "code": "API0003"},
        PermissionDeniedError,
    ),
    (200, {"status": "error", "reason": "Nonce expired", "code": "API0017"}, ClockSkewError),
    (
        200,
        {"status": "error", "reason": "Content-Type on empty body", "code": "API0020"},
        AuthenticationError,
    ),
    (
        200,
        {
            "status": "error",
            "reason": {"__all__": ["Trading is currently unavailable for your account."]},
            "response_code": "403.004",
        },
        PermissionDeniedError,
    ),
    (429, NOT_JSON, RateLimitedError),
    (500, NOT_JSON, ServerError),
    (504, {"detail": "gateway"}, ServerError),
    (200, NOT_JSON, MalformedResponseError),
    (404, NOT_JSON, NotFoundError),
    (301, NOT_JSON, NotFoundError),
    (401, NOT_JSON, AuthenticationError),
    (400, {"detail": "bad"}, InvalidRequestError),
    (200, [{"id": 1, "type": "2"}], None),
    (200, {"data": {"pair": "BTC/USD", "ohlc": []}}, None),
]


@pytest.mark.parametrize(("status", "body", "expected"), MORE_BITSTAMP_CASES)
def test_bitstamp_classification(status: int, body: object, expected: type | None) -> None:
    error = classify_bitstamp(status, body, endpoint="e", now=T0)
    assert (type(error) if error is not None else None) is expected


MORE_BITVAVO_CASES = [
    (429, {"errorCode": 103, "error": "You have been rate limited."}, RateLimitedError),
    (
        429,
        {"errorCode": 105, "error": "Banned. The ban expires at 1700000060000."},
        RateLimitedError,
    ),
    (429, {"errorCode": 110, "error": "Rate limit exceeded."}, RateLimitedError),
    (429, {"errorCode": 112, "error": "Rate limited."}, RateLimitedError),
    (
        404,
        {"errorCode": 110, "error": "Invalid endpoint. Please check url and HTTP method."},
        NotFoundError,
    ),
    (
        500,
        {"errorCode": 101, "error": "Unknown error. Operation may or may not have succeeded."},
        ServerError,
    ),
    (500, {"errorCode": 107, "error": "The matching engine is overloaded."}, ServerError),
    (500, {"errorCode": 108, "error": "Not processed in time."}, ServerError),
    (500, {"errorCode": 109, "error": "Did not respond in time."}, ServerError),
    (400, {"errorCode": 102, "error": "Invalid JSON."}, InvalidRequestError),
    (
        403,
        {"errorCode": 300, "error": "Authentication is required for this endpoint."},
        AuthenticationError,
    ),
    (
        403,
        {"errorCode": 304, "error": "Request was not received within acceptable window."},
        ClockSkewError,
    ),
    (
        403,
        {"errorCode": 310, "error": "This key does not allow trading actions."},
        PermissionDeniedError,
    ),
    (
        403,
        {"errorCode": 311, "error": "This key does not allow showing account information."},
        PermissionDeniedError,
    ),
    (400, {"errorCode": "205", "error": "start parameter is invalid."}, InvalidRequestError),
    (502, NOT_JSON, ServerError),
    (429, NOT_JSON, RateLimitedError),
    (404, NOT_JSON, NotFoundError),
    (200, NOT_JSON, MalformedResponseError),
    (200, [["1548684000000", "1", "1", "1", "1", "0"]], None),
    (200, {"time": 1}, None),
]


@pytest.mark.parametrize(("status", "body", "expected"), MORE_BITVAVO_CASES)
def test_bitvavo_classification(status: int, body: object, expected: type | None) -> None:
    error = classify_bitvavo(status, body, endpoint="e", now=T0)
    assert (type(error) if error is not None else None) is expected
    if error is not None:
        assert isinstance(error, RetryableError) != isinstance(error, FatalError)
        if isinstance(error, RetryableError) and error.retry_after is not None:
            assert error.retry_after > 0


def test_ban_expiry_and_headers_give_retry_after() -> None:
    ban = classify_bitvavo(
        429, {"errorCode": 105, "error": "The ban expires at 1700000060000."}, endpoint="e", now=T0
    )
    assert isinstance(ban, RateLimitedError) and 60 <= (ban.retry_after or 0) <= 60.5
    allow = classify_bitvavo(
        429,
        {"errorCode": 103, "error": "rate limited"},
        endpoint="e",
        headers={"Bitvavo-Ratelimit-AllowAt": "1700000003000"},
        now=T0,
    )
    assert isinstance(allow, RateLimitedError) and 3 <= (allow.retry_after or 0) <= 3.5
    past = classify_bitvavo(
        429, {"errorCode": 105, "error": "The ban expires at 1699999990000."}, endpoint="e", now=T0
    )
    assert isinstance(past, RateLimitedError) and (past.retry_after or 0) > 0  # never 0
    bitstamp = classify_bitstamp(429, NOT_JSON, endpoint="e", headers={"retry-after": "4"}, now=T0)
    assert isinstance(bitstamp, RateLimitedError) and bitstamp.retry_after == 4.0


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


def test_a_proxy_from_the_environment_carries_every_request(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client resolves the environment's proxies once (requests would on every send): each
    request still goes through them, and NO_PROXY still exempts a host."""
    httpserver.expect_request("/api/v2/eur_usd/").respond_with_json({"buy": "1.1", "sell": "1.0"})
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("http_proxy", raising=False)
    proxied, _, _ = make_client("bitstamp", httpserver.url_for("/"), retry=RetryPolicy(1))
    for _ in range(2):  # (the first resolves the proxies, the second reuses them)
        with pytest.raises(TransportError):
            proxied.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd")
    assert httpserver.log == []

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    for _ in range(2):
        assert direct.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd").data["buy"] == "1.1"
    assert len(httpserver.log) == 2


def test_a_body_the_read_takes_is_not_decoded_and_others_are_classified(
    httpserver: HTTPServer,
) -> None:
    """`read` sees only successful bodies; what it takes is the reply's `read` (no `data`);
    what it leaves is decoded and classified as always, an error document sent with 200 too."""
    page = b'[[1,"2"]]'
    httpserver.expect_ordered_request("/api/v2/ohlc/btceur/").respond_with_data("", status=502)
    httpserver.expect_ordered_request("/api/v2/ohlc/btceur/").respond_with_data(page)
    error = '{"status":"error","reason":"Invalid pair","code":"API0001"}'
    httpserver.expect_ordered_request("/api/v2/ohlc/btceur/").respond_with_data(error)
    seen: list[bytes] = []

    def read(body: bytes) -> object | None:
        seen.append(body)
        return "a page" if body == page else None

    client, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    reply = client.request("GET", "/api/v2/ohlc/btceur/", endpoint="ohlc", read=read)
    assert (reply.read, reply.data, reply.text, reply.status) == (
        "a page",
        None,
        page.decode(),
        200,
    )
    with pytest.raises(ExchangeError, match="Invalid pair"):
        client.request("GET", "/api/v2/ohlc/btceur/", endpoint="ohlc", read=read)
    assert seen == [page, error.encode()]  # never the 502's
