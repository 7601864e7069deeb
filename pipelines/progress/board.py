"""`Board`: progress events folded into one view per stream, per exchange budget and per phase.

A `Board` is a channel listener (`CHANNEL.subscribe(board.handle)`); renderers read copies of
its views (`streams()`, `budgets()`, `summary()`) from any thread. Every wait a stream is in
shows as its `wait` (a `Waiting`): a limiter's pacing or ban as published, a retry's back-off
from `Retrying`, a Prefect task retry from `StreamFailed.retry_in`; it ends when its time is up
or the stream sends its next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pipelines.progress.events import (
    BACKOFF,
    BAN,
    TASK_RETRY,
    Event,
    Headroom,
    PageLanded,
    RequestSent,
    Retrying,
    StreamFailed,
    StreamFinished,
    StreamStarted,
    TaskDone,
    TasksPlanned,
    Waiting,
)

RUNNING, DONE, FAILED = "running", "done", "failed"
RATE_LIMITED_ERROR = "RateLimitedError"  # `pipelines.http` is not imported here: by name


@dataclass
class StreamView:
    """What one stream has done so far (`rows`: new or changed rows landed per dataset)."""

    name: str
    exchange: str
    started: float
    state: str = RUNNING
    ended: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    weight: int = 0
    retries: int = 0
    gaps: int = 0
    done: float | None = None  # share of the stream's span covered, when it knows
    wait: Waiting | None = None
    method: str | None = None  # of the last request
    url: str | None = None
    error: str | None = None  # the last error met (retried or final)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def waiting(self, now: float) -> Waiting | None:
        """The wait the stream is in at `now` (None: none, or it is over)."""
        return self.wait if self.wait is not None and self.wait.until > now else None

    def eta(self, now: float) -> float | None:
        """Seconds left, from the share covered so far (None: unknown or not running)."""
        if self.state != RUNNING or not self.done or self.done <= 0:
            return None
        return (now - self.started) * (1 - self.done) / self.done

    def copy(self) -> StreamView:
        return replace(self, rows=dict(self.rows))


@dataclass(frozen=True)
class Summary:
    """The whole run at a glance."""

    started: float
    running: int
    done: int
    failed: int
    rows: int
    requests: int
    retries: int
    eta: float | None


class Board:
    """Thread-safe: `handle` is called from the publishing threads, the readers from others."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._streams: dict[str, StreamView] = {}
        self._budgets: dict[str, Headroom] = {}
        self._phases: dict[str, list[float]] = {}  # label: [total, done, started]
        self._loose_requests = 0  # sent outside any stream (e.g. the market check)
        self._loose_retries = 0

    # --- events ------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        with self._lock:
            self._handle(event)

    def _view(self, event: Event, exchange: str | None = None) -> StreamView | None:
        if event.stream is None:
            return None
        view = self._streams.get(event.stream)
        if view is None:
            view = StreamView(event.stream, exchange or "", started=event.at)
            self._streams[event.stream] = view
        return view

    def _handle(self, event: Event) -> None:
        if isinstance(event, StreamStarted):
            view = self._view(event, event.exchange)
            assert view is not None
            if view.state != RUNNING:  # run again (a Prefect task retry)
                view.state, view.ended, view.done, view.wait = RUNNING, None, None, None
                view.started = event.at
        elif isinstance(event, PageLanded):
            view = self._view(event)
            if view is not None:
                view.rows[event.dataset] = view.rows.get(event.dataset, 0) + event.rows
                if event.done is not None:
                    view.done = event.done
        elif isinstance(event, StreamFinished):
            view = self._view(event, event.exchange)
            assert view is not None
            view.state, view.ended, view.wait, view.done = DONE, event.at, None, 1.0
            view.rows = dict(event.rows)
            view.requests, view.weight = event.requests, event.weight
            view.retries, view.gaps = event.retries, event.gaps
        elif isinstance(event, StreamFailed):
            view = self._view(event)
            if view is not None:
                view.state, view.ended = FAILED, event.at
                view.error = event.message
                view.url = event.url or view.url
                view.wait = None
                if event.retry_in is not None:
                    reason = f"Prefect runs the task again after {event.message}"
                    view.wait = Waiting(
                        event.at, event.stream, TASK_RETRY, reason, event.retry_in, None, view.url
                    )
        elif isinstance(event, RequestSent):
            view = self._view(event, event.exchange)
            if view is None:
                self._loose_requests += 1
            else:
                view.requests += 1
                view.weight += event.weight
                view.method, view.url, view.wait = event.method, event.url, None
        elif isinstance(event, Retrying):
            view = self._view(event, event.exchange)
            if view is None:
                self._loose_retries += 1
            else:
                view.retries += 1
                view.error = event.message
                view.method, view.url = event.method, event.url
                kind = BAN if event.error == RATE_LIMITED_ERROR else BACKOFF
                reason = f"retry {event.attempt}/{event.max_attempts} after {event.message}"
                view.wait = Waiting(
                    event.at, event.stream, kind, reason, event.wait, event.exchange, event.url
                )
        elif isinstance(event, Waiting):
            view = self._view(event, event.exchange)
            if view is not None:
                view.wait = event
        elif isinstance(event, Headroom):
            self._budgets[event.exchange] = event
        elif isinstance(event, TasksPlanned):
            self._phases[event.label] = [float(event.total), 0.0, event.at]
        elif isinstance(event, TaskDone) and event.label in self._phases:
            self._phases[event.label][1] += 1

    # --- views -------------------------------------------------------------------------------

    def streams(self) -> list[StreamView]:
        """Every stream seen, in the order they started (copies)."""
        with self._lock:
            return [view.copy() for view in self._streams.values()]

    def stream(self, name: str) -> StreamView | None:
        with self._lock:
            view = self._streams.get(name)
            return view.copy() if view is not None else None

    def budgets(self) -> dict[str, Headroom]:
        """The last known rate-limit headroom per exchange."""
        with self._lock:
            return dict(self._budgets)

    def summary(self, now: float | None = None) -> Summary:
        now = self.clock() if now is None else now
        with self._lock:
            views = list(self._streams.values())
            states = [view.state for view in views]
            return Summary(
                started=self.started,
                running=states.count(RUNNING),
                done=states.count(DONE),
                failed=states.count(FAILED),
                rows=sum(view.total_rows for view in views),
                requests=sum(view.requests for view in views) + self._loose_requests,
                retries=sum(view.retries for view in views) + self._loose_retries,
                eta=self._eta(views, now),
            )

    def _eta(self, views: list[StreamView], now: float) -> float | None:
        """The unfinished phase's ETA (its tasks done so far, at their pace), else the longest
        running stream's own; never less than the longest wait a running stream is in."""
        estimate = None
        for total, finished, began in reversed(list(self._phases.values())):
            if finished < total:
                if finished > 0:
                    estimate = (now - began) / finished * (total - finished)
                break
        if estimate is None:
            etas = [eta for view in views if (eta := view.eta(now)) is not None]
            estimate = max(etas) if etas else None
        waits = [
            wait.until - now
            for view in views
            if view.state != DONE and (wait := view.waiting(now)) is not None
        ]
        if waits and (estimate is None or max(waits) > estimate):
            return max(waits)
        return estimate
