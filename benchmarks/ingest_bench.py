"""Ingestion speed: landing from memory, backfills over the sandbox, and ccxt beside them.

- **landing**: a year of 1-minute candle pages per exchange, recorded once from a sandbox, then
  decoded, parsed, typed and landed in a child process as the candles flow lands them
  (`benchmarks.landing_replay`): rows landed per CPU-second, peak RSS.
- **backfill**: the candles flow over the sandbox (real HTTP, real rate limits), a year of
  1-minute candles per exchange, each in its own process: requests against the fewest that could
  fetch the span, wall and CPU seconds (the sync alone, imports excluded), the rate-limit floor
  (the fewest requests at the documented sustained rate: Bitstamp 10,000 per 10 minutes,
  Bitvavo 1000 weight per minute), peak RSS; and ccxt's own backfill of the same span
  (`benchmarks.ccxt_backfill`).
- more cases (a month of candles, Bitvavo public trades for a month, Bitstamp's rolling day)
  in the printed table: peak RSS must not grow with history length.
- **trades**: Bitvavo BTC-EUR public trades over 30 days, on a sandbox of their own whose rate
  budgets are scaled up (`TRADES_RATE_SCALE`: the same sustained rate, a budget the month never
  exhausts, so wall time is the walk's own). The span is the public-trades flow's: from 30 days
  before the world's frozen clock to the last whole minute at least `SETTLE` old. tally's flow
  runs in a child process like the cases: distinct trades landed (the Parquet files read back,
  distinct on `trade_id`), requests, CPU seconds of the sync alone (imports excluded), CPU
  microseconds per trade, peak RSS. `truth` is the number of trades the sandbox's world holds
  in the span (`Market.trades`), `lost` the number of those whose id was not landed (0 expected;
  `trades == truth` as well when nothing foreign was landed). ccxt's own paginated
  `fetch_trades` walks the same span on yet another sandbox (`benchmarks.ccxt_trades`): its
  distinct trades in the span, `lost` against the same truth, requests (its market listing
  included) and CPU seconds. Trades sharing a millisecond across one of its page boundaries are
  what it loses.

Run alone with `python -m benchmarks.ingest_bench [--json FILE]`; `--json` writes
`{"landing": {"bitstamp": {"rows_per_cpu_s": …, "peak_rss_mb": …}, "bitvavo": {…}},
"backfill": {"bitstamp": {"requests": …, "min_requests": …, "wall_s": …, "cpu_s": …,
"floor_s": …, "ccxt": {…}}, "bitvavo": {…}}, "cases": [...],
"trades": {"bitvavo": {"trades": …, "truth": …, "lost": …, "requests": …, "cpu_s": …,
"cpu_us_per_trade": …, "peak_rss_mb": …, "ccxt": {"trades": …, "lost": …, "requests": …,
"cpu_s": …}}}}`.

The sandbox counts Bitvavo's candle `limit` in intervals (whether the exchange counts rows or
intervals is not documented; the walk is right either way), so a year of 1-minute candles takes
at least 365 pages of 1440 there, whatever the hours without trades.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.landing_replay import record
from pipelines.config_file import write_config
from pipelines.flows.chunks import SETTLE
from pipelines.flows.plan import final_cutoff
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox_config import sandbox_document
from pipelines.tables import LiveTable

NOW_MS = 1_711_843_200_000  # 2024-03-31T00:00:00Z

CHILD = """
import json, sys, time
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
began, wall = time.process_time(), time.perf_counter()
if kind == "candles":
    result = sync_candles(rt, exchange, market, "1m", Window(start, now))
else:
    result = sync_public_trades(rt, exchange, market, since=start)
cpu, wall = time.process_time() - began, time.perf_counter() - wall
# VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across the exec)
status = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"rows": sum(result.rows.values()), "requests": result.requests,
                  "weight": result.weight, "retries": result.retries, "cpu_s": cpu, "wall_s": wall,
                  "peak_kib": int(status[0].split()[1]) if status else None}))
