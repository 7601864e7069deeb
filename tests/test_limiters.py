"""The rate limiters: deterministic with a fake clock, plus one real-threads run per limiter."""

from __future__ import annotations

import math
import threading

import pytest
from fakeclock import T0, FakeClock

from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.http import Limiter, RequestBudget, WeightBudget, shared_limiter


def bitvavo_headers(remaining: int, reset_at: float, limit: int = 1000) -> dict[str, str]:
    # lower-case, as Bitvavo sends them since 2024
    return {
        "bitvavo-ratelimit-remaining": str(remaining),
        "bitvavo-ratelimit-resetat": str(round(reset_at * 1000)),
        "bitvavo-ratelimit-limit": str(limit),
    }


class FixedWindowExchange:
    """A model of Bitvavo's budget: `limit` weight per fixed window, its own (skewed) clock."""

    def __init__(
        self, clock: FakeClock, *, limit: int = 1000, window: float = 60.0, offset: float = 0.0
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.offset = offset  # exchange time = our time + offset
        self.window_end = 0.0
        self.used = 0
        self.violations = 0
        self.served = 0

    def serve(self, weight: int) -> dict[str, str]:
        now = self.clock() + self.offset
        end = (math.floor(now / self.window) + 1) * self.window
        if end != self.window_end:
            self.window_end, self.used = end, 0
        if self.used + weight > self.limit:
            self.violations += 1
        else:
            self.used += weight
            self.served += weight
        # the reset time is the exchange's, as a number: our clock reads it as if it were ours
        return bitvavo_headers(self.limit - self.used, end, self.limit)


# ------------------------------------------------------------------------------- RequestBudget


def test_request_budget_allows_n_per_sliding_window() -> None:
    clock = FakeClock()
    budget = RequestBudget(5, 10.0, 100, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(2):
        budget.acquire()
        sent.append(clock.now - T0)
    clock.advance(6.0)
    for _ in range(6):
        budget.acquire()
        sent.append(clock.now - T0)
    # 5 fit in any 10 s; the 6th waits for the first to leave the window (at 10 s), the 7th
    # too (two were sent at 0), the 8th for the ones sent at 6 s.
    assert sent == [0, 0, 6, 6, 6, 10, 10, 16]
    for index, at in enumerate(sent):
        in_window = [other for other in sent[: index + 1] if at - 10 < other <= at]
        assert len(in_window) <= 5


@pytest.mark.parametrize(
    ("per_second", "requests", "expected"),
    [
        pytest.param(3, 7, [0, 0, 0, 1, 1, 1, 2], id="enforces-per-second-limit"),
        pytest.param(0.5, 3, [0, 2, 4], id="fractional-rate-spaces-requests"),
    ],
)
def test_request_budget_paces_by_its_per_second_rate(
    per_second: float, requests: int, expected: list[float]
) -> None:
    clock = FakeClock()
    budget = RequestBudget(8000, 600.0, per_second, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(requests):
        budget.acquire()
        sent.append(clock.now - T0)
    assert sent == expected


def test_request_budget_block_until_holds_everyone() -> None:
    clock = FakeClock()
    budget = RequestBudget(*BITSTAMP_PACING, clock=clock, sleep=clock.sleep)
    budget.acquire()
    budget.block_until(T0 + 42.5)
    budget.acquire()
    assert clock.now == pytest.approx(T0 + 42.5)
    budget.acquire()  # a block is a point in time, not a recurring pause
    assert clock.now == pytest.approx(T0 + 42.5)


def test_request_budget_rejects_impossible_weight() -> None:
    budget = RequestBudget(5, 10.0, 100)
    with pytest.raises(ValueError):
        budget.acquire(6)


def test_request_budget_real_threads() -> None:
    """Four threads share one budget of 20 per second: on the clock the budget reads, no second
    holds more than 20 sends."""
    clock = FakeClock()
    read = threading.local()  # each thread's last reading: the time its send was counted at

    def reading() -> float:
        now = read.at = clock()
        return now

    budget = RequestBudget(1000, 600.0, 20, clock=reading, sleep=clock.sleep)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(8):
            budget.acquire()
            with lock:
                stamps.append(read.at)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(stamps) == 32
    stamps.sort()
    # no 1-second span holds more than 20 sends
    for index, at in enumerate(stamps):
        assert sum(1 for other in stamps[index:] if other < at + 1.0) <= 20
    assert stamps[-1] - T0 >= 1.0  # 32 sends at 20/s cannot finish within a second


# --------------------------------------------------------------------------------- WeightBudget


def test_weight_budget_assumes_documented_budget_before_any_header() -> None:
    clock = FakeClock()
    # reserve 25 by default
    budget = WeightBudget(headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
    sent_in_first_minute = 0
    while True:
        budget.acquire(1)
        if clock.now - T0 >= 60.0:
            break
        sent_in_first_minute += 1
        clock.advance(0.001)
        budget.observe({}, 1)  # no headers ever: stay within the documented 1000/min
    assert 950 <= sent_in_first_minute <= 1000


@pytest.mark.parametrize("offset", [0.0, 2.0, -2.0, -5.0, 0.6])
def test_weight_budget_long_backfill_uses_budget_and_is_never_banned(offset: float) -> None:
    # offset > 0: the exchange's clock is ahead of ours; < 0: ours runs ahead (the dangerous one)
    clock = FakeClock()
    exchange = FixedWindowExchange(clock, offset=offset)
    budget = WeightBudget(headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
    weights = [1, 5, 1, 1, 5, 1]
    minutes = 6
    index = 0
    while clock.now < T0 + minutes * 60:
        weight = weights[index % len(weights)]
        index += 1
        budget.acquire(weight)
        clock.advance(0.02)  # the request's round trip
        budget.observe(exchange.serve(weight), weight)
    assert exchange.violations == 0
    # "most of the budget": at least 90% of 1000/min over the run
    assert exchange.served >= 0.9 * 1000 * minutes


def test_weight_budget_slows_down_as_remaining_falls() -> None:
    waits = {}
    for remaining in (900, 600, 450, 300, 150, 60):
        clock = FakeClock()
        budget = WeightBudget(headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
        budget.observe(bitvavo_headers(remaining, T0 + 30), 0)
        budget.acquire(1)
        budget.observe(bitvavo_headers(remaining - 1, T0 + 30), 1)
        before = clock.now
        budget.acquire(1)
        waits[remaining] = clock.now - before
    # plenty left: no pacing at all
    assert waits[900] == 0 and waits[600] == 0
    # below half the budget: a wait that grows as the remaining budget falls
    assert 0 < waits[450] < waits[300] < waits[150] < waits[60]
    # and never so slow that what is left could not be used before the reset
    for remaining, wait in waits.items():
        if wait:
            assert wait * (remaining - 1 - 25) <= 30.25 + 1e-4


def test_weight_budget_waits_for_reset_rather_than_exceed() -> None:
    clock = FakeClock()
    budget = WeightBudget(headers=WEIGHT_HEADERS, reserve=25, clock=clock, sleep=clock.sleep)
    reset = T0 + 17.0
    budget.observe(bitvavo_headers(40, reset), 0)
    budget.acquire(5)  # 40 - 25 = 15 >= 5: may go
    budget.observe(bitvavo_headers(35, reset), 5)
    start = clock.now
    budget.acquire(5)  # 10 >= 5 (paced, but goes before the reset)
    assert clock.now < reset
    budget.observe(bitvavo_headers(30, reset), 5)
    budget.acquire(5)  # 5 >= 5
    budget.observe(bitvavo_headers(29, reset), 5)  # someone else used one
    assert clock.now < reset
    budget.acquire(5)  # 29 - 25 = 4 < 5: only after the reset
    assert clock.now >= reset
    assert clock.now <= reset + 1.0
    assert clock.now > start


def test_weight_budget_counts_weight_in_flight() -> None:
    clock = FakeClock()
    budget = WeightBudget(
        headers=WEIGHT_HEADERS, reserve=10, pace_below=0.0, clock=clock, sleep=clock.sleep
    )
    reset = T0 + 30.0
    budget.observe(bitvavo_headers(20, reset, limit=100), 0)
    budget.acquire(5)  # A
    budget.acquire(5)  # B: 20 - 5 in flight - 10 = 5
    assert clock.sleeps == []

    def answers_arrive(_: float) -> None:
        if len(clock.sleeps) == 1:  # while C waits, A and B come back (new window later)
            budget.observe(bitvavo_headers(15, reset, limit=100), 5)
            budget.observe(bitvavo_headers(10, reset, limit=100), 5)

    clock.on_sleep = answers_arrive
    budget.acquire(5)  # C: 20 - 10 in flight - 10 = 0 < 5 -> must wait for the reset
    assert clock.sleeps and clock.sleeps[0] >= reset - T0
    assert clock.now >= reset


def test_weight_budget_sends_one_probe_after_an_assumed_reset() -> None:
    clock = FakeClock()
    budget = WeightBudget(headers=WEIGHT_HEADERS, reserve=10, clock=clock, sleep=clock.sleep)
    reset = T0 + 5.0
    budget.observe(bitvavo_headers(10, reset, limit=100), 0)
    budget.acquire(1)  # waits for the reset: 10 - 10 < 1
    assert clock.now >= reset
    seen: list[int] = []

    def first_reply(_: float) -> None:
        seen.append(1)
        if len(seen) == 1:
            budget.observe(bitvavo_headers(99, reset + 60, limit=100), 1)

    clock.on_sleep = first_reply
    sleeps_before = len(clock.sleeps)
    budget.acquire(1)  # the window is only assumed fresh: wait for the probe's reply first
    assert len(clock.sleeps) == sleeps_before + 1
    clock.on_sleep = None
    budget.observe(bitvavo_headers(98, reset + 60, limit=100), 1)
    sleeps_before = len(clock.sleeps)
    budget.acquire(1)  # confirmed: no more waiting
    assert len(clock.sleeps) == sleeps_before


def test_weight_budget_reads_headers_case_insensitively_and_ignores_stale_replies() -> None:
    clock = FakeClock()
    budget = WeightBudget(headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
    budget.observe(
        {
            "Bitvavo-Ratelimit-Remaining": "700",
            "Bitvavo-Ratelimit-ResetAt": str(int((T0 + 50) * 1000)),
            "Bitvavo-Ratelimit-Limit": "1000",
        },
        0,
    )
    assert budget.remaining == 700
    budget.observe(bitvavo_headers(650, T0 + 50), 0)
    budget.observe(bitvavo_headers(680, T0 + 50), 0)  # an earlier request, answered late
    assert budget.remaining == 650
    budget.observe(bitvavo_headers(999, T0 - 10), 0)  # from an older window
    assert budget.remaining == 650


def test_weight_budget_block_until() -> None:
    clock = FakeClock()
    budget = WeightBudget(headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
    budget.observe(bitvavo_headers(900, T0 + 50), 0)
    budget.block_until(T0 + 95.0)  # a ban
    budget.acquire(1)
    assert clock.now >= T0 + 95.0


def test_weight_budget_real_threads_against_real_server() -> None:
    from pytest_httpserver import HTTPServer
    from werkzeug import Request, Response

    from pipelines.exchanges.bitvavo_errors import classify_bitvavo
    from pipelines.http import HttpClient, RetryPolicy

    limit, window = 60, 0.5
    state = {"end": 0.0, "used": 0, "violations": 0, "served": 0, "low": limit}
    lock = threading.Lock()

    clock = FakeClock(real_pause=0.001)  # the server's and the client's: waits take no time

    def handler(request: Request) -> Response:
        weight = int(request.args.get("w", "1"))
        with lock:
            now = clock()
            end = (math.floor(now / window) + 1) * window
            if end != state["end"]:
                state["end"], state["used"] = end, 0
            if state["used"] + weight > limit:
                state["violations"] += 1
                status, body = 429, '{"errorCode": 110, "error": "rate limited"}'
            else:
                state["used"] += weight
                state["served"] += weight
                status, body = 200, "[]"
            remaining = limit - int(state["used"])
            state["low"] = min(state["low"], remaining)
        return Response(
            body,
            status=status,
            content_type="application/json",
            headers=bitvavo_headers(remaining, end, limit),
        )

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/v2/trades").respond_with_handler(handler)
    server.start()
    try:
        budget = WeightBudget(
            headers=WEIGHT_HEADERS,
            window_seconds=window,
            reserve=10,
            margin_seconds=0.03,
            poll_seconds=0.005,
            clock=clock,
            sleep=clock.sleep,
        )
        client = HttpClient(
            "bitvavo",
            server.url_for("/v2"),
            classify=classify_bitvavo,
            limiter=budget,
            retry=RetryPolicy(max_attempts=1),
            clock=clock,
            sleep=clock.sleep,
        )
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(9):
                    client.request("GET", "/trades", endpoint="trades", params={"w": 5}, weight=5)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        client.close()
    finally:
        server.stop()
    assert errors == [], errors
    assert state["violations"] == 0
    assert state["served"] == 4 * 9 * 5
    assert client.stats.requests == 36
    assert client.stats.weight == 180


# ------------------------------------------------------------------------------ shared_limiter


def test_shared_limiter_is_one_per_exchange_and_key() -> None:
    made: list[Limiter] = []

    def factory() -> Limiter:
        limiter = RequestBudget(*BITSTAMP_PACING)
        made.append(limiter)
        return limiter

    got: list[Limiter] = []
    lock = threading.Lock()

    def fetch() -> None:
        limiter = shared_limiter("bitstamp", "test-shared-1", factory)
        with lock:
            got.append(limiter)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert all(limiter is made[0] for limiter in got)
    other_key = shared_limiter("bitstamp", "test-shared-2", factory)
    other_exchange = shared_limiter("bitvavo", "test-shared-1", factory)
    assert other_key is not made[0] and other_exchange is not made[0]
    assert other_key is not other_exchange
    assert isinstance(made[0], Limiter) and isinstance(
        WeightBudget(headers=WEIGHT_HEADERS), Limiter
    )
