"""ccxt's walk over a span of Bitvavo BTC-EUR public trades, for comparison: what a ccxt user
calls, `fetch_trades("BTC/EUR", since, params={"paginate": True, "until": …})`, in this process
against a sandbox: distinct trades in the span, requests (its market listing included), wall and
CPU seconds (imports excluded), and the ids of those trades written to a file, one a line, for
the caller to hold against the sandbox's world.

    python -m benchmarks.ccxt_trades SANDBOX_INFO_FILE START_MS END_MS IDS_FILE   # one JSON line

ccxt's own pagination (`fetch_paginated_call_dynamic`, backwards by default) asks Bitvavo for the
newest 1000 trades up to `end` (no `start`: Bitvavo then serves the 24 h before `end`), then for
the 1000 up to the oldest timestamp of that page minus 1 ms, until a page reaches `since`. The
trades of a page's oldest millisecond that did not fit in the page are never asked for again.
ccxt keeps the trades as Python dicts: it lands nothing, so its CPU is a floor for fetching
alone, not for landing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.ccxt_backfill import exchange_for

PAGE = 1000  # Bitvavo's largest trades page (ccxt's default `maxEntriesPerRequest` too)
MAX_CALLS = 1_000_000  # ccxt stops after `paginationCalls` pages (default 10): never here


def walk(client: Any, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """The trades ccxt returns for `[start_ms, end_ms)` (its market listing loaded first)."""
    client.load_markets()
    params = {
        "paginate": True,
        "paginationCalls": MAX_CALLS,
        "maxEntriesPerRequest": PAGE,
        # sent as Bitvavo's `end`, which ccxt's own paging reads as inclusive (it asks for the
        # next page up to the oldest timestamp seen minus 1 ms)
        "until": end_ms - 1,
    }
    trades: list[dict[str, Any]] = client.fetch_trades("BTC/EUR", since=start_ms, params=params)
    return trades


def distinct_ids(trades: list[dict[str, Any]], start_ms: int, end_ms: int) -> set[str]:
    """The ids of the trades with `start_ms <= timestamp < end_ms`."""
    return {trade["id"] for trade in trades if start_ms <= trade["timestamp"] < end_ms}


def main(argv: list[str] | None = None) -> None:
    info_file, start, end, ids_file = argv if argv is not None else sys.argv[1:5]
    start_ms, end_ms = int(start), int(end)
    info = json.loads(Path(info_file).read_text(encoding="utf-8"))
    client = exchange_for("bitvavo", info)
    began, cpu = time.perf_counter(), time.process_time()
    trades = walk(client, start_ms, end_ms)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    ids = distinct_ids(trades, start_ms, end_ms)
    Path(ids_file).write_text("".join(f"{trade_id}\n" for trade_id in sorted(ids)), "utf-8")
    result = {"trades": len(ids), "requests": client.requests_sent, "wall_s": wall, "cpu_s": cpu}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