"""

CASES = (
    # (label, kind, exchange, market, days, page size, fewest requests: "pages" rows ÷ page
    # size; "windows" one per page of `page size` minutes (Bitvavo candles, limit counted in
    # intervals); "days" at least one per 24 h window too (Bitvavo trades); "one" a rolling day)
    ("bitstamp 1m candles, 1 month", "candles", "bitstamp", "BTC-EUR", 30, 1000, "pages"),
    ("bitstamp 1m candles, 1 year", "candles", "bitstamp", "BTC-EUR", 365, 1000, "pages"),
    ("bitvavo 1m candles, 1 year", "candles", "bitvavo", "BTC-EUR", 365, 1440, "windows"),
    ("bitvavo public trades, 1 month", "trades", "bitvavo", "BTC-EUR", 30, 1000, "days"),
    ("bitstamp public trades, rolling day", "trades", "bitstamp", "BTC-EUR", 1, 1000, "one"),
)
# the year-long candle backfills, by exchange: the "backfill" figures
BACKFILLS = {"bitstamp": "bitstamp 1m candles, 1 year", "bitvavo": "bitvavo 1m candles, 1 year"}
LANDING_DAYS = 365
# the documented sustained rates, in requests (weight 1 each) per second
SUSTAINED_RATE = {"bitstamp": 10_000 / 600, "bitvavo": 1000 / 60}
TRADES_DAYS = 30
TRADES_MARKET = "BTC-EUR"
# budgets and windows x100: the same sustained rate, a budget a month of trades never exhausts
TRADES_RATE_SCALE = 100.0
DAY_MS = 86_400_000
ONE_MS = timedelta(milliseconds=1)


def _minimum(fewest: str, rows: int, page: int, days: int) -> int:
    """The fewest requests that could land `rows` (see `CASES`)."""
    if fewest == "one":
        return 1
    if fewest == "windows":
        return math.ceil(days * 1440 / page)
    pages = math.ceil(rows / page) if rows else 1
    return max(pages, days) if fewest == "days" else pages


def _child(what: str, args: list[str]) -> dict[str, Any]:
    """Run `python args…` in a child process: its last line of output as JSON, with its wall
    seconds (start-up and imports included) as `seconds`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = elapsed
    return result


def _run_case(config: Path, kind: str, exchange: str, market: str, days: int) -> dict[str, Any]:
    args = ["-c", CHILD, str(config), kind, exchange, market, str(days)]
    result = _child(f"{kind} {exchange} {days} days", args)
    peak_kib = result.pop("peak_kib")
    result["peak_rss_mb"] = peak_kib / 1024 if peak_kib else float("nan")
    return result


def _case_config(sandbox: Sandbox, case_dir: Path) -> Path:
    """A tally.toml in a new `case_dir` pointing at `sandbox`, its lake in that directory."""
    case_dir.mkdir()
    config = case_dir / "tally.toml"
    document = sandbox_document(sandbox)
    document["data_dir"] = "."  # its own lake: this directory
    write_config(config, document)
    return config


