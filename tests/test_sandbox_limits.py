"""Rate limits over HTTP, on budgets shrunk with rate_scale, on a fake clock the servers read
(a window starts, a ban ends, when the test moves it).

rate_scale=0.02: Bitvavo 20 weight per 1.2 s window (ban: end of window + 1.2 s; unauthenticated
ban 18 s); Bitstamp 200 requests per 12 s and 8 per 20 ms.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator

import pytest
from fakeclock import FakeClock
from test_sandbox_helpers import NOW_MS, clients, loads, shared_world

from pipelines.sandbox.server import Sandbox, start_sandbox

SCALE = 0.02
BUDGET = 20
WINDOW_MS = 1200
HEADERS = ("bitvavo-ratelimit-remaining", "bitvavo-ratelimit-resetat", "bitvavo-ratelimit-limit")


@pytest.fixture()
def clock() -> FakeClock:
    """The servers' clock. It starts at the wall clock's time: the clients sign with the real
    one, which the servers check."""
    return FakeClock()


@pytest.fixture()
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    world = shared_world()  # built before the clock is set (once per session, and slow)
    clock.set(time.time())
    with start_sandbox(now_ms=NOW_MS, rate_scale=SCALE, world=world, clock=clock) as running:
        yield running


def fresh_window(clock: FakeClock) -> None:
    """Move to just after a window boundary, so that a burst stays inside one window."""
    now_ms = clock() * 1000
    clock.advance((WINDOW_MS - now_ms % WINDOW_MS) / 1000 + 0.01)


def test_every_bitvavo_response_carries_the_headers_and_counts_down_by_weight(
    sandbox: Sandbox, clock: FakeClock
):
    _, bitvavo = clients(sandbox)
    fresh_window(clock)
    seen = []
    for path, params, weight in (
        ("/time", {}, 1),
        ("/BTC-EUR/trades", {"limit": 1}, 5),
        ("/BTC-EUR/candles", {"interval": "1h", "limit": 1}, 1),
        ("/balance", None, 5),
        ("/BTC-EUR/candles", {"interval": "nope"}, 1),  # errors carry the headers too
    ):
        response = bitvavo.get(path) if params is None else bitvavo.get(path, params)
        assert all(name in response.headers for name in HEADERS), response.headers
        assert response.headers["bitvavo-ratelimit-limit"] == str(BUDGET)
        seen.append(
            (
                int(response.headers["bitvavo-ratelimit-remaining"]),
                int(response.headers["bitvavo-ratelimit-resetat"]),
                weight,
            )
        )
    (first_remaining, reset_at, first_weight) = seen[0]
    assert reset_at % WINDOW_MS == 0 and reset_at > clock() * 1000 - WINDOW_MS
    assert all(r == reset_at for _, r, _ in seen)  # all in one window: the clock stood still
    assert first_remaining == BUDGET - first_weight
    for (before, _, _), (after, _, weight) in itertools.pairwise(seen):
        assert before - after == weight


def test_bitvavo_exceeding_gets_429_then_a_ban_with_its_expiry(sandbox: Sandbox, clock: FakeClock):
    _, bitvavo = clients(sandbox)
    fresh_window(clock)
    statuses = []
    response = None
    for _ in range(100):
        response = bitvavo.get("/balance")  # weight 5
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
    assert response is not None and response.status_code == 429
    assert loads(response.text)["errorCode"] == 110
    assert statuses.count(200) >= 4  # 20 weight of 5 each went through first
    banned = bitvavo.get("/time")
    assert banned.status_code == 403
    body = loads(banned.text)
    assert body["errorCode"] == 105
    match = re.search(r"The ban expires at (\d+)\.", body["error"])
    assert match, body["error"]
    expires = int(match.group(1))
    assert expires % WINDOW_MS == 0  # end of the window plus one more window
    assert WINDOW_MS <= expires - clock() * 1000 <= 2 * WINDOW_MS + 50
    assert banned.headers["bitvavo-ratelimit-remaining"] == "0"
    assert int(banned.headers["bitvavo-ratelimit-resetat"]) == expires
    # an unauthenticated call is counted per IP, which has its own budget and is not banned
    assert bitvavo.public("/markets").status_code == 200
    clock.set(expires / 1000 - 0.001)
    assert bitvavo.get("/time").status_code == 403  # not yet
    clock.set(expires / 1000 + 0.05)
    assert bitvavo.get("/time").status_code == 200  # the ban is over
    stats = loads(bitvavo.session.get(sandbox.bitvavo.stats_url).text)
    assert stats["rate_limited"] == 1 and stats["bans"] == 1 and stats["banned_requests"] >= 1


def test_bitvavo_unauthenticated_ban_is_per_ip_and_long(sandbox: Sandbox, clock: FakeClock):
    _, bitvavo = clients(sandbox)
    fresh_window(clock)
    codes = []
    for _ in range(100):
        response = bitvavo.public("/BTC-EUR/trades", {"limit": 1})
        codes.append(response.status_code)
        if response.status_code == 429:
            break
    assert codes[-1] == 429
    banned = bitvavo.public("/markets")
    assert banned.status_code == 403
    found = re.search(r"expires at (\d+)", loads(banned.text)["error"])
    assert found is not None
    expires = int(found.group(1))
    assert 900 * SCALE * 1000 - 500 <= expires - clock() * 1000 <= 900 * SCALE * 1000
    assert bitvavo.get("/time").status_code == 200  # the key's own budget is untouched


def test_bitstamp_rate_limit_gives_400_002(sandbox: Sandbox):
    bitstamp, _ = clients(sandbox)
    response = None
    for _ in range(400):
        response = bitstamp.get("/api/v2/markets/")
        if response.status_code != 200:
            break
    assert response is not None and response.status_code == 429
    body = loads(response.text)
    assert body == {"status": "error", "reason": "Rate limit exceeded", "response_code": "400.002"}
    stats = loads(bitstamp.session.get(sandbox.bitstamp.root_url + "/_sandbox/stats").text)
    assert stats["rate_limited"] >= 1 and stats["responses"]["429"] >= 1
