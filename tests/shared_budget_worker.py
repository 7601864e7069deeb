"""One sync process for tests/test_shared_budget.py (not a test module).

    python tests/shared_budget_worker.py CONFIG MODE INTERVAL DAYS MARKET [MARKET ...]

Loads CONFIG and builds a `Runtime` — MODE `shared`: the default limiters, shared through the
budget directory; `process`: a `RequestBudget` of this process alone, with the config's pacing
(how every sync paced before budgets were shared). Prints `ready`, reads a start time (epoch
seconds) from stdin and sleeps until then, syncs the Bitstamp candles of INTERVAL of each
MARKET over the last DAYS days, and prints one JSON line: the requests and retries it made and
the wall-clock times it started and finished.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

from pipelines.config import load_settings
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.runtime import Runtime
from pipelines.http import Limiter, RequestBudget


def main(config: str, mode: str, interval: str, days: str, *markets: str) -> None:
    settings = load_settings(config)
    limiters: dict[str, Limiter] = {}
    if mode == "process":
        pacing = settings.exchange("bitstamp")
        limiters["bitstamp"] = RequestBudget(
            pacing.requests_per_window, pacing.window_seconds, pacing.max_requests_per_second
        )
    elif mode != "shared":
        raise SystemExit(f"unknown mode {mode!r}")
    rt = Runtime(settings, limiters=limiters)
    now = rt.now()
    span = Window(now - timedelta(days=int(days)), now)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    requests = retries = 0
    for market in markets:
        result = sync_candles(rt, "bitstamp", market, interval, span)
        requests += result.requests
        retries += result.retries
    finished = time.time()
    rt.close()
    report = {"requests": requests, "retries": retries, "started": started, "finished": finished}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
