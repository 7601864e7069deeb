"""What error classifiers share: the `Classifier` protocol and the pieces each exchange's
classifier (in `pipelines.exchanges`) is built from.

A classifier tells, from a response's status AND body, which `ExchangeError` it stands for, or
None for a success. What is the same everywhere lives here: the class an HTTP status or a
reason's wording stands for, reasons flattened to one line, and the waits a response asks for
(Retry-After, a ban's expiry in the reason, epoch-millisecond headers), each from `now`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final, Protocol

from ._common import lower_headers, to_number
from ._errors import (
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    ServerError,
    _make_error,
)

# Added to waits computed from an absolute time the exchange gave (ban expiry, reset, allow-at),
# so that the next request does not arrive a hair early.
EPOCH_MARGIN_SECONDS: Final = 0.25


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJson()
"""Stands for a response body that is not valid JSON (truncated, HTML, empty)."""


class Classifier(Protocol):
    """Tells which error a response stands for, or None when it is a success.

    `data` is the parsed JSON body (floats as Decimal) or `NOT_JSON`; `headers` are the
    response's (any case); `now` (epoch seconds, default the time of the call) is what waits
    the response asks for are measured from.
    """

    def __call__(
        self,
        status: int,
        data: object,
        *,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> ExchangeError | None: ...


RateLimitWait = Callable[[Mapping[str, str], float, str], float | None]
"""(lower-cased headers, now, reason) → seconds until a rate-limited key may send, or None."""

ErrorDocument = tuple[type[ExchangeError], str | None, str]
"""What an exchange's error body says: the error's class, the exchange's code, the reason."""

_BAN_EXPIRY = re.compile(r"expires at\s*(\d{10,16})", re.IGNORECASE)

_RATE_TEXT = ("rate limit", "too many requests")
_SERVER_TEXT = (
    "maintenance",
    "temporarily unavailable",
    "try again later",
    "internal error",
    "could not be placed",
)
_AUTH_TEXT = (
    "api key not found",
    "invalid signature",
    "authentication failed",
    "missing key, signature and nonce",
    "wrong api key format",
    "invalid nonce",
    "content-type",
)
_PERMISSION_TEXT = (
    "no permission",
    "permission denied",
    "ip address not allowed",
    "access disabled",
    "account is frozen",
    "unavailable for your account",
    "fatca",
)


def flatten_reason(value: object) -> str:
    """A reason as one text: a string, a list, or {"field": [messages]} (incl. "__all__")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        pieces = []
        for key, item in value.items():
            text = flatten_reason(item)
            pieces.append(text if key == "__all__" else f"{key}: {text}")
        return "; ".join(piece for piece in pieces if piece)
    if isinstance(value, list | tuple):
        return "; ".join(flatten_reason(item) for item in value)
    return str(value)


def _until(epoch_seconds: float, now: float) -> float:
    return max(0.0, epoch_seconds - now) + EPOCH_MARGIN_SECONDS


def _http_date(value: str) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def retry_after_header(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the `retry-after` header (seconds or an HTTP date) asks for; lower-case keys."""
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = to_number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    when = _http_date(value)
    return None if when is None else _until(when, now)


def date_header(headers: Mapping[str, str]) -> float | None:
    """The HTTP `Date` header (the server's clock, whole seconds) as epoch seconds, or None;
    lower-case keys."""
    value = headers.get("date")
    return None if value is None else _http_date(value)


def rate_limit_wait(
    headers: Mapping[str, str],
    now: float,
    reason: str,
    *,
    allow_at: str | None = None,
    reset_at: str | None = None,
) -> float | None:
    """Seconds until a rate-limited key may send again, from the best hint available: a ban's
    expiry in the reason ("expires at <epoch ms>"), the `allow_at` header (epoch ms), the
    Retry-After header, then the `reset_at` header (epoch ms); lower-case keys."""
    match = _BAN_EXPIRY.search(reason)
    if match:
        return _until(int(match.group(1)) / 1000, now)
    allowed = to_number(headers.get(allow_at)) if allow_at else None
    if allowed is not None:
        return _until(allowed / 1000, now)
    retry_after = retry_after_header(headers, now)
    if retry_after is not None:
        return retry_after
    reset = to_number(headers.get(reset_at)) if reset_at else None
    if reset is not None:
        return _until(reset / 1000, now)
    return None


