"""Exact signing for both exchanges, checked against the documented rules and on the wire."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.credentials import Credentials
from pipelines.exchanges.bitstamp import BitstampClient, BitstampSigner, string_to_sign
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.bitvavo import BitvavoClient, BitvavoSigner, signature
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.http import FatalError, SignInput

DOC_BODY = '{"market":"BTC-EUR","side":"buy","price":"5000","amount":"1.23","orderType":"limit"}'
DOC_SIGNATURE = "44d022723a20973a18f7ee97398b9fdd405d2d019c8d39e24b8cc0dcb39ca016"


def test_bitvavo_signature_is_the_documented_known_answer() -> None:
    assert signature("bitvavo", "1548172481125", "POST", "/v2/order", DOC_BODY) == DOC_SIGNATURE


def test_bitvavo_signer_headers() -> None:
    creds = Credentials.from_strings("k" * 64, "bitvavo")
    signer = BitvavoSigner(creds, access_window_ms=5000, clock=lambda: 1548172481.125)
    headers = signer(SignInput("POST", "api.bitvavo.com", "/v2/order", "", "", DOC_BODY))
    assert headers["Bitvavo-Access-Signature"] == DOC_SIGNATURE
    assert headers["Bitvavo-Access-Timestamp"] == "1548172481125"
    assert headers["Bitvavo-Access-Window"] == "5000"
    signer.offset_ms = -125
    assert signer(SignInput("GET", "h", "/v2/time", "", "", ""))["Bitvavo-Access-Timestamp"] == (
        "1548172481000"
    )


def test_bitvavo_window_is_bounded() -> None:
    with pytest.raises(ValueError):
        BitvavoSigner(Credentials.from_strings("k", "s"), access_window_ms=60_001)


def test_bitstamp_string_to_sign_empty_body() -> None:
    request = SignInput("POST", "www.bitstamp.net", "/api/v2/account_balances/", "", "", "")
    assert string_to_sign("KEY", request, "NONCE", "1700000000000") == (
        "BITSTAMP KEYPOSTwww.bitstamp.net/api/v2/account_balances/NONCE1700000000000v2"
    )


def test_bitstamp_string_to_sign_with_body_and_query() -> None:
    request = SignInput(
        "POST",
        "127.0.0.1:8080",
        "/api/v2/user_transactions/",
        "?x=1",
        "application/x-www-form-urlencoded",
        "since_id=1&limit=1000&sort=asc",
    )
    assert string_to_sign("KEY", request, "NONCE", "17") == (
        "BITSTAMP KEY"
        "POST"
        "127.0.0.1:8080"
        "/api/v2/user_transactions/"
        "x=1"  # the query is signed without its "?" (EXCHANGES.md, Bitstamp signed GET)
        "application/x-www-form-urlencoded"
        "NONCE"
        "17"
        "v2"
        "since_id=1&limit=1000&sort=asc"
    )


def test_bitstamp_signer_uses_a_fresh_uuid4_nonce_each_time() -> None:
    signer = BitstampSigner(Credentials.from_strings("KEY", "SECRET"))
    request = SignInput("POST", "h", "/api/v2/account_balances/", "", "", "")
    nonces = {signer(request)["X-Auth-Nonce"] for _ in range(50)}
    assert len(nonces) == 50
    for nonce in nonces:
        assert nonce == nonce.lower() and uuid.UUID(nonce).version == 4 and len(nonce) == 36


def _verify_bitstamp(request: Request, key: str, secret: str) -> str | None:
    """An independent verifier, written from the documented rule."""
    body = request.get_data(as_text=True)
    content_type = request.headers.get("Content-Type", "")
    if bool(body) != bool(content_type):
        return "API0020" if content_type else "API0019"
    query = f"?{request.query_string.decode()}" if request.query_string else ""
    message = (
        f"BITSTAMP {key}{request.method}{request.host}{request.path}{query}{content_type}"
        f"{request.headers['X-Auth-Nonce']}{request.headers['X-Auth-Timestamp']}v2{body}"
    )
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    if request.headers.get("X-Auth") != f"BITSTAMP {key}":
        return "API0001"
    return None if hmac.compare_digest(expected, request.headers["X-Auth-Signature"]) else "API0005"


@pytest.mark.parametrize("with_body", [False, True])
def test_bitstamp_requests_verify_on_the_wire(httpserver: HTTPServer, with_body: bool) -> None:
    seen: list[str | None] = []

    def handler(request: Request) -> Response:
        seen.append(_verify_bitstamp(request, "KEY", "SECRET"))
        if with_body:
            assert request.form["since_id"] == "7" and request.form["sort"] == "asc"
            return Response("[]", content_type="application/json")
        return Response('[{"currency":"btc","total":"1.5","available":"1.5","reserved":"0"}]')

    path = "/api/v2/user_transactions/" if with_body else "/api/v2/account_balances/"
    httpserver.expect_request(path, method="POST").respond_with_handler(handler)
    client = BitstampClient(
        httpserver.url_for("/"),
        Credentials.from_strings("KEY", "SECRET"),
        classify=BITSTAMP.classify,
    )
    if with_body:
        assert list(client.user_transactions(since_id=7).records) == []
    else:
        assert [b.asset for b in client.balances()] == ["BTC"]
    assert seen == [None]


def test_bitvavo_requests_verify_on_the_wire(httpserver: HTTPServer) -> None:
    key, secret = "K" * 64, "S3CRET"
    checked: list[bool] = []

    def handler(request: Request) -> Response:
        target = request.full_path.rstrip("?")
        expected = signature(
            secret, request.headers["Bitvavo-Access-Timestamp"], request.method, target, ""
        )
        checked.append(expected == request.headers["Bitvavo-Access-Signature"])
        return Response(
            '[{"symbol":"EUR","available":"16.48","inOrder":"0"}]',
            headers={"bitvavo-ratelimit-remaining": "995", "bitvavo-ratelimit-limit": "1000"},
        )

    httpserver.expect_request("/v2/balance").respond_with_handler(handler)
    client = BitvavoClient(
        httpserver.url_for("/v2"), Credentials.from_strings(key, secret), classify=BITVAVO.classify
    )
    balances = client.balance()
    assert [(b.asset, str(b.total)) for b in balances] == [("EUR", "16.48")]
    assert checked == [True]


def test_bitvavo_clock_skew_resyncs_and_retries(httpserver: HTTPServer) -> None:
    """A 304 makes the client read /time, shift its clock and succeed on the retry."""
    server_ms = 1_900_000_000_000
    window = 10_000

    def balance(request: Request) -> Response:
        stamp = int(request.headers["Bitvavo-Access-Timestamp"])
        if abs(stamp - server_ms) > window:
            return Response(
                '{"errorCode":304,"error":"Your request was not received within the access '
                'window."}',
                status=403,
            )
        return Response('[{"symbol":"BTC","available":"0.5","inOrder":"0.25"}]')

    httpserver.expect_request("/v2/balance").respond_with_handler(balance)
    httpserver.expect_request("/v2/time").respond_with_json({"time": server_ms})
    client = BitvavoClient(
        httpserver.url_for("/v2"),
        Credentials.from_strings("K" * 64, "S"),
        classify=BITVAVO.classify,
        clock=lambda: 1.0e9,
    )
    assert [str(b.total) for b in client.balance()] == ["0.75"]


def test_secrets_never_reach_logs_or_errors(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = "PLANTED-KEY-9f8e7d", "PLANTED-SECRET-1a2b3c"
    httpserver.expect_request("/api/v2/account_balances/").respond_with_json(
        {"status": "error", "reason": f"Invalid signature for key {key}", "code": "API0005"},
        status=403,
    )
    client = BitstampClient(
        httpserver.url_for("/"), Credentials.from_strings(key, secret), classify=BITSTAMP.classify
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(FatalError) as caught:
        client.balances()
    text = f"{caught.value} {caught.value!r} {client!r} {caplog.text}"
    assert "API0005" in str(caught.value)
    for planted in (key, secret):
        assert not re.search(re.escape(planted), text)
