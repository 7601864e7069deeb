"""The Bitstamp emulator's record of requests per rate window (`RequestLimiter.windows`), on an
injected clock."""

from __future__ import annotations

from fakeclock import FakeClock

from pipelines.sandbox.ratelimit import WINDOWS_KEPT, RateLimits, RequestLimiter

T0_MS = 1_700_000_400_000  # a multiple of the 6 s window below: the start of one


def test_requests_are_counted_per_identity_and_window_refused_ones_included():
    clock = FakeClock(T0_MS / 1000)
    limiter = RequestLimiter(RateLimits(bitstamp_budget=3, bitstamp_window_ms=6_000), clock)
    outcomes = [limiter.charge("key") for _ in range(4)]
    assert outcomes == [True, True, True, False]
    limiter.charge("ip:127.0.0.1")
    clock.advance(5.999)  # still the first window
    assert limiter.charge("key") is False
    clock.advance(0.001)  # the next one
    assert limiter.charge("key") is True

    assert limiter.windows() == {
        "key": {T0_MS: 5, T0_MS + 6_000: 1},
        "ip:127.0.0.1": {T0_MS: 1},
    }
    limiter.windows()["key"].clear()  # a copy: the record is unchanged
    assert sum(limiter.windows()["key"].values()) == 6


def test_only_the_last_windows_are_kept():
    clock = FakeClock(T0_MS / 1000)
    limiter = RequestLimiter(RateLimits(bitstamp_budget=3, bitstamp_window_ms=6_000), clock)
    for _ in range(WINDOWS_KEPT + 2):
        limiter.charge("key")
        clock.advance(6.0)
    kept = limiter.windows()["key"]
    assert len(kept) == WINDOWS_KEPT
    assert min(kept) == T0_MS + 2 * 6_000 and max(kept) == clock.ms() - 6_000
