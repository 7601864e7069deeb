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
    AuthenticationError,
    ClockSkewError,
    ErrorDocument,
    ErrorRules,
    ExchangeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    class_for_status,
    class_for_text,
    flatten_reason,
    rate_limit_wait,
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


def _read_error(status: int, data: object) -> ErrorDocument | None:
    """The error a Bitvavo error document (`{"errorCode": int, "error": str}`) says, or None
    when the body is none."""
    if not (isinstance(data, Mapping) and "errorCode" in data):
        return None
    reason = flatten_reason(data.get("error"))
    number = to_number(data.get("errorCode"))
    code_int = int(number) if number is not None else None
    code = str(code_int) if code_int is not None else str(data.get("errorCode"))
    cls = _code_class(code_int, status, reason) if code_int is not None else None
    cls = cls or class_for_status(status) or class_for_text(reason) or InvalidRequestError
    return cls, code, reason


def _plain_reason(data: object) -> str:
    """The reason of an error that is no error document: its "error" field, if it has one."""
    if isinstance(data, Mapping) and "error" in data:
        return flatten_reason(data.get("error"))
    return ""


classify_bitvavo: Final = ErrorRules(
    EXCHANGE, _read_error, plain_reason=_plain_reason, rate_wait=_rate_limit_wait
)
"""The error a Bitvavo response stands for, or None when it is a success (a `Classifier`:
`classify_bitvavo(status, data, endpoint=…, headers=…, now=…)`, `data` the parsed JSON body or
`NOT_JSON`)."""
