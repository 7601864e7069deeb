"""Memory: a 1-minute candle backfill's peak RSS stays flat in the length of the history.

One sandbox serves two backfills of Bitstamp 1-minute candles, two months and six, each
in a fresh child process with its own data dir; each child reports its own peak RSS (`VmHWM` in
/proc/self/status, the high-water mark of the memory `exec` gave it; not `ru_maxrss` from
`os.wait4`, which Linux carries over `exec` from the forking process, so that a child of a big
test process would report the test process's size). A stream that lands chunk by chunk holds
one calendar month at a time whatever the span, so six months cost what two months cost;
one that held the whole history before landing needs at least `whole_history_floor` bytes more,
and the test allows only half of that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import CANDLES
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox_config import sandbox_document

NOW = datetime(2024, 3, 31, tzinfo=UTC)
# Spans [start, end). Both contain a whole 31-day month, the largest chunk either one holds, so
# a chunked stream's peak is the same chunk's in both (a chunk's working set is ~2–3 KB per
# row here: records, pages, frames; 1,441 rows more would already be ~4 MiB). Both hold more
# than one chunk: the second chunk does not reuse all the memory the first one freed (the
# process's RSS steps up once, by ~45 MiB, then stays put: measured 196 MiB after one month,
# 244 after two, 239 after six), so one month alone is no baseline.
TWO_MONTHS = (datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
# Six month chunks, October to March. A year shows the same but takes ~30–40 s on 2 shared
# cores instead of ~15 s: the sandbox builds every 1-minute candle from its trade tape.
SIX_MONTHS = (datetime(2023, 10, 1, tzinfo=UTC), NOW)
MINUTE = timedelta(minutes=1)
SETTLE = timedelta(seconds=60)
MARKET = "BTC-EUR"
REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_SECONDS = 150  # a hung child is killed rather than hanging the suite
MIB = 1024 * 1024

# Bytes per candle that any whole-history implementation must hold until it lands the row: the
# typed columns (open_time and fetched_at 8 B each, open/high/low/close/volume as Decimal128
# 16 B each = 96 B) plus the row's raw JSON text, which the lake keeps. A Bitstamp candle's raw
# text is six quoted fields, e.g. {"timestamp":"1709251200","open":"56591","high":"56591",
# "low":"56591","close":"56591","volume":"0.02025786"} = 108 B; counted here as 100 B. Python
# `Candle` records (a Decimal is ~100 B alone) cost several times more, so this is a floor.
MIN_BYTES_PER_CANDLE = 96 + 100

CHILD = """
import json, sys
from datetime import datetime
from pipelines.config import load_settings
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.runtime import Runtime

config, start, end, out = sys.argv[1:5]
rt = Runtime(load_settings(config))
span = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
result = sync_candles(rt, "bitstamp", "BTC-EUR", "1m", span)
rt.close()
with open("/proc/self/status", encoding="utf-8") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))  # KiB
with open(out, "w", encoding="utf-8") as handle:
    json.dump({"rows": result.rows, "windows": result.windows, "peak_kib": peak}, handle)
