"""Sandbox speed: start-up with a year of history, and full-page round trips over loopback.

Run alone with `python -m benchmarks.sandbox_bench`. Cold pages walk back in time (every page is
new to the world's caches); warm pages repeat one request.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import requests

from pipelines.sandbox.server import start_sandbox
from pipelines.tables import render

NOW_MS = 1_711_843_200_000  # 2024-03-31T00:00:00Z
ROUNDS = 30


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _row(name: str, samples: list[float]) -> tuple[str, int, float, float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return name, len(samples), statistics.median(samples) * 1000, p90 * 1000, ordered[0] * 1000


def main() -> None:
    rows = []
    start = time.perf_counter()
    sandbox = start_sandbox(seed=1, days=365, now_ms=NOW_MS, rate_scale=1000.0)
    rows.append(_row("start_sandbox(days=365)", [time.perf_counter() - start]))
    with sandbox:
        session = requests.Session()
        stamp_url = f"{sandbox.bitstamp.base_url}/api/v2/ohlc/btceur/"
        vavo_url = f"{sandbox.bitvavo.base_url}/BTC-EUR/candles"

        def bitstamp_page(end_s: int) -> Callable[[], object]:
            def call() -> object:
                response = session.get(stamp_url, params={"step": 60, "limit": 1000, "end": end_s})
                assert response.status_code == 200 and response.text.count("timestamp") >= 999
                return response

            return call

        def bitvavo_page(end_ms: int) -> Callable[[], object]:
            def call() -> object:
                params: dict[str, str | int] = {"interval": "1m", "limit": 1440, "end": end_ms}
                response = session.get(vavo_url, params=params)
                assert response.status_code == 200
                return response

            return call

        now_s = NOW_MS // 1000
        cold = [_timed(bitstamp_page(now_s - 7 * 86400 - i * 60_000)) for i in range(ROUNDS)]
        warm_call = bitstamp_page(now_s - 3 * 86400 + 30)
        warm_call()
        warm = [_timed(warm_call) for _ in range(ROUNDS)]
        rows.append(_row("Bitstamp OHLC step=60 limit=1000 (cold)", cold))
        rows.append(_row("Bitstamp OHLC step=60 limit=1000 (warm)", warm))

        cold = [
            _timed(bitvavo_page(NOW_MS - 40 * 86_400_000 - i * 86_400_000)) for i in range(ROUNDS)
        ]
        warm_call = bitvavo_page(NOW_MS - 2 * 86_400_000)
        warm_call()
        warm = [_timed(warm_call) for _ in range(ROUNDS)]
        rows.append(_row("Bitvavo candles 1m limit=1440 (cold)", cold))
        rows.append(_row("Bitvavo candles 1m limit=1440 (warm)", warm))

    header = ("benchmark", "n", "median ms", "p90 ms", "min ms")
    table = [header, *((name, str(n), *(f"{ms:.1f}" for ms in times)) for name, n, *times in rows)]
    width = max(len(row[0]) for row in rows)  # the header's name may stick out
    fixed = {0: width, 1: 3, 2: 10, 3: 9, 4: 9}
    for line in render(table, right={1, 2, 3, 4}, fixed=fixed):
        print(line)


if __name__ == "__main__":
    main()
