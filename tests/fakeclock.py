"""One fake time for the tests: a wall clock and a monotonic clock that move together, only when
something sleeps on them or the test moves them.

    clock = FakeClock()                      # wall time T0 (epoch seconds)
    budget = RequestBudget(10, 60.0, 5, clock=clock, sleep=clock.sleep)
    lock = data_dir_lock(..., clock=clock.monotonic, sleep=clock.sleep)
    runtime = Runtime(settings, clock=clock.utc, ...)

`clock()` (also `clock.time()`) reads the wall clock in epoch seconds, `clock.utc()` as a
UTC datetime, `clock.ms()` in integer milliseconds; `clock.monotonic()` never jumps. `sleep`
records the wait and moves both clocks by it, `advance` moves both, `set` moves the wall clock
alone (a clock set by hand or by NTP). Safe to share between threads: every sleeping thread moves
the one time, so threads that wait together see more time pass than a real clock would, never
less. Threads that wait for real I/O (a response from a loopback server) would spin on a clock
that never waits: `real_pause` gives each sleep that much real time to yield, which no
assertion may depend on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

T0 = 1_700_000_000.0
MONOTONIC_START = 1_000.0


class FakeClock:
    def __init__(
        self,
        start: float | datetime = T0,
        *,
        on_sleep: Callable[[float], None] | None = None,
        max_sleeps: int = 100_000,
        real_pause: float = 0.0,
    ) -> None:
        self.now = _seconds(start)
        """Wall time, epoch seconds."""
        self.sleeps: list[float] = []
        """Every wait asked of `sleep`, in order."""
        self.on_sleep = on_sleep
        """Called after each `sleep` has moved the clocks (e.g. to let another party act)."""
        self._monotonic = MONOTONIC_START
        self._max_sleeps = max_sleeps
        self._real_pause = real_pause
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self._monotonic

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def ms(self) -> int:
        return round(self.now * 1000)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` without waiting. A sleep of 0 or less is refused: a caller that asks
        for one would spin on a real clock."""
        assert seconds > 0, f"a sleep of {seconds} s (it would spin)"
        with self._lock:
            assert len(self.sleeps) < self._max_sleeps, "spinning: sleeps without end"
            self.sleeps.append(seconds)
            self.now += seconds
            self._monotonic += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        if self._real_pause:
            time.sleep(self._real_pause)

    def advance(self, by: float | timedelta) -> None:
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        with self._lock:
            self.now += seconds
            self._monotonic += seconds

    def set(self, moment: float | datetime) -> None:
        """Set the wall clock (the monotonic one does not move)."""
        with self._lock:
            self.now = _seconds(moment)


def _seconds(moment: float | datetime) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