"""

Span = tuple[datetime, datetime]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Backfill:
    """What one child reported and what it cost."""

    lake: Lake
    rows: dict[str, int]
    windows: int
    peak_rss: int  # bytes
    seconds: float


def landed_end(span: Span) -> datetime:
    """The end of the span's final candles: a 1-minute candle opening at t closes at t + 1 min
    and is final a minute later, so it is landed iff t + 2 min <= now."""
    return min(span[1], NOW - SETTLE)


def expected_minutes(span: Span) -> int:
    """One Bitstamp candle per minute (it fills minutes without trades) of the span."""
    return (landed_end(span) - span[0]) // MINUTE


def whole_history_floor(long: Span, short: Span) -> int:
    """Bytes a backfill of `long` holding every row at once needs beyond a chunked backfill of
    `short`: the extra rows at the compact floor per row."""
    return (expected_minutes(long) - expected_minutes(short)) * MIN_BYTES_PER_CANDLE


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # The market's trades must start before both spans, so that every minute of them is filled.
    days = (NOW - SIX_MONTHS[0]).days + 5
    with start_sandbox(seed=1, days=days, now_ms=ms(NOW)) as running:
        yield running


def run_backfill(sandbox: Sandbox, root: Path, span: Span) -> Backfill:
    """Backfill `span` in a fresh child process, with its own data dir under `root`."""
    root.mkdir(parents=True)
    config = root / "tally.toml"  # data_dir "data" is relative to the config's directory
    write_config(config, sandbox_document(sandbox))
    out = root / "result.json"
    arguments = [str(config), span[0].isoformat(), span[1].isoformat(), str(out)]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", CHILD, *arguments], cwd=REPO_ROOT)
    try:
        process.wait(timeout=CHILD_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    seconds = time.perf_counter() - started
    assert process.returncode == 0, f"backfill of {span} exited with {process.returncode}"
    reported = json.loads(out.read_text(encoding="utf-8"))
    return Backfill(
        lake=Lake(load_settings(config).lake_dir),
        rows=reported["rows"],
        windows=reported["windows"],
        peak_rss=reported["peak_kib"] * 1024,
        seconds=seconds,
    )


def assert_every_minute_landed(backfill: Backfill, span: Span, traded: int | None = None) -> None:
    """The child landed one candle per minute of its span, each once, and reported them; the
    minutes with volume are the world's `traded` minutes (when given)."""
    expected = expected_minutes(span)
    held = (
        backfill.lake.scan(CANDLES.dataset, exchange="bitstamp", market=MARKET, interval="1m")
        .select(
            pl.len().alias("rows"),
            pl.col("open_time").n_unique().alias("distinct"),
            pl.col("open_time").min().alias("first"),
            pl.col("open_time").max().alias("last"),
            (pl.col("volume") > 0).sum().alias("traded"),
        )
        .collect()
        .row(0, named=True)
    )
    assert held["rows"] == held["distinct"] == expected
    assert (held["first"], held["last"]) == (span[0], landed_end(span) - MINUTE)
    assert held["traded"] > expected // 2, "mostly flat filler candles: not the world's series"
    if traded is not None:
        assert held["traded"] == traded
    assert backfill.rows == {"candles": expected}


@pytest.mark.slow
def test_peak_rss_is_flat_in_history_length(sandbox: Sandbox, tmp_path: Path) -> None:
    market = sandbox.world.market("bitstamp", "btceur")
    first = SIX_MONTHS[0]
    assert market.trades(ms(first - timedelta(days=1)), ms(first)), "history starts too late"

    two = run_backfill(sandbox, tmp_path / "two-months", TWO_MONTHS)
    six = run_backfill(sandbox, tmp_path / "six-months", SIX_MONTHS)
    # The world's traded minutes of the two months (the six months' would take longer).
    tape = market.candles(60, ms(TWO_MONTHS[0]), ms(TWO_MONTHS[1]))
    assert_every_minute_landed(two, TWO_MONTHS, traded=len(tape))
    assert_every_minute_landed(six, SIX_MONTHS)
    assert (two.windows, six.windows) == (2, 6)  # one file per calendar month

    floor = whole_history_floor(SIX_MONTHS, TWO_MONTHS)  # 172,799 rows x 196 B = ~32.3 MiB
    margin = floor // 2
    growth = six.peak_rss - two.peak_rss
    report = (
        f"peak RSS: two months {two.peak_rss / MIB:.0f} MiB ({two.seconds:.0f} s), "
        f"six months {six.peak_rss / MIB:.0f} MiB ({six.seconds:.0f} s), "
        f"growth {growth / MIB:.1f} MiB, margin {margin / MIB:.1f} MiB "
        f"(whole-history floor {floor / MIB:.1f} MiB)"
    )
    print(report)
    assert growth < margin, report