def landing(scratch: Path) -> dict[str, dict[str, float]]:
    """Rows landed per CPU-second from recorded pages (`benchmarks.landing_replay`)."""
    figures = {}
    with start_sandbox(seed=1, days=LANDING_DAYS + 5, now_ms=NOW_MS) as sandbox:
        recorded = {
            exchange: record(sandbox, exchange, "BTC-EUR", days=LANDING_DAYS, now_s=NOW_MS // 1000)
            for exchange in ("bitstamp", "bitvavo")
        }
    for exchange, bodies in recorded.items():
        pages = scratch / f"{exchange}-pages.pickle"
        pages.write_bytes(pickle.dumps(bodies))
        args = ["-m", "benchmarks.landing_replay", str(pages), exchange, "BTC-EUR"]
        result = _child(f"landing {exchange}", args)
        figures[exchange] = {
            "rows": result["rows"],
            "pages": len(bodies),
            "cpu_s": result["cpu_s"],
            "rows_per_cpu_s": result["rows"] / result["cpu_s"],
            "peak_rss_mb": result["peak_rss_mb"] or float("nan"),
        }
    return figures


def backfill(case: Mapping[str, Any], ccxt: Mapping[str, Any], exchange: str) -> dict[str, Any]:
    """The "backfill" figures of one exchange's year of 1-minute candles."""
    floor = case["minimum"] / SUSTAINED_RATE[exchange]
    return {
        "rows": case["rows"],
        "requests": case["requests"],
        "min_requests": case["minimum"],
        "wall_s": case["wall_s"],
        "cpu_s": case["cpu_s"],
        "floor_s": floor,
        "wall_over_floor": case["wall_s"] / floor,
        "peak_rss_mb": case["peak_rss_mb"],
        "ccxt": {key: ccxt[key] for key in ("rows", "requests", "wall_s", "cpu_s")},
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        landed = landing(scratch)
        report_landing(landed)
        cases: list[dict[str, Any]] = []
        with start_sandbox(seed=1, days=370, now_ms=NOW_MS) as sandbox:
            table = LiveTable(
                ("case", "rows", "requests", "minimum", "seconds", "CPU s", "rows/s", "peak MiB")
            )
            for label, kind, exchange, market, days, page, fewest in CASES:
                config = _case_config(sandbox, scratch / label.replace(" ", "_").replace(",", ""))
                result = _run_case(config, kind, exchange, market, days)
                result.update(label=label, minimum=_minimum(fewest, result["rows"], page, days))
                cases.append(result)
                table.add(
                    (
                        label,
                        str(result["rows"]),
                        str(result["requests"]),
                        str(result["minimum"]),
                        f"{result['seconds']:.1f}",
                        f"{result['cpu_s']:.1f}",
                        f"{result['rows'] / result['seconds']:.0f}",
                        f"{result['peak_rss_mb']:.0f}",
                    )
                )
            table.print_aligned()
        by_label = {case["label"]: case for case in cases}
        backfills = {}
        # ccxt on a sandbox of its own (the same world): none of tally's budget is spent there
        with start_sandbox(seed=1, days=370, now_ms=NOW_MS) as sandbox:
            info = scratch / "sandbox.json"
            info.write_text(json.dumps(sandbox.info()), encoding="utf-8")
            for exchange, label in BACKFILLS.items():
                args = ["-m", "benchmarks.ccxt_backfill", str(info), exchange, "365", str(NOW_MS)]
                theirs = _child(f"ccxt {exchange}", args)
                backfills[exchange] = backfill(by_label[label], theirs, exchange)
        traded = trades(scratch)
    return {"landing": landed, "backfill": backfills, "cases": cases, "trades": traded}


def trade_span(now_ms: int, days: int) -> tuple[int, int]:
    """`[start, end)` in ms of the public-trades flow's sync of `days` at `now_ms`: from `days`
    before it to the last whole minute at least `SETTLE` old (the flow's final cutoff)."""
    epoch = datetime.fromtimestamp(0, UTC)
    end = final_cutoff(epoch + now_ms * ONE_MS, "1m", SETTLE)
    return now_ms - days * DAY_MS, (end - epoch) // ONE_MS


def _trades_sandbox(days: int) -> Sandbox:
    # the world's account window (`days`) does not shape the market's tape
    return start_sandbox(seed=1, days=days + 5, now_ms=NOW_MS, rate_scale=TRADES_RATE_SCALE)


def truth_ids(sandbox: Sandbox, start_ms: int, end_ms: int) -> set[str]:
    """The ids of the trades the sandbox's world holds in `[start_ms, end_ms)`."""
    market = sandbox.world.market("bitvavo", TRADES_MARKET)
    return {market.trade_uuid(trade) for trade in market.trades(start_ms, end_ms)}


def landed_ids(data_dir: Path) -> set[str]:
    """The distinct trade ids of the public-trades Parquet files of `data_dir`'s lake."""
    files = sorted(data_dir.glob("lake/public_trades/**/*.parquet"))
    if not files:
        return set()
    frame = pl.read_parquet(files, columns=["trade_id"], hive_partitioning=False)
    return set(frame["trade_id"].unique().to_list())


def _ccxt_trades(
    sandbox: Sandbox, work: Path, start_ms: int, end_ms: int
) -> tuple[dict[str, Any], set[str]]:
    """`benchmarks.ccxt_trades` over `sandbox`: its figures and the ids it returned."""
    work.mkdir()
    info, ids = work / "sandbox.json", work / "ids.txt"
    info.write_text(json.dumps(sandbox.info()), encoding="utf-8")
    args = ["-m", "benchmarks.ccxt_trades", str(info), str(start_ms), str(end_ms), str(ids)]
    result = _child("ccxt bitvavo trades", args)
    return result, set(ids.read_text(encoding="utf-8").split())


def _us_per_trade(cpu_s: float, trades: int) -> float:
    return cpu_s / trades * 1e6 if trades else float("nan")


def trades(scratch: Path, days: int = TRADES_DAYS) -> dict[str, Any]:
    """The "trades" figures: tally's public-trades flow and ccxt over `days` of Bitvavo public
    trades, each on a sandbox of its own, against the trades the sandbox's world holds."""
    with _trades_sandbox(days) as sandbox:
        start_ms, end_ms = trade_span(sandbox.world.now_ms(), days)
        config = _case_config(sandbox, scratch / "trades_tally")
        ours = _run_case(config, "trades", "bitvavo", TRADES_MARKET, days)
        truth = truth_ids(sandbox, start_ms, end_ms)  # after the run: its sandbox starts cold
    landed = landed_ids(config.parent)
    with _trades_sandbox(days) as sandbox:
        theirs, returned = _ccxt_trades(sandbox, scratch / "trades_ccxt", start_ms, end_ms)
    figures = {
        "trades": len(landed),
        "truth": len(truth),
        "lost": len(truth - landed),
        "requests": ours["requests"],
        "cpu_s": ours["cpu_s"],
        "cpu_us_per_trade": _us_per_trade(ours["cpu_s"], len(landed)),
        "peak_rss_mb": ours["peak_rss_mb"],
        "ccxt": {
            "trades": len(returned),
            "lost": len(truth - returned),
            "requests": theirs["requests"],
            "cpu_s": theirs["cpu_s"],
        },
    }
    return {"bitvavo": figures}


def report_landing(landed: Mapping[str, Mapping[str, float]]) -> None:
    table = LiveTable(("landing from memory", "rows", "CPU s", "rows/CPU-s", "peak MiB"))
    for exchange, figures in landed.items():
        table.add(
            (
                f"{exchange} 1m candles, {LANDING_DAYS} days",
                f"{figures['rows']:.0f}",
                f"{figures['cpu_s']:.2f}",
                f"{figures['rows_per_cpu_s']:,.0f}",
                f"{figures['peak_rss_mb']:.0f}",
            )
        )
    table.print_aligned()


def report_backfill(backfills: Mapping[str, Mapping[str, Any]]) -> None:
    table = LiveTable(
        ("1-year 1m backfill", "requests", "minimum", "wall s", "floor s", "CPU s", "ccxt CPU s")
    )
    for exchange, figures in backfills.items():
        table.add(
            (
                exchange,
                str(figures["requests"]),
                str(figures["min_requests"]),
                f"{figures['wall_s']:.1f}",
                f"{figures['floor_s']:.1f}",
                f"{figures['cpu_s']:.1f}",
                f"{figures['ccxt']['cpu_s']:.1f}",
            )
        )
    table.print_aligned()


def report_trades(traded: Mapping[str, Mapping[str, Any]]) -> None:
    table = LiveTable(
        (
            f"public trades, {TRADES_DAYS} days",
            "trades",
            "truth",
            "lost",
            "requests",
            "CPU s",
            "CPU µs/trade",
            "peak MiB",
        )
    )
    for exchange, ours in traded.items():
        peak = f"{ours['peak_rss_mb']:.0f}"
        for who, figures, rss in (("tally", ours, peak), ("ccxt", ours["ccxt"], "-")):
            table.add(
                (
                    f"{exchange} {who}",
                    str(figures["trades"]),
                    str(ours["truth"]),
                    str(figures["lost"]),
                    str(figures["requests"]),
                    f"{figures['cpu_s']:.2f}",
                    f"{_us_per_trade(figures['cpu_s'], figures['trades']):.1f}",
                    rss,
                )
            )
    table.print_aligned()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(argv)
    result = run()
    report_backfill(result["backfill"])
    report_trades(result["trades"])
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
