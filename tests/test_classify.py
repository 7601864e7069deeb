"""Each exchange's error classifier (`pipelines.exchanges.*_errors`), from status AND body,
against the recorded error samples and the documented codes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipelines.exchanges.bitstamp_errors import classify_bitstamp
from pipelines.exchanges.bitvavo_errors import classify_bitvavo
from pipelines.http import (
    NOT_JSON,
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    FatalError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    ServerError,
)

T0 = 1_700_000_000.0


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
