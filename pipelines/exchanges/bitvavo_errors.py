"""Bitvavo's errors, classified from status AND body.

docs/exchanges.md, "Bitvavo: errors and rate limits".

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

from pipelines import http

EXCHANGE: Final = "bitvavo"

_RATE = frozenset({103, 104, 105, 110, 112})
_SERVER = frozenset({101, 107, 108, 109, 400, 404})
_PERMISSION = frozenset({307, 310, 311, 312, 317, 402, 403})

WEIGHT_HEADERS: Final = http.WeightHeaders(
    remaining="bitvavo-ratelimit-remaining",
    reset_at="bitvavo-ratelimit-resetat",
    limit="bitvavo-ratelimit-limit",
)
"""Where every response tells Bitvavo's rate budget: the weight left, the window's reset (epoch
ms) and its limit; the budgets its client and adapter make pace by them (`WeightBudget`)."""

_rate_limit_wait = partial(
    http.rate_limit_wait, allow_at="bitvavo-ratelimit-allowat", reset_at=WEIGHT_HEADERS.reset_at
)


def _code_class(code: int, status: int, reason: str) -> type[http.ExchangeError] | None:
    # 110 means "invalid endpoint" on the errors page, a limit elsewhere.
    if code == 110 and (status == 404 or "invalid endpoint" in reason.lower()):
        return http.NotFoundError
    if code in _RATE:
        return http.RateLimitedError
    if code in _SERVER:
        return http.ServerError
    if code == 304:
        return http.ClockSkewError
    if code in _PERMISSION:
        return http.PermissionDeniedError
    if 300 <= code < 320:
        return http.AuthenticationError
    if code == 102 or 200 <= code < 300 or 400 < code < 500:
        return http.InvalidRequestError
    return None


def _read_error(status: int, data: object) -> http.ErrorDocument | None:
    """The error a Bitvavo error document (`{"errorCode": int, "error": str}`) says, or None
    when the body is none."""
    if not (isinstance(data, Mapping) and "errorCode" in data):
        return None
    reason = http.flatten_reason(data.get("error"))
    number = http.to_number(data.get("errorCode"))
    code_int = int(number) if number is not None else None
    code = str(code_int) if code_int is not None else str(data.get("errorCode"))
    cls = _code_class(code_int, status, reason) if code_int is not None else None
    cls = http.class_or_invalid(cls, http.class_for_status(status), http.class_for_text(reason))
    return cls, code, reason


def _plain_reason(data: object) -> str:
    """The reason of an error that is no error document: its "error" field, if it has one."""
    if isinstance(data, Mapping) and "error" in data:
        return http.flatten_reason(data.get("error"))
    return ""


classify_bitvavo: Final = http.ErrorRules(
    EXCHANGE, _read_error, plain_reason=_plain_reason, rate_wait=_rate_limit_wait
)
