"""What the progress channel carries: small frozen records, one class per kind of event.

Every event has `at` (epoch seconds, from the channel's clock) and `stream` (the stream the
publishing thread was working on, or None: e.g. the market check before any stream starts).
Events carry URLs (scheme, host, path and query: the exchanges sign in headers, never in the
URL), error messages the HTTP layer has already redacted, names and numbers; never a header
value, a key or a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

PACING: Final = "pacing"
"""Waiting because the client paces itself under the exchange's budget (a window used up)."""
BAN: Final = "ban"
"""Waiting because the exchange refused: a 429, a ban, a Retry-After; nobody sends until then."""
BACKOFF: Final = "backoff"
"""Waiting before the HTTP layer retries a failed request."""
TASK_RETRY: Final = "task_retry"
"""Waiting before Prefect runs a failed task again."""
WAIT_KINDS: Final = (PACING, BAN, BACKOFF, TASK_RETRY)


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    stream: str | None


@dataclass(frozen=True, slots=True)
class StreamStarted(Event):
    exchange: str


@dataclass(frozen=True, slots=True)
class PageLanded(Event):
    """Rows new or changed in one dataset; `done` is the share of the stream's span now
    covered (0..1) when the stream knows it (time-windowed streams), else None."""

    dataset: str
    rows: int
    done: float | None = None


@dataclass(frozen=True, slots=True)
class StreamFinished(Event):
    exchange: str
    rows: Mapping[str, int] = field(default_factory=dict)
    windows: int = 0
    requests: int = 0
    weight: int = 0
    retries: int = 0
    gaps: int = 0


@dataclass(frozen=True, slots=True)
class StreamFailed(Event):
    """A stream (or the task running it) raised `error` (its class name and message); `url`
    is the request it failed on when known; `retry_in` the seconds until Prefect runs the
    task again (None: it will not)."""

    error: str
    message: str
    url: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class RequestEvent(Event):
    """What the events about one HTTP request (`RequestSent`, `Retrying`) begin with."""

    exchange: str
    endpoint: str
    method: str
    url: str


@dataclass(frozen=True, slots=True)
class RequestSent(RequestEvent):
    weight: int
    attempt: int


@dataclass(frozen=True, slots=True)
class Retrying(RequestEvent):
    """The HTTP layer retries `url` after `error` (class name) with `message`, as attempt
    `attempt` of `max_attempts`, in `wait` seconds."""

    attempt: int
    max_attempts: int
    error: str
    message: str
    wait: float


@dataclass(frozen=True, slots=True)
class Waiting(Event):
    """A limiter sleeps `seconds` (until `at + seconds`) for `kind` (`PACING` or `BAN`) and
    `reason` (what it waits for); `url` is the request that waits, when there is one.

    The other waits are told by their own events: a retry's back-off by `Retrying.wait`, a
    Prefect task retry by `StreamFailed.retry_in` (`Board` shows all of them as `Waiting`).
    """

    kind: str
    reason: str
    seconds: float
    exchange: str | None = None
    url: str | None = None

    @property
    def until(self) -> float:
        return self.at + self.seconds


@dataclass(frozen=True, slots=True)
class Headroom(Event):
    """What is left of an exchange key's rate budget: `remaining` of `limit` `unit`s
    ("weight" for Bitvavo, from its headers; "requests" for Bitstamp, from the shared budget),
    the window resetting at `reset_at` (epoch seconds) when known, else sliding over
    `window_seconds`."""

    exchange: str
    unit: str
    remaining: int
    limit: int
    reset_at: float | None = None
    window_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TasksPlanned(Event):
    """A phase of the flow (`label`: "account", "market data") submitted `total` tasks."""

    label: str
    total: int


@dataclass(frozen=True, slots=True)
class TaskDone(Event):
    label: str
