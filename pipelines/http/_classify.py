"""Error classification: one function per exchange, from status AND body."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from ._common import _lower_headers, _number
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


def _flatten_reason(value: object) -> str:
    """Bitstamp reasons are a string, a list, or {"field": [messages]} (incl. "__all__")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        pieces = []
        for key, item in value.items():
            text = _flatten_reason(item)
            pieces.append(text if key == "__all__" else f"{key}: {text}")
        return "; ".join(piece for piece in pieces if piece)
    if isinstance(value, list | tuple):
        return "; ".join(_flatten_reason(item) for item in value)
    return str(value)


def _until(epoch_seconds: float, now: float) -> float:
    return max(0.0, epoch_seconds - now) + EPOCH_MARGIN_SECONDS


def _retry_after_header(headers: Mapping[str, str], now: float) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _until(when.timestamp(), now)


def _date_header(headers: Mapping[str, str]) -> float | None:
    """The HTTP `Date` header (the server's clock, whole seconds) as epoch seconds, or None."""
    value = headers.get("date")
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _rate_limit_wait(
    headers: Mapping[str, str], now: float, reason: str, *, use_reset: bool
) -> float | None:
    """Seconds until a rate-limited key may send again, from the best hint available."""
    match = _BAN_EXPIRY.search(reason)
    if match:
        return _until(int(match.group(1)) / 1000, now)
    allow_at = _number(headers.get("bitvavo-ratelimit-allowat"))
    if allow_at is not None:
        return _until(allow_at / 1000, now)
    retry_after = _retry_after_header(headers, now)
    if retry_after is not None:
        return retry_after
    reset_at = _number(headers.get("bitvavo-ratelimit-resetat"))
    if use_reset and reset_at is not None:
        return _until(reset_at / 1000, now)
    return None


def _by_status(status: int) -> type[ExchangeError] | None:
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


def _finish(
    cls: type[ExchangeError],
    exchange: str,
    endpoint: str,
    *,
    code: str | None,
    status: int,
    reason: str,
    headers: dict[str, str],
    now: float,
) -> ExchangeError:
    retry_after: float | None = None
    server_time = _date_header(headers) if issubclass(cls, ClockSkewError) else None
    if cls is RateLimitedError:
        retry_after = _rate_limit_wait(headers, now, reason, use_reset=exchange == "bitvavo")
    elif issubclass(cls, RetryableError):
        retry_after = _retry_after_header(headers, now)
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


def _text_class(reason: str) -> type[ExchangeError] | None:
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


def _bitstamp_code_class(code: str) -> type[ExchangeError] | None:
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
    """The error a Bitstamp response stands for, or None when it is a success.

    `data` is the parsed JSON body or `NOT_JSON`. Bitstamp errors arrive with HTTP 200 too, as
    `{"status":"error","reason":…,"code"|"response_code":…}` or `{"error":…}`.
    """
    hdrs = _lower_headers(headers)
    now = time.time() if now is None else now
    if isinstance(data, Mapping) and (data.get("status") == "error" or data.get("error")):
        raw_code = data.get("code") or data.get("response_code")
        code = str(raw_code) if raw_code not in (None, "") else None
        reason = _flatten_reason(data.get("reason")) or _flatten_reason(data.get("error"))
        cls = _bitstamp_code_class(code) if code else None
        if cls is None and (status == 429 or status >= 500):
            cls = _by_status(status)
        cls = cls or _text_class(reason) or _by_status(status) or InvalidRequestError
        if cls is MalformedResponseError:
            cls = InvalidRequestError
        return _finish(
            cls,
            "bitstamp",
            endpoint,
            code=code,
            status=status,
            reason=reason,
            headers=hdrs,
            now=now,
        )
    cls = _by_status(status)
    if cls is None and data is NOT_JSON:
        cls = MalformedResponseError
    if cls is None:
        return None
    reason = "body is not valid JSON" if data is NOT_JSON else _flatten_reason(data)
    return _finish(
        cls, "bitstamp", endpoint, code=None, status=status, reason=reason, headers=hdrs, now=now
    )


_BITVAVO_RATE = frozenset({103, 104, 105, 110, 112})
_BITVAVO_SERVER = frozenset({101, 107, 108, 109, 400, 404})
_BITVAVO_PERMISSION = frozenset({307, 310, 311, 312, 317, 402, 403})


def _bitvavo_code_class(code: int, status: int, reason: str) -> type[ExchangeError] | None:
    if code == 110 and (status == 404 or "invalid endpoint" in reason.lower()):
        return NotFoundError  # 110 means "invalid endpoint" on the errors page, a limit elsewhere
    if code in _BITVAVO_RATE:
        return RateLimitedError
    if code in _BITVAVO_SERVER:
        return ServerError
    if code == 304:
        return ClockSkewError
    if code in _BITVAVO_PERMISSION:
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
    """The error a Bitvavo response stands for, or None when it is a success.

    `data` is the parsed JSON body or `NOT_JSON`. Errors are `{"errorCode": int, "error": str}`.
    """
    hdrs = _lower_headers(headers)
    now = time.time() if now is None else now
    if isinstance(data, Mapping) and "errorCode" in data:
        reason = _flatten_reason(data.get("error"))
        number = _number(data.get("errorCode"))
        code_int = int(number) if number is not None else None
        code = str(code_int) if code_int is not None else str(data.get("errorCode"))
        cls = _bitvavo_code_class(code_int, status, reason) if code_int is not None else None
        cls = cls or _by_status(status) or _text_class(reason) or InvalidRequestError
        if cls is MalformedResponseError:
            cls = InvalidRequestError
        return _finish(
            cls, "bitvavo", endpoint, code=code, status=status, reason=reason, headers=hdrs, now=now
        )
    cls = _by_status(status)
    if cls is None and data is NOT_JSON:
        cls = MalformedResponseError
    if cls is None:
        return None
    if data is NOT_JSON:
        reason = "body is not valid JSON"
    elif isinstance(data, Mapping) and "error" in data:
        reason = _flatten_reason(data.get("error"))
    else:
        reason = ""
    return _finish(
        cls, "bitvavo", endpoint, code=None, status=status, reason=reason, headers=hdrs, now=now
    )


_CLASSIFIERS: Final[dict[str, Callable[..., ExchangeError | None]]] = {
    "bitstamp": classify_bitstamp,
    "bitvavo": classify_bitvavo,
}
