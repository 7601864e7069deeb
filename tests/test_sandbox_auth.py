"""Both exchanges' authentication over HTTP: what the real APIs reject is rejected here, and a
correctly signed request passes. Signers are test-local (test_sandbox_helpers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TypedDict

import pytest
from test_sandbox_helpers import NOW_MS, BitstampClient, BitvavoClient, clients, loads, shared_world

from pipelines.sandbox.auth import bitvavo_signature
from pipelines.sandbox.server import Sandbox, start_sandbox

BALANCES = "/api/v2/account_balances/"
LEDGER = "/api/v2/user_transactions/"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(now_ms=NOW_MS, rate_scale=1000.0, world=shared_world()) as running:
        yield running


@pytest.fixture()
def bitstamp(sandbox: Sandbox) -> BitstampClient:
    return clients(sandbox)[0]


@pytest.fixture()
def bitvavo(sandbox: Sandbox) -> BitvavoClient:
    return clients(sandbox)[1]


def test_bitvavo_signer_known_answer():
    body = '{"market":"BTC-EUR","side":"buy","price":"5000","amount":"1.23","orderType":"limit"}'
    signature = bitvavo_signature("bitvavo", "1548172481125", "POST", "/v2/order", body)
    assert signature == "44d022723a20973a18f7ee97398b9fdd405d2d019c8d39e24b8cc0dcb39ca016"


def test_keys_are_deterministic_and_shaped(sandbox: Sandbox):
    assert len(sandbox.bitvavo.key) == 64
    int(sandbox.bitvavo.key, 16)
    assert sandbox.bitvavo.secret != sandbox.bitvavo.key
    assert sandbox.bitstamp.key.isalnum() and sandbox.bitstamp.secret.isalnum()
    with start_sandbox(now_ms=NOW_MS, world=shared_world()) as again:
        assert again.info() != sandbox.info()  # other ports…
        assert (again.bitstamp.key, again.bitstamp.secret) == (
            sandbox.bitstamp.key,
            sandbox.bitstamp.secret,
        )
        assert (again.bitvavo.key, again.bitvavo.secret) == (
            sandbox.bitvavo.key,
            sandbox.bitvavo.secret,
        )
    with start_sandbox(seed=2, now_ms=NOW_MS, world=shared_world()) as other:
        assert other.bitvavo.key != sandbox.bitvavo.key
        assert other.bitstamp.secret != sandbox.bitstamp.secret


# --- Bitstamp --------------------------------------------------------------------------------


def bitstamp_code(response) -> str:
    body = loads(response.text)
    assert body["status"] == "error" and body["reason"]
    return body["code"]


def test_bitstamp_signed_request_passes(bitstamp: BitstampClient):
    assert bitstamp.post(BALANCES).status_code == 200  # empty body, no Content-Type
    response = bitstamp.post(LEDGER, {"limit": 2})  # form body with Content-Type
    assert response.status_code == 200 and len(loads(response.text)) == 2


def test_bitstamp_nonce_reuse_is_rejected(bitstamp: BitstampClient):
    nonce = str(uuid.uuid4())
    assert bitstamp.post(BALANCES, nonce=nonce).status_code == 200
    again = bitstamp.post(BALANCES, nonce=nonce)
    assert again.status_code == 403 and bitstamp_code(again) == "API0004"
    upper = bitstamp.post(BALANCES, nonce=str(uuid.uuid4()).upper())
    assert upper.status_code == 403 and bitstamp_code(upper) == "API0004"


def test_bitstamp_stale_or_future_timestamp(bitstamp: BitstampClient):
    now = int(time.time() * 1000)
    for stamp in (now - 151_000, now + 151_000):
        response = bitstamp.post(BALANCES, timestamp_ms=stamp)
        assert response.status_code == 403 and bitstamp_code(response) == "API0017"
    assert bitstamp.post(BALANCES, timestamp_ms=now - 100_000).status_code == 200


def test_bitstamp_content_type_rules(bitstamp: BitstampClient):
    ct = "application/x-www-form-urlencoded"
    headers = bitstamp.headers("POST", BALANCES, "", content_type=ct)  # signed, but CT on empty
    response = bitstamp.send("POST", BALANCES, "", headers)
    assert response.status_code == 403 and bitstamp_code(response) == "API0020"
    body = "limit=2"
    headers = bitstamp.headers("POST", LEDGER, body, content_type="application/json")
    response = bitstamp.send("POST", LEDGER, body, headers)
    assert response.status_code == 403 and bitstamp_code(response) == "API0019"


def test_bitstamp_bad_signature_unknown_key_missing_headers(bitstamp: BitstampClient):
    response = bitstamp.post(BALANCES, secret="not-the-secret")
    assert response.status_code == 403 and bitstamp_code(response) == "API0005"
    response = bitstamp.post(BALANCES, host="www.bitstamp.net")  # host is signed
    assert bitstamp_code(response) == "API0005"
    headers = bitstamp.headers("POST", LEDGER, "limit=2")
    response = bitstamp.send("POST", LEDGER, "limit=3", headers)  # body is signed
    assert bitstamp_code(response) == "API0005"
    response = bitstamp.post(BALANCES, key="x" * 32)
    assert response.status_code == 403 and bitstamp_code(response) == "API0001"
    headers = bitstamp.headers("POST", BALANCES, "")
    del headers["X-Auth-Nonce"]
    assert bitstamp_code(bitstamp.send("POST", BALANCES, "", headers)) == "API0014"
    response = bitstamp.session.post(f"{bitstamp.base_url}{BALANCES}")  # no auth at all
    assert response.status_code == 403 and bitstamp_code(response) == "API0012"


def test_bitstamp_public_endpoints_need_no_auth(bitstamp: BitstampClient):
    assert bitstamp.get("/api/v2/markets/").status_code == 200


# --- Bitvavo ---------------------------------------------------------------------------------


def bitvavo_code(response) -> int:
    body = loads(response.text)
    assert body["error"]
    return body["errorCode"]


def test_bitvavo_signed_request_passes(bitvavo: BitvavoClient):
    assert bitvavo.get("/balance").status_code == 200
    assert bitvavo.get("/trades", {"market": "BTC-EUR", "limit": 3}).status_code == 200
    assert bitvavo.get("/balance", window=60_000).status_code == 200


class Signing(TypedDict, total=False):
    """What `BitvavoClient.get` may sign otherwise than it would."""

    key: str
    secret: str
    timestamp_ms: int
    window: int


def test_bitvavo_rejections(bitvavo: BitvavoClient):
    cases: list[tuple[Signing, int]] = [
        ({"key": "abc"}, 301),
        ({"timestamp_ms": int(time.time())}, 302),  # seconds, not ms
        ({"window": 50}, 303),
        ({"window": 60_001}, 303),
        ({"timestamp_ms": int(time.time() * 1000) - 20_000}, 304),  # outside the 10 s window
        ({"key": "f" * 64}, 305),
        ({"secret": "wrong"}, 309),
    ]
    for options, code in cases:
        response = bitvavo.get("/balance", **options)
        assert response.status_code == 403, (options, response.text)
        assert bitvavo_code(response) == code, options
    stale = int(time.time() * 1000) - 20_000
    assert bitvavo.get("/balance", timestamp_ms=stale, window=30_000).status_code == 200


def test_bitvavo_signature_covers_path_and_query(bitvavo: BitvavoClient):
    url, _ = bitvavo.url("/trades", {"market": "BTC-EUR", "limit": 5})
    headers = bitvavo.signed_headers("GET", "/trades?market=BTC-EUR&limit=4")
    response = bitvavo.session.get(url, headers=headers)
    assert response.status_code == 403 and bitvavo_code(response) == 309


def test_bitvavo_private_needs_auth_public_does_not(bitvavo: BitvavoClient):
    response = bitvavo.public("/balance")
    assert response.status_code == 403 and bitvavo_code(response) == 300
    assert bitvavo.public("/markets").status_code == 200
    assert bitvavo.get("/markets").status_code == 200  # authenticated public call
    bad = bitvavo.get("/markets", secret="wrong")  # a presented key is always checked
    assert bad.status_code == 403 and bitvavo_code(bad) == 309