def class_for_status(status: int) -> type[ExchangeError] | None:
    """The error an HTTP status stands for on its own (None: 2xx)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return RateLimitedError
    if status in (408, 425) or status >= 500:
        return ServerError
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status in (404, 405, 410) or 300 <= status < 400:
        return NotFoundError
    if 400 <= status < 500:
        return InvalidRequestError
    return MalformedResponseError


def _class_for_body(status: int, data: object) -> type[ExchangeError] | None:
    """The error of a response whose body is no error document: by status, else a body that is
    not JSON is malformed; None for a success."""
    cls = class_for_status(status)
    if cls is None and data is NOT_JSON:
        return MalformedResponseError
    return cls


def class_for_text(reason: str) -> type[ExchangeError] | None:
    """The error a reason's wording stands for (rate limit, permission, auth, server), or None."""
    text = reason.lower()
    for needles, cls in (
        (_RATE_TEXT, RateLimitedError),
        (_PERMISSION_TEXT, PermissionDeniedError),
        (_AUTH_TEXT, AuthenticationError),
        (_SERVER_TEXT, ServerError),
    ):
        if any(needle in text for needle in needles):
            return cls
    return None


def class_or_invalid(*found: type[ExchangeError] | None) -> type[ExchangeError]:
    """The first class found, else `InvalidRequestError`: an error document nothing classified
    is a request the exchange refused."""
    return next((cls for cls in found if cls is not None), InvalidRequestError)


def _classified(
    cls: type[ExchangeError],
    exchange: str,
    endpoint: str,
    *,
    code: str | None,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    now: float,
    rate_wait: RateLimitWait = rate_limit_wait,
) -> ExchangeError:
    """The error of class `cls`, with the wait the response asks for (`rate_wait` when rate
    limited, else Retry-After) and, for clock skew, the server's time; lower-case headers."""
    retry_after: float | None = None
    server_time = date_header(headers) if issubclass(cls, ClockSkewError) else None
    if cls is RateLimitedError:
        retry_after = rate_wait(headers, now, reason)
    elif issubclass(cls, RetryableError):
        retry_after = retry_after_header(headers, now)
    return _make_error(
        cls,
        exchange,
        endpoint,
        code=code,
        status=status,
        reason=reason,
        retry_after=retry_after,
        server_time=server_time,
    )


@dataclass(frozen=True)
class ErrorRules:
    """A `Classifier` made of one exchange's rules; the rest is the same for every exchange.

    Called as ``classify(status, data, endpoint=…, headers=…, now=…)`` with `data` the parsed
    JSON body or `NOT_JSON`, it gives the error the response stands for, or None for a success.

    `read_error` reads the exchange's error document (`ErrorDocument`), or gives None when the
    body is none: then the status decides, a body that is not JSON is malformed, and
    `plain_reason` words the error from the body. `rate_wait` finds how long a rate-limited key
    waits. Every error is named `exchange`.
    """

    exchange: str
    read_error: Callable[[int, object], ErrorDocument | None]
    plain_reason: Callable[[object], str]
    rate_wait: RateLimitWait = rate_limit_wait

    def __call__(
        self,
        status: int,
        data: object,
        *,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> ExchangeError | None:
        hdrs = lower_headers(headers)
        now = time.time() if now is None else now
        document = self.read_error(status, data)
        if document is not None:
            cls, code, reason = document
            if cls is MalformedResponseError:
                cls = InvalidRequestError
        else:
            found = _class_for_body(status, data)
            if found is None:
                return None
            cls, code = found, None
            reason = "body is not valid JSON" if data is NOT_JSON else self.plain_reason(data)
        return _classified(
            cls,
            self.exchange,
            endpoint,
            code=code,
            status=status,
            reason=reason,
            headers=hdrs,
            now=now,
            rate_wait=self.rate_wait,
        )
