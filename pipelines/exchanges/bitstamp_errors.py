"""Bitstamp's errors, classified from status AND body (EXCHANGES.md "Errors").

Bodies come in four shapes, with HTTP 200 too: `{"status":"error","reason":…,"code":…}`,
`{"status":"error","reason":{"__all__":[…]}}`, `{…,"response_code":"400.021"}` and
`{"error":…}` (maintenance). `API0xxx` codes are about the key and the signature (`API0017`: the
timestamp or nonce is outside the accepted window), `400.002` is the rate limit and
`400.010`–`400.013` malformed offset/limit/sort/since_timestamp. Bitstamp sends no rate-limit
headers: a rate limit waits for Retry-After (or a ban's expiry in the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pipelines.http import (
    NOT_JSON,
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    InvalidRequestError,
    MalformedResponseError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    class_for_body,
    class_for_status,
    class_for_text,
    classified,
    flatten_reason,
    response_context,
)

EXCHANGE: Final = "bitstamp"


def _code_class(code: str) -> type[ExchangeError] | None:
    if code.upper() == "API0017":
        return ClockSkewError  # X-Auth-Timestamp (or nonce) outside the accepted window
    if code.upper().startswith("API"):
        return PermissionDeniedError if code.upper() == "API0003" else AuthenticationError
    if code == "400.002" or code.startswith("429"):
        return RateLimitedError
    if code.startswith("5"):
        return ServerError
    if code.startswith("401"):
        return AuthenticationError
    if code.startswith("403"):
        return PermissionDeniedError
    if code[:1] == "4":
        return InvalidRequestError  # 400.010-400.013 offset/limit/sort/since_timestamp, …
    return None


def classify_bitstamp(
    status: int,
    data: object,
    *,
    endpoint: str,
    headers: Mapping[str, str] | None = None,
    now: float | None = None,
) -> ExchangeError | None:
    """The error a Bitstamp response stands for, or None when it is a success (a `Classifier`).

    `data` is the parsed JSON body or `NOT_JSON`. Bitstamp errors arrive with HTTP 200 too, as
    `{"status":"error","reason":…,"code"|"response_code":…}` or `{"error":…}`.
    """
    hdrs, now = response_context(headers, now)
    if isinstance(data, Mapping) and (data.get("status") == "error" or data.get("error")):
        raw_code = data.get("code") or data.get("response_code")
        code = str(raw_code) if raw_code not in (None, "") else None
        reason = flatten_reason(data.get("reason")) or flatten_reason(data.get("error"))
        cls = _code_class(code) if code else None
        if cls is None and (status == 429 or status >= 500):
            cls = class_for_status(status)
        cls = cls or class_for_text(reason) or class_for_status(status) or InvalidRequestError
        if cls is MalformedResponseError:
            cls = InvalidRequestError
    else:
        code = None
        found = class_for_body(status, data)
        if found is None:
            return None
        cls = found
        reason = "body is not valid JSON" if data is NOT_JSON else flatten_reason(data)
    return classified(
        cls, EXCHANGE, endpoint, code=code, status=status, reason=reason, headers=hdrs, now=now
    )
