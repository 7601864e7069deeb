"""Ingestion speed: a year of 1-minute candles and a month of public trades per exchange.

Each case runs in its own process against one sandbox (real rate limits), so its peak RSS is
its own. Reported: rows landed, requests used vs the minimum possible (rows ÷ page size, and
for Bitvavo trades at least one request per 24 h window), wall time, rows per second, peak RSS.
A one-month 1-minute backfill runs too: peak RSS must not grow with history length.

Run alone with `python -m benchmarks.ingest_bench`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.cli import sandbox_config
from pipelines.sandbox.server import start_sandbox
from pipelines.tables import render

NOW_MS = 1_711_843_200_000  # 2024-03-31T00:00:00Z

CHILD = """
import json, sys
from datetime import UTC, datetime, timedelta
from pipelines.config import load_settings
from pipelines.flows.runtime import Runtime
from pipelines.flows.plan import Window
from pipelines.flows.candles import sync_candles
from pipelines.flows.public_trades import sync_public_trades

config, kind, exchange, market, days = sys.argv[1:6]
rt = Runtime(load_settings(config))
now = rt.now()
start = now - timedelta(days=int(days))
if kind == "candles":
    result = sync_candles(rt, exchange, market, "1m", Window(start, now))
else:
    result = sync_public_trades(rt, exchange, market, since=start)
print(json.dumps({"rows": sum(result.rows.values()), "requests": result.requests,
                  "weight": result.weight, "retries": result.retries}))
"""

CASES = (
    # (label, kind, exchange, market, days, page size)
    ("bitstamp 1m candles, 1 month", "candles", "bitstamp", "BTC-EUR", 30, 1000),
    ("bitstamp 1m candles, 1 year", "candles", "bitstamp", "BTC-EUR", 365, 1000),
    ("bitvavo 1m candles, 1 year", "candles", "bitvavo", "BTC-EUR", 365, 1440),
    ("bitvavo public trades, 1 month", "trades", "bitvavo", "BTC-EUR", 30, 1000),
    ("bitstamp public trades, rolling day", "trades", "bitstamp", "BTC-EUR", 1, 1000),
)


def _run_case(config: Path, kind: str, exchange: str, market: str, days: int) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), kind, exchange, market, str(days)],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    output = process.stdout.read() if process.stdout else ""
    if status != 0:
        raise RuntimeError(f"{kind} {exchange} failed with status {status}")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(seconds=elapsed, peak_rss_mib=usage.ru_maxrss / 1024)
    return result


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        start_sandbox(seed=1, days=370, now_ms=NOW_MS) as sandbox,
    ):
        header = ("case", "rows", "requests", "minimum", "seconds", "rows/s", "peak RSS MiB")
        table = [header]
        for label, kind, exchange, market, days, page in CASES:
            case_dir = Path(scratch) / label.replace(" ", "_").replace(",", "")
            case_dir.mkdir()
            config = case_dir / "tally.toml"  # its own lake: data_dir "." is this directory
            config.write_text(
                sandbox_config(sandbox).replace('data_dir = "data"', 'data_dir = "."')
            )
            result = _run_case(config, kind, exchange, market, days)
            minimum = math.ceil(result["rows"] / page) if result["rows"] else 1
            if kind == "trades" and exchange == "bitvavo":
                minimum = max(minimum, days)
            if kind == "trades" and exchange == "bitstamp":
                minimum = 1
            table.append(
                (
                    label,
                    str(result["rows"]),
                    str(result["requests"]),
                    str(minimum),
                    f"{result['seconds']:.1f}",
                    f"{result['rows'] / result['seconds']:.0f}",
                    f"{result['peak_rss_mib']:.0f}",
                )
            )
            print("  ".join(table[-1]), flush=True)
    print()
    for line in render(table):
        print(line)


if __name__ == "__main__":
    main()
