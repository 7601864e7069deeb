"""Bitstamp's errors, classified from status AND body (docs/exchanges.md, "Bitstamp: errors").

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

from pipelines import http

EXCHANGE: Final = "bitstamp"


def _code_class(code: str) -> type[http.ExchangeError] | None:
    if code.upper() == "API0017":
        return http.ClockSkewError  # X-Auth-Timestamp (or nonce) outside the accepted window
    if code.upper().startswith("API"):
        return http.PermissionDeniedError if code.upper() == "API0003" else http.AuthenticationError
    if code == "400.002" or code.startswith("429"):
        return http.RateLimitedError
    if code.startswith("5"):
        return http.ServerError
    if code.startswith("401"):
        return http.AuthenticationError
    if code.startswith("403"):
        return http.PermissionDeniedError
    if code[:1] == "4":
        return http.InvalidRequestError  # 400.010-400.013 offset/limit/sort/since_timestamp, …
    return None


def _read_error(status: int, data: object) -> http.ErrorDocument | None:
    """The error a Bitstamp error document says (`{"status":"error",…}` or `{"error":…}`, with
    any HTTP status, 200 too), or None when the body is none."""
    if not (isinstance(data, Mapping) and (data.get("status") == "error" or data.get("error"))):
        return None
    raw_code = data.get("code") or data.get("response_code")
    code = str(raw_code) if raw_code not in (None, "") else None
    reason = http.flatten_reason(data.get("reason")) or http.flatten_reason(data.get("error"))
    cls = _code_class(code) if code else None
    if cls is None and (status == 429 or status >= 500):
        cls = http.class_for_status(status)
    cls = http.class_or_invalid(cls, http.class_for_text(reason), http.class_for_status(status))
    return cls, code, reason


classify_bitstamp: Final = http.ErrorRules(EXCHANGE, _read_error, plain_reason=http.flatten_reason)
