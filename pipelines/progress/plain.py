"""`PlainRenderer`: progress as plain lines, for a log file or a pipe (no terminal).

One line, prefixed with the time since the start (`[mm:ss]`):

- when a stream finishes or fails (with the error, its URL, and whether Prefect retries it);
- when a limiter's wait of at least `long_wait` seconds begins (its reason, URL and length),
  once per exchange and kind of wait until that wait is over;
- when the HTTP layer retries a request: at once when the back-off is at least `long_wait`,
  else at most one line per `retry_every` seconds, the next line counting those not shown;
- a heartbeat from `tick()` whenever no line was written for `heartbeat` seconds, naming what
  is still running and what it waits for, so that a long run is never silent.

The clock is injected (`Board.clock`); `tick()` is called by a timer (`session.py`) or a test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from pipelines.progress import text
from pipelines.progress.board import FAILED, RUNNING, Board, StreamView
from pipelines.progress.events import (
    Event,
    Retrying,
    StreamFailed,
    StreamFinished,
    Waiting,
)

LONG_WAIT_SECONDS: Final = 2.0
RETRY_LINE_SECONDS: Final = 5.0
HEARTBEAT_SECONDS: Final = 10.0
HEARTBEAT_STREAMS: Final = 3
"""Streams named in a heartbeat line (the others are counted)."""


class PlainRenderer:
    """A channel listener that writes throttled progress lines through `write` (one call per
    line, without its newline)."""

    def __init__(
        self,
        write: Callable[[str], None],
        board: Board,
        *,
        long_wait: float = LONG_WAIT_SECONDS,
        retry_every: float = RETRY_LINE_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.board = board
        self._write = write
        self._long_wait = long_wait
        self._retry_every = retry_every
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._last_line = board.started
        self._last_retry_line: float | None = None
        self._retries_not_shown = 0
        self._waits_shown: dict[tuple[str | None, str], float] = {}  # (exchange, kind): until

    def __call__(self, event: Event) -> None:
        self.board.handle(event)
        with self._lock:
            line = self._line(event)
            if line is not None:
                self._emit(event.at, line)

    def tick(self) -> None:
        """Write a heartbeat if nothing was written for `heartbeat` seconds."""
        now = self.board.clock()
        with self._lock:
            if now - self._last_line >= self._heartbeat:
                self._emit(now, self._heartbeat_line(now))

    def _emit(self, at: float, line: str) -> None:
        self._last_line = at
        self._write(f"[{text.clock(at - self.board.started)}] {line}")

    def _line(self, event: Event) -> str | None:
        if isinstance(event, StreamFinished):
            return self._finished(event)
        if isinstance(event, StreamFailed):
            return self._failed(event)
        if isinstance(event, Retrying):
            return self._retrying(event)
        if isinstance(event, Waiting):
            return self._waiting(event)
        return None

    def _finished(self, event: StreamFinished) -> str:
        view = self.board.stream(event.stream) if event.stream else None
        took = f", {text.seconds(event.at - view.started)}" if view is not None else ""
        return (
            f"done     {event.stream}: {text.rows_by_dataset(event.rows)}; "
            f"{text.plural(event.requests, 'request')}, weight {event.weight:,}, "
            f"{text.retries(event.retries)}, "
            f"{text.plural(event.gaps, 'gap')}{took}"
        )

    def _failed(self, event: StreamFailed) -> str:
        at = f" ({event.url})" if event.url else ""
        then = (
            f"; Prefect runs the task again in {text.seconds(event.retry_in)}"
            if event.retry_in is not None
            else "; not retried"
        )
        return f"failed   {event.stream}: {event.error}: {event.message}{at}{then}"

    def _retrying(self, event: Retrying) -> str | None:
        recent = (
            self._last_retry_line is not None
            and event.at - self._last_retry_line < self._retry_every
        )
        if recent and event.wait < self._long_wait:
            self._retries_not_shown += 1
            return None
        self._last_retry_line = event.at
        line = (
            f"retry    {event.attempt}/{event.max_attempts} in {text.seconds(event.wait)} "
            f"after {event.message} ({event.method} {event.url})"
        )
        if event.stream:
            line += f" [{event.stream}]"
        return line + self._not_shown()

    def _waiting(self, event: Waiting) -> str | None:
        if event.seconds < self._long_wait:
            return None
        key = (event.exchange, event.kind)
        shown_until = self._waits_shown.get(key)
        if shown_until is not None and event.at < shown_until:
            return None  # the same wait, told already
        self._waits_shown[key] = event.until
        label = text.WAIT_LABELS.get(event.kind, event.kind)
        if event.exchange:
            label = f"{event.exchange} {label}"
        line = f"waiting  {text.seconds(event.seconds)} ({label}): {event.reason}"
        if event.url:
            line += f" ({event.url})"
        if event.stream:
            line += f" [{event.stream}]"
        return line

    def _not_shown(self) -> str:
        if not self._retries_not_shown:
            return ""
        count, self._retries_not_shown = self._retries_not_shown, 0
        return f"; {text.plural(count, 'other retry', 'other retries')} not shown"

    def _heartbeat_line(self, now: float) -> str:
        views = self.board.streams()
        summary = self.board.summary(now)
        running = [view for view in views if view.state == RUNNING]
        totals = (
            f"{summary.done} done, {summary.failed} failed; {summary.rows:,} rows, "
            f"{text.plural(summary.requests, 'request')}, "
            f"{text.retries(summary.retries)}"
        )
        if summary.eta is not None:
            totals += f"; ETA {text.seconds(summary.eta)}"
        if not views:
            return "starting: no stream has started yet" + self._not_shown()
        if not running:
            failed = [view.name for view in views if view.state == FAILED]
            which = f" (failed: {', '.join(failed)})" if failed else ""
            return f"running  no stream at work right now ({totals}){which}" + self._not_shown()
        named = "; ".join(self._doing(view, now) for view in running[:HEARTBEAT_STREAMS])
        more = len(running) - HEARTBEAT_STREAMS
        if more > 0:
            named += f"; and {more} more"
        return (
            f"running  {len(running)} of {len(views)} streams ({totals}): {named}"
            + self._not_shown()
        )

    @staticmethod
    def _doing(view: StreamView, now: float) -> str:
        doing = f"{view.name} {view.total_rows:,} rows, {text.plural(view.requests, 'request')}"
        wait = view.waiting(now)
        if wait is not None:
            return f"{doing}, {text.wait_text(wait, now, reason=False)}"
        where = text.where(view)
        return f"{doing}, at {where}" if where else doing
