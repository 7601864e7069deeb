"""One sync process for tests/test_shared_budget.py (not a test module).

    python tests/shared_budget_worker.py CONFIG INTERVAL DAYS MARKET [MARKET ...]

Loads CONFIG and builds a `Runtime` with the default Bitstamp limiter (shared through the
budget directory), and syncs the Bitstamp candles of INTERVAL of each MARKET over the last DAYS
days. Its second request is held: it prints `waiting`, reads a start time (epoch seconds) from
stdin and sleeps until then, so that the processes a test lets go together have all sent one
request and are all ready to send more. Prints one JSON line: the requests and retries it made,
and when its limiter granted the first and the last of them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from datetime import timedelta

from pipelines.config import load_settings
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.runtime import Runtime
from pipelines.http import Limiter


class HoldSecond(Limiter):
    """`limiter`, with the second request held until the start time read from stdin."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.granted: list[float] = []
        self._held = False
        self._lock = threading.Lock()

    def acquire(self, weight: int = 1) -> None:
        with self._lock:
            if self.granted and not self._held:
                self._held = True
                print("waiting", flush=True)
                start_at = float(sys.stdin.readline())
                time.sleep(max(0.0, start_at - time.time()))
        self.limiter.acquire(weight)
        with self._lock:
            self.granted.append(time.time())

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        self.limiter.observe(headers, weight)

    def block_until(self, epoch_seconds: float) -> None:
        self.limiter.block_until(epoch_seconds)


def main(config: str, interval: str, days: str, *markets: str) -> None:
    settings = load_settings(config)
    bitstamp = settings.exchange("bitstamp")
    gate = HoldSecond(Runtime(settings).shared_budget(bitstamp))
    rt = Runtime(settings, limiters={"bitstamp": gate})
    now = rt.now()
    span = Window(now - timedelta(days=int(days)), now)
    requests = retries = 0
    for market in markets:
        result = sync_candles(rt, "bitstamp", market, interval, span)
        requests += result.requests
        retries += result.retries
    rt.close()
    report = {
        "requests": requests,
        "retries": retries,
        "first": min(gate.granted),
        "last": max(gate.granted),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
