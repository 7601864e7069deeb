"""Rate limiters: the `Limiter` protocol, Bitstamp's `RequestBudget`, Bitvavo's `WeightBudget`,
and `shared_limiter` (one limiter per exchange key, process-wide)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple, Protocol, Unpack, runtime_checkable

from pipelines import progress

from ._common import Timing, clock_and_sleep, lower_headers, to_number


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


Rule = tuple[int, float]
"""(capacity, seconds): at most `capacity` requests in any `seconds` long sliding window."""


def request_rules(
    owner: str, requests_per_window: int, window_seconds: float, max_requests_per_second: float
) -> tuple[Rule, Rule]:
    """A request budget's two windows, checked: the long one, and the per-second cap spread
    over max(1, 1/rate) seconds (so that a rate below 1/s still allows one request)."""
    if requests_per_window < 1 or window_seconds <= 0 or max_requests_per_second <= 0:
        raise ValueError(f"{owner} needs positive limits")
    second = max(1.0, 1.0 / max_requests_per_second)
    return (
        (int(requests_per_window), float(window_seconds)),
        (max(1, int(max_requests_per_second * second)), second),
    )


def check_weight(weight: int, capacity: int) -> None:
    """Refuse a request that no window of `capacity` could ever hold."""
    if weight < 1 or weight > capacity:
        raise ValueError(f"request weight {weight} does not fit the budget")


class RequestBudget(Limiter):
    """At most N requests per sliding window and M per second, thread-safe: for an exchange
    that sends no rate-limit headers (Bitstamp; its adapter gives the numbers)."""

    def __init__(
        self,
        requests_per_window: int,
        window_seconds: float,
        max_requests_per_second: float,
        **timing: Unpack[Timing],
    ) -> None:
        self._window, self._second = request_rules(
            "RequestBudget", requests_per_window, window_seconds, max_requests_per_second
        )
        self._clock, self._sleep = clock_and_sleep(timing)
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
        check_weight(weight, min(self._window[0], self._second[0]))
        left = 0
        while True:
            with self._lock:
                now = self._clock()
                self._purge(now)
                waits = (
                    self._blocked_until - now,
                    self._wait_for(self._sent, self._used[0], self._window, weight, now),
                    self._wait_for(self._sent_second, self._used[1], self._second, weight, now),
                )
                wait = max(waits)
                if wait <= 0:
                    self._sent.append((now, weight))
                    self._sent_second.append((now, weight))
                    self._used[0] += weight
                    self._used[1] += weight
                    left = self._window[0] - self._used[0]
            if wait <= 0:
                report_requests_left(left, self._window)
                return
            report_request_wait(waits, self._window, self._second)
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        return None

    def block_until(self, epoch_seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, epoch_seconds)


def report_requests_left(left: int, window: tuple[int, float]) -> None:
    """Progress: the requests left in a Bitstamp budget's sliding window."""
    progress.headroom("requests", max(0, left), window[0], window_seconds=window[1])


def report_request_wait(
    waits: tuple[float, float, float], window: tuple[int, float], second: tuple[int, float]
) -> None:
    """Progress: why a request budget waits (blocked, window used up, or the per-second cap)."""
    if not progress.listening():
        return
    blocked, per_window, per_second = waits
    wait = max(waits)
    if blocked >= max(per_window, per_second):
        progress.waiting(
            progress.BAN, "the exchange refused this key (HTTP 429): nobody sends until then", wait
        )
    elif per_window >= per_second:
        progress.waiting(
            progress.PACING, f"rate budget: {window[0]} requests per {window[1]:g} s used up", wait
        )
    else:
        progress.waiting(
            progress.PACING, f"rate budget: {second[0]} requests per {second[1]:g} s", wait
        )


class WeightHeaders(NamedTuple):
    """The response headers a `WeightBudget` reads (lower-case names), as its exchange names
    them: the weight left, the window's reset (epoch ms), the window's limit."""

    remaining: str
    reset_at: str
    limit: str


class WeightBudget(Limiter):
    """Paces from the rate-limit `headers` every response carries (Bitvavo's, which its client
    gives) and each request's weight.

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
        headers: WeightHeaders,
        limit: int = 1000,
        window_seconds: float = 60.0,
        reserve: int = 25,
        margin_seconds: float = 0.25,
        pace_below: float = 0.5,
        poll_seconds: float = 0.05,
        **timing: Unpack[Timing],
    ) -> None:
        if limit < 1 or window_seconds <= 0 or reserve < 0 or margin_seconds < 0:
            raise ValueError("WeightBudget needs a positive limit and window")
        self._headers = headers
        self._limit = int(limit)
        self._window = float(window_seconds)
        self._reserve = int(reserve)
        self._margin = float(margin_seconds)
        self._pace_below = float(pace_below)
        self._poll = float(poll_seconds)
        self._clock, self._sleep = clock_and_sleep(timing)
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

    def _pace(self, now: float, weight: int) -> tuple[float, str, str]:
        """Seconds to wait before sending `weight` now (0: send), with the wait's kind and
        reason for the progress display."""
        if now < self._blocked_until:
            return self._blocked_until - now, progress.BAN, "the key is banned or told to wait"
        self._roll(now)
        if self._probing and self._in_flight > 0:
            return self._poll, progress.PACING, "one request at a time until the budget is known"
        reserve = min(self._reserve, max(0, self._limit - weight))
        available = self._remaining - self._in_flight - reserve
        to_reset = self._deadline() - now
        if available < weight:
            reason = f"rate budget: {self._remaining} of {self._limit} weight left, until the reset"
            return max(to_reset, self._poll), progress.PACING, reason
        if available < self._pace_below * self._limit and self._last_send is not None:
            # Spread what is left over the time to the reset rather than burst to zero: n more
            # requests of this weight get n + 1 equal gaps, so the last one is not at the reset.
            next_at = self._last_send + weight * to_reset / (available + weight)
            if now < next_at:
                reason = f"rate budget: spreading the last {available} weight to the reset"
                return next_at - now, progress.PACING, reason
        return 0.0, "", ""

    @contextmanager
    def _booking(self) -> Iterator[float]:
        """Hold the bookkeeping while `acquire` books a request (yields now)."""
        with self._lock:
            yield self._clock()

    def acquire(self, weight: int = 1) -> None:
        check_weight(weight, self._limit)
        while True:
            with self._booking() as now:
                wait, kind, reason = self._pace(now, weight)
                if wait <= 0:
                    self._in_flight += weight
                    self._last_send = now
            if wait <= 0:
                return
            progress.waiting(kind, reason, wait)
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        self._observe(headers, weight)
        if progress.listening():
            with self._lock:
                left, limit, reset_at = self._remaining, self._limit, self._reset_at
            progress.headroom("weight", max(0, left), limit, reset_at=reset_at)

    def _observe(self, headers: Mapping[str, str], weight: int) -> None:
        lower = lower_headers(headers)
        remaining, reset_ms, limit = (to_number(lower.get(name)) for name in self._headers)
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
