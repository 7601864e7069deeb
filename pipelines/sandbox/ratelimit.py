"""Server-side rate limits of both exchanges, on aligned windows of the wall clock.

`RateLimits.scaled(x)` multiplies every budget AND every window length by `x` (budgets rounded,
at least 1; windows rounded to whole milliseconds), so the sustainable rate stays the real one
while a test needs `x` times fewer requests to hit a limit and waits `x` times less for a window
or a ban to pass:

- Bitvavo: 1000·x weight per 60·x s window per API key (per IP when unauthenticated); exceeding
  → HTTP 429 errorCode 110, then the key is banned (403 errorCode 105) until the end of the window
  plus one more window; an IP is banned for 900·x s.
- Bitstamp: 10,000·x requests per 600·x s and 400·x requests per x s, per key (per IP for public
  calls); exceeding → HTTP 429 with response_code 400.002. Rejected requests count too.

Endpoint weights are never scaled. Windows are aligned on multiples of their length since the
Unix epoch.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from pipelines.sandbox.auth import Clock

BITVAVO_BUDGET = 1000
BITVAVO_WINDOW_MS = 60_000
BITVAVO_IP_BAN_MS = 900_000
BITSTAMP_BUDGET = 10_000
BITSTAMP_WINDOW_MS = 600_000
BITSTAMP_BURST = 400
BITSTAMP_BURST_WINDOW_MS = 1_000
WINDOWS_KEPT = 1000


@dataclass(frozen=True, slots=True)
class RateLimits:
    bitvavo_budget: int = BITVAVO_BUDGET
    bitvavo_window_ms: int = BITVAVO_WINDOW_MS
    bitvavo_ip_ban_ms: int = BITVAVO_IP_BAN_MS
    bitstamp_budget: int = BITSTAMP_BUDGET
    bitstamp_window_ms: int = BITSTAMP_WINDOW_MS
    bitstamp_burst: int = BITSTAMP_BURST
    bitstamp_burst_window_ms: int = BITSTAMP_BURST_WINDOW_MS

    @classmethod
    def scaled(cls, rate_scale: float) -> RateLimits:
        if not rate_scale > 0 or not math.isfinite(rate_scale):
            raise ValueError("rate_scale must be a positive number")

        def times(n: int) -> int:
            return max(1, round(n * rate_scale))

        return cls(
            bitvavo_budget=times(BITVAVO_BUDGET),
            bitvavo_window_ms=times(BITVAVO_WINDOW_MS),
            bitvavo_ip_ban_ms=times(BITVAVO_IP_BAN_MS),
            bitstamp_budget=times(BITSTAMP_BUDGET),
            bitstamp_window_ms=times(BITSTAMP_WINDOW_MS),
            bitstamp_burst=times(BITSTAMP_BURST),
            bitstamp_burst_window_ms=times(BITSTAMP_BURST_WINDOW_MS),
        )


def _now_ms(clock: Clock) -> int:
    return int(clock() * 1000)


@dataclass(frozen=True, slots=True)
class WeightDecision:
    """What the Bitvavo limiter says about one request, and the headers to send."""

    outcome: str  # "ok" | "exceeded" (429/110, ban starts) | "banned" (403/105)
    remaining: int
    reset_at_ms: int
    limit: int
    ban_until_ms: int | None = None

    def headers(self) -> dict[str, str]:
        return {
            "bitvavo-ratelimit-remaining": str(self.remaining),
            "bitvavo-ratelimit-resetat": str(self.reset_at_ms),
            "bitvavo-ratelimit-limit": str(self.limit),
        }


@dataclass(slots=True)
class _WeightState:
    window: int = -1
    used: int = 0
    ban_until: int = 0


class WeightLimiter:
    """Bitvavo: weight budget per aligned window per identity, with bans."""

    def __init__(self, limits: RateLimits, clock: Clock = time.time) -> None:
        self._budget = limits.bitvavo_budget
        self._window = limits.bitvavo_window_ms
        self._ip_ban = limits.bitvavo_ip_ban_ms
        self._clock = clock
        self._states: dict[str, _WeightState] = {}
        self._lock = threading.Lock()

    @property
    def budget(self) -> int:
        return self._budget

    def charge(self, identity: str, weight: int, *, authenticated: bool) -> WeightDecision:
        now = _now_ms(self._clock)
        with self._lock:
            state = self._states.setdefault(identity, _WeightState())
            if now < state.ban_until:
                until = state.ban_until
                return WeightDecision("banned", 0, until, self._budget, until)
            window = now // self._window * self._window
            if window != state.window:
                state.window, state.used = window, 0
            if state.used + weight > self._budget:
                if authenticated:
                    state.ban_until = window + 2 * self._window
                else:
                    state.ban_until = now + self._ip_ban
                state.used = self._budget
                until = state.ban_until
                return WeightDecision("exceeded", 0, until, self._budget, until)
            state.used += weight
            return WeightDecision(
                "ok", self._budget - state.used, window + self._window, self._budget
            )


@dataclass(slots=True)
class _CountState:
    starts: list[int] = field(default_factory=lambda: [-1, -1])  # per rule: window start
    counts: list[int] = field(default_factory=lambda: [0, 0])  # per rule: requests in it


class RequestLimiter:
    """Bitstamp: request counts per aligned window (long budget and per-second burst).

    `windows()` tells how many requests each identity sent in each long window (the last
    `WINDOWS_KEPT` of them), refused ones included: what a test compares with the budget.
    """

    def __init__(self, limits: RateLimits, clock: Clock = time.time) -> None:
        self._rules = (
            (limits.bitstamp_window_ms, limits.bitstamp_budget),
            (limits.bitstamp_burst_window_ms, limits.bitstamp_burst),
        )
        self._clock = clock
        self._states: dict[str, _CountState] = {}
        self._windows: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()

    def windows(self) -> dict[str, dict[int, int]]:
        """Requests per identity and long window (its start, epoch ms), refused ones included."""
        with self._lock:
            return {identity: dict(counts) for identity, counts in self._windows.items()}

    def charge(self, identity: str) -> bool:
        """Count one request; False when it exceeds a limit."""
        now = _now_ms(self._clock)
        allowed = True
        with self._lock:
            state = self._states.setdefault(identity, _CountState())
            for rule, (length, budget) in enumerate(self._rules):
                start = now // length * length
                if state.starts[rule] != start:
                    state.starts[rule], state.counts[rule] = start, 0
                state.counts[rule] += 1
                if state.counts[rule] > budget:
                    allowed = False
            counts = self._windows.setdefault(identity, {})
            counts[state.starts[0]] = state.counts[0]
            if len(counts) > WINDOWS_KEPT:
                del counts[next(iter(counts))]
        return allowed
