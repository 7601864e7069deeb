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

from pipelines.config_file import write_config
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox_config import sandbox_document
from pipelines.tables import LiveTable

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
# VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across the exec)
status = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"rows": sum(result.rows.values()), "requests": result.requests,
                  "weight": result.weight, "retries": result.retries,
                  "peak_kib": int(status[0].split()[1]) if status else None}))
"""

CASES = (
    # (label, kind, exchange, market, days, page size, fewest requests: "pages" rows ÷ page
    # size; "days" at least one per 24 h window too (Bitvavo trades); "one" a rolling day)
    ("bitstamp 1m candles, 1 month", "candles", "bitstamp", "BTC-EUR", 30, 1000, "pages"),
    ("bitstamp 1m candles, 1 year", "candles", "bitstamp", "BTC-EUR", 365, 1000, "pages"),
    ("bitvavo 1m candles, 1 year", "candles", "bitvavo", "BTC-EUR", 365, 1440, "pages"),
    ("bitvavo public trades, 1 month", "trades", "bitvavo", "BTC-EUR", 30, 1000, "days"),
    ("bitstamp public trades, rolling day", "trades", "bitstamp", "BTC-EUR", 1, 1000, "one"),
)


def _minimum(fewest: str, rows: int, page: int, days: int) -> int:
    """The fewest requests that could land `rows` (see `CASES`)."""
    if fewest == "one":
        return 1
    pages = math.ceil(rows / page) if rows else 1
    return max(pages, days) if fewest == "days" else pages


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
    peak_kib = result.pop("peak_kib")  # None where there is no /proc: ru_maxrss, an upper bound
    result.update(seconds=elapsed, peak_rss_mib=(peak_kib or usage.ru_maxrss) / 1024)
    return result


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        start_sandbox(seed=1, days=370, now_ms=NOW_MS) as sandbox,
    ):
        table = LiveTable(
            ("case", "rows", "requests", "minimum", "seconds", "rows/s", "peak RSS MiB")
        )
        for label, kind, exchange, market, days, page, fewest in CASES:
            case_dir = Path(scratch) / label.replace(" ", "_").replace(",", "")
            case_dir.mkdir()
            config = case_dir / "tally.toml"
            document = sandbox_document(sandbox)
            document["data_dir"] = "."  # its own lake: this directory
            write_config(config, document)
            result = _run_case(config, kind, exchange, market, days)
            minimum = _minimum(fewest, result["rows"], page, days)
            table.add(
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
    table.print_aligned()


if __name__ == "__main__":
    main()
