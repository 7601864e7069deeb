"""The exception hierarchy (drawn as a tree in the `pipelines.http` package docstring).

Messages are built by `_make_error`: exchange, endpoint, the exchange's error code, the HTTP
status and a shortened reason; never a header value or anything a signer returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

_MAX_REASON_CHARS: Final = 300


class ExchangeError(Exception):
    """A request to an exchange failed; `url` is the request's URL (None until it was sent)."""

    summary = "request failed"
    url: str | None = None

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
    retry_after: float | None = None


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
    """`server_time` is the exchange's clock (epoch seconds) from the response's HTTP `Date`
    header, to measure our clock's offset by; None when the response had none."""

    summary = "request outside the access window (clock skew)"
    server_time: float | None = None


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
    server_time: float | None = None,
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
    error = cls(message, exchange=exchange, endpoint=endpoint, code=code, status=status)
    if isinstance(error, RetryableError):
        error.retry_after = retry_after
    if isinstance(error, ClockSkewError):
        error.server_time = server_time
    return error
