"""The in-process progress channel and the helpers the HTTP layer and the streams call.

`CHANNEL` is the one process-wide `Channel`; `tally sync` subscribes a renderer to it while the
flow runs (Prefect runs tasks in threads of the same process). Publishing is synchronous, in
the publishing thread: a listener must be quick and thread-safe, and an exception it raises is
swallowed (progress must never break a sync). Every helper returns at once, building nothing,
when nobody listens.

Context: a stream calls `stream_started` in the thread (and context) that runs it, and the HTTP
client wraps each request in `request(...)`; both are context variables, so that events
published deeper down (a limiter's wait, a retry) carry the stream and the URL without being
told. Prefect gives every task run its own copy of the context.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import NamedTuple

from pipelines.progress import events

Listener = Callable[[events.Event], None]


class Channel:
    """A thread-safe publisher of progress events to any number of listeners."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add `listener`; returns the function that removes it again."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def publish(self, event: events.Event) -> None:
        for listener in self._listeners:  # a tuple: safe against concurrent (un)subscribes
            with suppress(Exception):  # a renderer's bug must not fail a sync
                listener(event)


CHANNEL = Channel()


class _Request(NamedTuple):
    """The request this thread is sending: the fields every `RequestEvent` begins with."""

    exchange: str
    endpoint: str
    method: str
    url: str


_STREAM: ContextVar[tuple[str, str] | None] = ContextVar("tally_progress_stream", default=None)
_REQUEST: ContextVar[_Request | None] = ContextVar("tally_progress_request", default=None)


def listening() -> bool:
    """Whether anyone listens: callers may skip building what they would publish."""
    return CHANNEL.listening


def current_stream() -> str | None:
    current = _STREAM.get()
    return current[0] if current else None


def _publish(make: Callable[[float, str | None], events.Event]) -> None:
    if CHANNEL.listening:
        CHANNEL.publish(make(CHANNEL.clock(), current_stream()))


# --- streams -----------------------------------------------------------------------------------


def stream_started(stream: str, exchange: str) -> None:
    """This thread now works on `stream` (until it finishes, fails or another one starts)."""
    _STREAM.set((stream, exchange))
    _publish(lambda at, _: events.StreamStarted(at, stream, exchange))


def landed(dataset: str, rows: int, *, done: float | None = None) -> None:
    """The current stream landed `rows` new or changed rows of `dataset`; `done` in 0..1."""
    _publish(lambda at, stream: events.PageLanded(at, stream, dataset, rows, done))


def stream_finished(
    stream: str,
    exchange: str,
    *,
    rows: Mapping[str, int],
    windows: int,
    requests: int,
    weight: int,
    retries: int,
    gaps: int,
) -> None:
    _publish(
        lambda at, _: events.StreamFinished(
            at, stream, exchange, dict(rows), windows, requests, weight, retries, gaps
        )
    )
    if current_stream() == stream:
        _STREAM.set(None)


def stream_failed(
    error: BaseException, *, stream: str | None = None, retry_in: float | None = None
) -> None:
    """The current stream (else `stream`) failed with `error`; Prefect retries in `retry_in` s.

    The URL is the exception's `url` (the HTTP layer sets it on an `ExchangeError`)."""
    name = current_stream() or stream
    url = getattr(error, "url", None)
    _publish(
        lambda at, _: events.StreamFailed(at, name, type(error).__name__, str(error), url, retry_in)
    )
    _STREAM.set(None)


def tasks_planned(label: str, total: int) -> None:
    _publish(lambda at, stream: events.TasksPlanned(at, stream, label, total))


def task_done(label: str) -> None:
    _publish(lambda at, stream: events.TaskDone(at, stream, label))


# --- requests, retries, waits, budgets -----------------------------------------------------------


@contextmanager
def request(exchange: str, endpoint: str, method: str, url: str) -> Iterator[None]:
    """Within: events of this thread concern this request (a wait, a retry, a budget)."""
    if not CHANNEL.listening:
        yield
        return
    token = _REQUEST.set(_Request(exchange, endpoint, method, url))
    try:
        yield
    finally:
        _REQUEST.reset(token)


def request_sent(weight: int, attempt: int) -> None:
    current = _REQUEST.get()
    if current is None:
        return
    _publish(lambda at, stream: events.RequestSent(at, stream, *current, weight, attempt))


def retrying(attempt: int, max_attempts: int, error: BaseException, wait: float) -> None:
    """The current request is tried again (attempt `attempt`) after `error`, in `wait` s."""
    current = _REQUEST.get()
    if current is None:
        return
    _publish(
        lambda at, stream: events.Retrying(
            at, stream, *current, attempt, max_attempts, type(error).__name__, str(error), wait
        )
    )


def waiting(kind: str, reason: str, seconds: float) -> None:
    """This thread sleeps `seconds` for `kind` (see `events.WAIT_KINDS`) because of `reason`."""
    current = _REQUEST.get()
    _publish(
        lambda at, stream: events.Waiting(
            at,
            stream,
            kind,
            reason,
            seconds,
            current.exchange if current else None,
            current.url if current else None,
        )
    )


def headroom(
    unit: str,
    remaining: int,
    limit: int,
    *,
    reset_at: float | None = None,
    window_seconds: float | None = None,
) -> None:
    """The budget of the current request's exchange key after it (see `events.Headroom`)."""
    current = _REQUEST.get()
    if current is None:
        return
    _publish(
        lambda at, stream: events.Headroom(
            at, stream, current.exchange, unit, remaining, limit, reset_at, window_seconds
        )
    )
