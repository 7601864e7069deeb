"""Bitvavo's errors, classified from status AND body (EXCHANGES.md "Errors and rate limits").

Error bodies are `{"errorCode": int, "error": str}`. 103/104/105/110/112 are rate limits (105
names the ban's expiry in its text), 101/107–109 "may or may not have succeeded" or overloaded,
304 a request outside the access window (clock skew), 300–317 the key, its signature and its
permissions, 102 and 2xx a request the exchange refuses. A rate-limited key waits for the ban's
expiry, `bitvavo-ratelimit-allowat`, Retry-After, or the budget's reset, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Final

from pipelines.http import (
    NOT_JSON,
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    class_for_body,
    class_for_status,
    class_for_text,
    classified,
    flatten_reason,
    rate_limit_wait,
    response_context,
    to_number,
)

EXCHANGE: Final = "bitvavo"

_RATE = frozenset({103, 104, 105, 110, 112})
_SERVER = frozenset({101, 107, 108, 109, 400, 404})
_PERMISSION = frozenset({307, 310, 311, 312, 317, 402, 403})

_rate_limit_wait = partial(
    rate_limit_wait, allow_at="bitvavo-ratelimit-allowat", reset_at="bitvavo-ratelimit-resetat"
)


def _code_class(code: int, status: int, reason: str) -> type[ExchangeError] | None:
    if code == 110 and (status == 404 or "invalid endpoint" in reason.lower()):
        return NotFoundError  # 110 means "invalid endpoint" on the errors page, a limit elsewhere
    if code in _RATE:
        return RateLimitedError
    if code in _SERVER:
        return ServerError
    if code == 304:
        return ClockSkewError
    if code in _PERMISSION:
        return PermissionDeniedError
    if 300 <= code < 320:
        return AuthenticationError
    if code == 102 or 200 <= code < 300 or 400 < code < 500:
        return InvalidRequestError
    return None


def classify_bitvavo(
    status: int,
    data: object,
    *,
    endpoint: str,
    headers: Mapping[str, str] | None = None,
    now: float | None = None,
) -> ExchangeError | None:
    """The error a Bitvavo response stands for, or None when it is a success (a `Classifier`).

    `data` is the parsed JSON body or `NOT_JSON`. Errors are `{"errorCode": int, "error": str}`.
    """
    hdrs, now = response_context(headers, now)
    if isinstance(data, Mapping) and "errorCode" in data:
        reason = flatten_reason(data.get("error"))
        number = to_number(data.get("errorCode"))
        code_int = int(number) if number is not None else None
        code: str | None = str(code_int) if code_int is not None else str(data.get("errorCode"))
        cls = _code_class(code_int, status, reason) if code_int is not None else None
        cls = cls or class_for_status(status) or class_for_text(reason) or InvalidRequestError
        if cls is MalformedResponseError:
            cls = InvalidRequestError
    else:
        code = None
        found = class_for_body(status, data)
        if found is None:
            return None
        cls = found
        if data is NOT_JSON:
            reason = "body is not valid JSON"
        elif isinstance(data, Mapping) and "error" in data:
            reason = flatten_reason(data.get("error"))
        else:
            reason = ""
    return classified(
        cls,
        EXCHANGE,
        endpoint,
        code=code,
        status=status,
        reason=reason,
        headers=hdrs,
        now=now,
        rate_wait=_rate_limit_wait,
    )
