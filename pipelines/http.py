"""HTTP for the exchange clients: one session, error classification, retries, rate limiting.

`HttpClient.request` builds the URL itself, asks the signer for auth headers on every attempt
(with the exact method, host, path, query, content type and body that are then sent), paces
through a `Limiter`, classifies every failure from status AND body, and retries only what is
worth retrying (tenacity: exponential back-off with jitter, honouring Retry-After, Bitvavo's
reset time and ban expiry, bounded in attempts and time).

Exceptions::

    ExchangeError                     .exchange .endpoint .code .status
    ├── RetryableError                .retry_after (seconds, > 0, or None)
    │   ├── RateLimitedError          HTTP 429, Bitstamp 400.002, Bitvavo 103/104/105/110/112
    │   ├── ServerError               HTTP 5xx, Bitvavo 101/107-109/400/404, Bitstamp maintenance
    │   ├── TransportError            connection refused/reset, timeout
    │   └── MalformedResponseError    truncated or non-JSON body
    └── FatalError
        ├── AuthenticationError       Bitstamp API0xxx, Bitvavo 300-309
        │   └── ClockSkewError        Bitvavo 304 (outside the access window)
        ├── PermissionDeniedError     Bitstamp API0003 / "no permission", Bitvavo 307/310-312/317
        ├── InvalidRequestError       validation: other 4xx, Bitstamp 400.xxx, Bitvavo 102/2xx
        └── NotFoundError             unknown endpoint (HTTP 404, redirects)

Messages name the exchange, the endpoint and the exchange's error code. Nothing here ever logs
or raises a header value or anything a signer returned.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import quote, urlencode, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

__all__ = [
    "DEFAULT_RETRY",
    "NOT_JSON",
    "USER_AGENT",
    "AuthenticationError",
    "ClockSkewError",
    "EndpointStats",
    "ExchangeError",
    "FatalError",
    "HttpClient",
    "HttpStats",
    "InvalidRequestError",
    "Limiter",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Reply",
    "RequestBudget",
    "RetryPolicy",
    "RetryableError",
    "ServerError",
    "SignInput",
    "Signer",
    "TransportError",
    "WeightBudget",
    "classify_bitstamp",
    "classify_bitvavo",
    "shared_limiter",
]

logger = logging.getLogger(__name__)

USER_AGENT: Final = "tally/0.1 (+read-only account history)"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# Added to waits computed from an absolute time the exchange gave (ban expiry, reset, allow-at),
# so that the next request does not arrive a hair early.
EPOCH_MARGIN_SECONDS: Final = 0.25
_MAX_REASON_CHARS: Final = 300

Clock = Callable[[], float]
Sleep = Callable[[float], None]


# --------------------------------------------------------------------------------------------
# Exceptions


class ExchangeError(Exception):
    """A request to an exchange failed."""

    summary = "request failed"

    def __init__(
        self,
        message: str,
        *,
        exchange: str,
        endpoint: str,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.endpoint = endpoint
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments defeat the default pickling (Prefect pickles results).
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))

    def _redact(self, values: Iterable[str]) -> None:
        message = str(self)
        for value in values:
            if value:
                message = message.replace(value, "[redacted]")
        self.args = (message,)


def _rebuild_error(
    cls: type[ExchangeError], args: tuple[Any, ...], state: dict[str, Any]
) -> ExchangeError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RetryableError(ExchangeError):
    """Worth trying again later; `retry_after` is the wait the exchange asked for, if any."""

    summary = "temporary failure"

    def __init__(
        self,
        message: str,
        *,
        exchange: str,
        endpoint: str,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, exchange=exchange, endpoint=endpoint, code=code, status=status)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    summary = "rate limited"


class ServerError(RetryableError):
    summary = "server error"


class TransportError(RetryableError):
    summary = "transport failure"


class MalformedResponseError(RetryableError):
    summary = "malformed response"


class FatalError(ExchangeError):
    """Retrying cannot help: fix the key, the permissions or the request."""

    summary = "request rejected"


class AuthenticationError(FatalError):
    summary = "authentication failed"


class ClockSkewError(AuthenticationError):
    summary = "request outside the access window (clock skew)"


class PermissionDeniedError(FatalError):
    summary = "permission denied"


class InvalidRequestError(FatalError):
    summary = "invalid request"


class NotFoundError(FatalError):
    summary = "unknown endpoint"


def _make_error(
    cls: type[ExchangeError],
    exchange: str,
    endpoint: str,
    *,
    code: str | None = None,
    status: int | None = None,
    reason: str = "",
    retry_after: float | None = None,
) -> ExchangeError:
    parts = [f"code {code}"] if code else []
    if status is not None:
        parts.append(f"HTTP {status}")
    message = f"{exchange} {endpoint}: {cls.summary}"
    if parts:
        message += f" ({', '.join(parts)})"
    if reason:
        reason = " ".join(reason.split())
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[: _MAX_REASON_CHARS - 1] + "…"
        message += f": {reason}"
    if issubclass(cls, RetryableError):
        return cls(
            message,
            exchange=exchange,
            endpoint=endpoint,
            code=code,
            status=status,
            retry_after=retry_after,
        )
    return cls(message, exchange=exchange, endpoint=endpoint, code=code, status=status)


# --------------------------------------------------------------------------------------------
# Classification: one function per exchange, from status AND body


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


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


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


# --------------------------------------------------------------------------------------------
# Rate limiters


@runtime_checkable
class Limiter(Protocol):
    """Paces requests of one exchange key; shared by every thread using that key."""

    def acquire(self, weight: int = 1) -> None:
        """Block until a request of `weight` may be sent."""
        ...

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        """After each attempt (empty headers when no response came back)."""
        ...

    def block_until(self, epoch_seconds: float) -> None:
        """Ban / Retry-After: nobody sends before this time."""
        ...


class RequestBudget(Limiter):
    """Bitstamp: at most N requests per sliding window and M per second, thread-safe.

    Bitstamp sends no rate-limit headers; ccxt paces at 8,000 per 10 minutes (the documented
    limit is 10,000) and the per-second limit is 400.
    """

    def __init__(
        self,
        requests_per_window: int = 8000,
        window_seconds: float = 600.0,
        max_requests_per_second: float = 400.0,
        *,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        if requests_per_window < 1 or window_seconds <= 0 or max_requests_per_second <= 0:
            raise ValueError("RequestBudget needs positive limits")
        self._window = (int(requests_per_window), float(window_seconds))
        second_window = max(1.0, 1.0 / max_requests_per_second)
        self._second = (max(1, int(max_requests_per_second * second_window)), second_window)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[tuple[float, int]] = deque()
        self._sent_second: deque[tuple[float, int]] = deque()
        self._used = [0, 0]
        self._blocked_until = 0.0

    @staticmethod
    def _wait_for(
        sent: deque[tuple[float, int]], used: int, limit: tuple[int, float], weight: int, now: float
    ) -> float:
        capacity, span = limit
        excess = used + weight - capacity
        if excess <= 0:
            return 0.0
        freed = 0
        for sent_at, units in sent:
            freed += units
            if freed >= excess:
                return sent_at + span - now
        return span  # unreachable while weight <= capacity

    def _purge(self, now: float) -> None:
        for index, (sent, limit) in enumerate(
            ((self._sent, self._window), (self._sent_second, self._second))
        ):
            while sent and sent[0][0] + limit[1] <= now:
                self._used[index] -= sent.popleft()[1]

    def acquire(self, weight: int = 1) -> None:
        if weight < 1 or weight > min(self._window[0], self._second[0]):
            raise ValueError(f"request weight {weight} does not fit the budget")
        while True:
            with self._lock:
                now = self._clock()
                self._purge(now)
                wait = max(
                    self._blocked_until - now,
                    self._wait_for(self._sent, self._used[0], self._window, weight, now),
                    self._wait_for(self._sent_second, self._used[1], self._second, weight, now),
                )
                if wait <= 0:
                    self._sent.append((now, weight))
                    self._sent_second.append((now, weight))
                    self._used[0] += weight
                    self._used[1] += weight
                    return
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        return None

    def block_until(self, epoch_seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, epoch_seconds)


class WeightBudget(Limiter):
    """Bitvavo: paces from the `bitvavo-ratelimit-*` headers and each request's weight.

    Keeps `reserve` weight unused, counts weight in flight until its response is observed,
    spreads what is left over the time to the reset once less than `pace_below` of the limit
    is available, and never sends a request the known remaining budget would not cover: it
    waits for the reset (+ `margin_seconds`, + any clock skew it has learnt) instead. After a
    reset it has only assumed, and at start, one request goes alone until a response confirms
    the budget. Before any header it assumes the documented 1000 per minute.
    """

    def __init__(
        self,
        *,
        limit: int = 1000,
        window_seconds: float = 60.0,
        reserve: int = 25,
        margin_seconds: float = 0.25,
        pace_below: float = 0.5,
        poll_seconds: float = 0.05,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        if limit < 1 or window_seconds <= 0 or reserve < 0 or margin_seconds < 0:
            raise ValueError("WeightBudget needs a positive limit and window")
        self._limit = int(limit)
        self._window = float(window_seconds)
        self._reserve = int(reserve)
        self._margin = float(margin_seconds)
        self._pace_below = float(pace_below)
        self._poll = float(poll_seconds)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._remaining = self._limit
        self._reset_at: float | None = None  # local estimate of the window's end
        self._observed_reset: float | None = None  # the last reset time a header gave
        self._in_flight = 0
        self._probing = True  # one request alone until a response confirms the budget
        self._skew = 0.0  # learnt: how far our clock runs ahead of the exchange's
        self._last_send: float | None = None
        self._blocked_until = 0.0

    @property
    def remaining(self) -> int:
        """Budget believed left in the current window (before in-flight weight)."""
        with self._lock:
            return self._remaining

    def _deadline(self) -> float:
        assert self._reset_at is not None
        return self._reset_at + self._margin + self._skew

    def _roll(self, now: float) -> None:
        if self._reset_at is None:
            self._reset_at = now + self._window
        elif now >= self._deadline():
            self._remaining = self._limit
            following = self._reset_at + self._window
            self._reset_at = following if following > now else now + self._window
            self._probing = True

    def _wait(self, now: float, weight: int) -> float:
        if now < self._blocked_until:
            return self._blocked_until - now
        self._roll(now)
        if self._probing and self._in_flight > 0:
            return self._poll
        reserve = min(self._reserve, max(0, self._limit - weight))
        available = self._remaining - self._in_flight - reserve
        to_reset = self._deadline() - now
        if available < weight:
            return max(to_reset, self._poll)
        if available < self._pace_below * self._limit and self._last_send is not None:
            # Spread what is left over the time to the reset rather than burst to zero: n more
            # requests of this weight get n + 1 equal gaps, so the last one is not at the reset.
            next_at = self._last_send + weight * to_reset / (available + weight)
            if now < next_at:
                return next_at - now
        return 0.0

    def acquire(self, weight: int = 1) -> None:
        if weight < 1 or weight > self._limit:
            raise ValueError(f"request weight {weight} does not fit the budget")
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait(now, weight)
                if wait <= 0:
                    self._in_flight += weight
                    self._last_send = now
                    return
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        lower = _lower_headers(headers)
        remaining = _number(lower.get("bitvavo-ratelimit-remaining"))
        reset_ms = _number(lower.get("bitvavo-ratelimit-resetat"))
        limit = _number(lower.get("bitvavo-ratelimit-limit"))
        with self._lock:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - weight)
            if limit is not None and limit >= 1:
                self._limit = int(limit)
            if remaining is None or reset_ms is None:
                # No news (transport error, a proxy's page): assume the request was counted.
                self._remaining -= weight
                return
            reset = reset_ms / 1000
            known = self._observed_reset
            if known is None or reset > known + 0.0005:
                self._remaining = int(remaining)  # a newer window
            elif reset >= known - 0.0005:
                same = self._remaining if not self._probing else int(remaining)
                self._remaining = min(same, int(remaining))
            else:
                return  # a late reply from an older window
            if reset <= now:
                # The exchange still counts in a window our clock says is over: we run ahead.
                learnt = 2 * (now - reset) + self._margin
                self._skew = min(max(self._skew, learnt), self._window)
            self._observed_reset = reset
            self._reset_at = reset
            self._probing = False

    def block_until(self, epoch_seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, epoch_seconds)
            self._probing = True


_SHARED_LIMITERS: dict[tuple[str, str], Limiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(exchange: str, key_id: str, factory: Callable[[], Limiter]) -> Limiter:
    """The one limiter for (exchange, key) in this process, made by `factory` on first use."""
    with _SHARED_LOCK:
        limiter = _SHARED_LIMITERS.get((exchange, key_id))
        if limiter is None:
            limiter = factory()
            _SHARED_LIMITERS[(exchange, key_id)] = limiter
        return limiter


# --------------------------------------------------------------------------------------------
# Requests, replies, statistics


@dataclass(frozen=True)
class SignInput:
    """What a signer signs; handed over on every attempt, exactly as it is then sent."""

    method: str
    host: str
    path: str
    query: str  # "" or "?a=1&b=2"
    content_type: str  # "" when the body is empty
    body: str


Signer = Callable[[SignInput], Mapping[str, str]]


@dataclass(frozen=True)
class Reply:
    """A successful response: parsed JSON (floats as Decimal) and the body exactly as received."""

    data: Any = field(repr=False)
    text: str = field(repr=False)
    status: int
    headers: Mapping[str, str] = field(repr=False)
    url: str
    fetched_at: datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying: attempts, total seconds, and the back-off curve.

    `max_total_seconds` bounds attempts plus back-off sleeps, not time queued in the limiter.
    """

    max_attempts: int = 8
    max_total_seconds: float = 300.0
    base_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    min_seconds: float = 0.1


DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True)
class EndpointStats:
    requests: int = 0
    retries: int = 0
    weight: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)


class HttpStats:
    """Thread-safe counters for run summaries: requests sent, retries, weight, errors by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, Any]] = {}

    def _entry(self, endpoint: str) -> dict[str, Any]:
        entry = self._counts.get(endpoint)
        if entry is None:
            entry = {"requests": 0, "retries": 0, "weight": 0, "errors": {}}
            self._counts[endpoint] = entry
        return entry

    def record_request(self, endpoint: str, weight: int) -> None:
        with self._lock:
            entry = self._entry(endpoint)
            entry["requests"] += 1
            entry["weight"] += weight

    def record_retry(self, endpoint: str) -> None:
        with self._lock:
            self._entry(endpoint)["retries"] += 1

    def record_error(self, endpoint: str, error: ExchangeError) -> None:
        with self._lock:
            errors = self._entry(endpoint)["errors"]
            kind = type(error).__name__
            errors[kind] = errors.get(kind, 0) + 1

    def by_endpoint(self) -> dict[str, EndpointStats]:
        with self._lock:
            return {
                name: EndpointStats(
                    requests=entry["requests"],
                    retries=entry["retries"],
                    weight=entry["weight"],
                    errors=dict(entry["errors"]),
                )
                for name, entry in self._counts.items()
            }

    def _total(self, key: str) -> int:
        with self._lock:
            return sum(entry[key] for entry in self._counts.values())

    @property
    def requests(self) -> int:
        return self._total("requests")

    @property
    def retries(self) -> int:
        return self._total("retries")

    @property
    def weight(self) -> int:
        return self._total("weight")

    @property
    def errors(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.by_endpoint().values():
            for kind, count in entry.errors.items():
                totals[kind] = totals.get(kind, 0) + count
        return totals

    def as_dict(self) -> dict[str, Any]:
        endpoints = self.by_endpoint()
        return {
            "requests": sum(e.requests for e in endpoints.values()),
            "retries": sum(e.retries for e in endpoints.values()),
            "weight": sum(e.weight for e in endpoints.values()),
            "errors": self.errors,
            "endpoints": {
                name: {
                    "requests": e.requests,
                    "retries": e.retries,
                    "weight": e.weight,
                    "errors": dict(e.errors),
                }
                for name, e in endpoints.items()
            },
        }

    def __repr__(self) -> str:
        return f"HttpStats(requests={self.requests}, retries={self.retries}, weight={self.weight})"


def _encode_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("pass Decimal or int, not float, as a request parameter")
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"cannot encode a {type(value).__name__} as a request parameter")


def _encode(params: Mapping[str, object] | None) -> str:
    if not params:
        return ""
    pairs = [(str(k), _encode_value(v)) for k, v in params.items() if v is not None]
    return urlencode(pairs)


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-finite number {name} in JSON")


def _parse_json(text: str) -> object:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError:
        return NOT_JSON


def _secret_values(auth: Mapping[str, str]) -> list[str]:
    """Header values (and their long words, e.g. the key in "BITSTAMP <key>") to scrub."""
    values: set[str] = set()
    for value in auth.values():
        text = str(value)
        values.update(piece for piece in (text, *text.split()) if len(piece) >= 6)
    return sorted(values, key=len, reverse=True)


@dataclass(frozen=True)
class _Call:
    method: str
    endpoint: str
    path: str
    query: str
    body: str
    content_type: str
    weight: int
    signer: Signer | None


class HttpClient:
    """Sends one exchange's requests: signed per attempt, paced, classified, retried.

    `exchange` is "bitstamp" or "bitvavo" (it picks the error classifier). `path` given to
    `request` is appended to base_url's path. `clock` (epoch seconds) and `sleep` are the seams
    tests use to observe waits without waiting.
    """

    def __init__(
        self,
        exchange: str,
        base_url: str,
        *,
        limiter: Limiter,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if exchange not in _CLASSIFIERS:
            raise ValueError(f"unknown exchange {exchange!r}")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.exchange = exchange
        self._classify = _CLASSIFIERS[exchange]
        self._scheme = parts.scheme
        default_port = 443 if parts.scheme == "https" else 80
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        self._host = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self._base_path = parts.path.rstrip("/")
        self.base_url = f"{self._scheme}://{self._host}{self._base_path}"
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self._user_agent = user_agent
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=16)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self.stats = HttpStats()

    def __repr__(self) -> str:
        return f"HttpClient({self.exchange!r}, {self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, object] | None = None,
        form: Mapping[str, object] | None = None,
        weight: int = 1,
        signer: Signer | None = None,
    ) -> Reply:
        """Send until success, a fatal error, or the retry policy runs out; return the reply."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        query = _encode(params)
        body = _encode(form)
        call = _Call(
            method=method.upper(),
            endpoint=endpoint,
            path=quote(self._base_path + path, safe="/:@-._~!$&'()*+,;="),
            query=f"?{query}" if query else "",
            body=body,
            content_type=FORM_CONTENT_TYPE if body else "",
            weight=weight,
            signer=signer,
        )
        started = self._clock()
        queued = [0.0]  # seconds spent waiting in the limiter (not charged to the policy)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.retry.max_attempts:
                return True
            spent = self._clock() - started - queued[0]
            return spent + state.upcoming_sleep > self.retry.max_total_seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.stats.record_retry(endpoint)
            if isinstance(error, RateLimitedError):
                self.limiter.block_until(self._clock() + state.upcoming_sleep)
            logger.info(
                "%s %s: %s; retry %d/%d in %.2fs",
                self.exchange,
                endpoint,
                type(error).__name__,
                state.attempt_number + 1,
                self.retry.max_attempts,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            wait=self._backoff,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        reply: Reply | None = None
        for attempt in retrying:
            with attempt:
                reply = self._attempt(call, attempt.retry_state.attempt_number, queued)
        assert reply is not None
        return reply

    def _backoff(self, state: tenacity.RetryCallState) -> float:
        policy = self.retry
        error = state.outcome.exception() if state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return max(policy.min_seconds, float(hinted))
        ceiling = min(
            policy.max_backoff_seconds, policy.base_seconds * 2 ** (state.attempt_number - 1)
        )
        # "Equal jitter": half the step for sure, the other half random; never 0.
        return max(policy.min_seconds, ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _attempt(self, call: _Call, attempt: int, queued: list[float]) -> Reply:
        before = self._clock()
        self.limiter.acquire(call.weight)
        queued[0] += self._clock() - before
        response_headers: Mapping[str, str] = {}
        redact: list[str] = []
        try:
            headers = {
                "Host": self._host,
                "User-Agent": self._user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            }
            if call.content_type:
                headers["Content-Type"] = call.content_type
            if call.signer is not None:
                auth = call.signer(
                    SignInput(
                        method=call.method,
                        host=self._host,
                        path=call.path,
                        query=call.query,
                        content_type=call.content_type,
                        body=call.body,
                    )
                )
                redact = _secret_values(auth)
                headers.update(auth)
            url = f"{self._scheme}://{self._host}{call.path}{call.query}"
            prepared = requests.Request(
                call.method, url, headers=headers, data=call.body.encode() or None
            ).prepare()
            prepared.url = url  # exactly what was signed: no re-quoting
            self.stats.record_request(call.endpoint, call.weight)
            shown = call.path if call.signer else call.path + call.query
            logger.debug(
                "%s %s %s (%s) attempt %d",
                self.exchange,
                call.method,
                shown,
                call.endpoint,
                attempt,
            )
            sent_at = self._clock()
            failure: ExchangeError | None = None
            try:
                response = self._session.send(prepared, timeout=self.timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                failure = self._transport_error(call.endpoint, exc)
                if failure is None:
                    raise
            else:
                response_headers = response.headers
        finally:
            self.limiter.observe(response_headers, call.weight)
        if failure is not None:
            # Raised here, not inside `except`: the requests exception holds the signed
            # request's headers and must not stay reachable as __context__.
            self._fail(call.endpoint, failure, redact)
            raise failure

        now = self._clock()
        logger.debug(
            "%s %s %s -> %d in %.3fs",
            self.exchange,
            call.method,
            call.endpoint,
            response.status_code,
            now - sent_at,
        )
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            text = response.content.decode("utf-8", errors="replace")
            data: object = NOT_JSON
        else:
            data = _parse_json(text)
        error = self._classify(
            response.status_code, data, endpoint=call.endpoint, headers=response.headers, now=now
        )
        if error is not None:
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                self.limiter.block_until(now + error.retry_after)
            self._fail(call.endpoint, error, redact)
            raise error
        return Reply(
            data=data,
            text=text,
            status=response.status_code,
            headers=CaseInsensitiveDict(response.headers),
            url=url,
            fetched_at=datetime.fromtimestamp(now, UTC),
        )

    def _transport_error(
        self, endpoint: str, exc: requests.exceptions.RequestException
    ) -> ExchangeError | None:
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            cls: type[ExchangeError] = MalformedResponseError
            reason = "body truncated or undecodable"
        elif isinstance(exc, requests.Timeout):
            cls, reason = TransportError, "timed out"
        elif isinstance(exc, requests.ConnectionError):
            cls, reason = TransportError, "connection failed"
        else:
            return None
        return _make_error(cls, self.exchange, endpoint, reason=f"{reason} ({type(exc).__name__})")

    def _fail(self, endpoint: str, error: ExchangeError, redact: list[str]) -> None:
        error._redact(redact)
        self.stats.record_error(endpoint, error)
        level = logging.DEBUG if isinstance(error, RetryableError) else logging.INFO
        logger.log(level, "%s", error)
