"""Landing from memory: a year of 1-minute candle pages, recorded once from the sandbox, then
read, typed and landed in this process as the candles flow does it, with no network (the
exchange's reader of the body, else the client's `decode_body` and the parser; then
`chunks.land_plan` a month of candles at a time): rows landed per CPU-second, and the process's
peak RSS.

    pages = record(sandbox, "bitstamp", "BTC-EUR", days=365, now_s=...)  # in the benchmark
    python -m benchmarks.landing_replay PAGES_FILE bitstamp BTC-EUR    # one JSON line

The CPU time is that of the replay alone: imports and a warm-up page come before it.
"""

from __future__ import annotations

import json
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from pipelines.sandbox.server import Sandbox

MINUTE = 60
BITSTAMP_PAGE = 1000  # candles per OHLC page
BITVAVO_PAGE = 1440
MONTH_OF_MINUTES = 30 * 24 * 60


def record(sandbox: Sandbox, exchange: str, market: str, *, days: int, now_s: int) -> list[bytes]:
    """The response bodies of `days` of 1-minute candles up to `now_s`, newest page first, as
    a backfill asks for them (pages of the exchange's largest size, walking back by `end`)."""
    bodies = []
    start = now_s - days * 86_400
    with requests.Session() as session:
        if exchange == "bitstamp":
            pair = market.replace("-", "").lower()
            end = now_s - MINUTE  # the newest closed candle
            while end >= start:
                bodies.append(
                    _get(
                        session,
                        f"{sandbox.bitstamp.base_url}/api/v2/ohlc/{pair}/",
                        {"step": MINUTE, "limit": BITSTAMP_PAGE, "end": end},
                    )
                )
                end -= BITSTAMP_PAGE * MINUTE
        else:
            end_ms = now_s * 1000
            while end_ms > start * 1000:
                bodies.append(
                    _get(
                        session,
                        f"{sandbox.bitvavo.base_url}/{market}/candles",
                        {"interval": "1m", "limit": BITVAVO_PAGE, "end": end_ms},
                    )
                )
                end_ms -= BITVAVO_PAGE * MINUTE * 1000
    return bodies


def _get(session: requests.Session, url: str, params: dict[str, Any]) -> bytes:
    response = session.get(url, params=params, timeout=30)
    response.raise_for_status()
    return response.content


def replay(bodies: Sequence[bytes], exchange: str, market: str, lake_dir: Path) -> int:
    """Land the candles of `bodies` (newest page first) into the lake at `lake_dir`; the rows
    landed."""
    from pipelines import http
    from pipelines.datasets import CANDLES
    from pipelines.exchanges import bitstamp_parse, bitvavo_parse
    from pipelines.exchanges.paging import Page
    from pipelines.flows.chunks import land_plan
    from pipelines.flows.plan import ChunkPlan, Window
    from pipelines.lake import Lake

    read: Callable[[bytes], Sequence[Any] | None]
    parse: Callable[[Any], Sequence[Any]]
    if exchange == "bitstamp":

        def read(body: bytes) -> Sequence[Any] | None:
            return bitstamp_parse.read_ohlc(body, step=MINUTE, market=market)

        def parse(data: Any) -> Sequence[Any]:
            return bitstamp_parse.parse_ohlc(data, step=MINUTE, market=market)

    else:

        def read(body: bytes) -> Sequence[Any] | None:
            return bitvavo_parse.read_candles(body, market=market, interval="1m")

        def parse(data: Any) -> Sequence[Any]:
            return bitvavo_parse.parse_candles(data, market=market, interval="1m")

    def candles(body: bytes) -> Sequence[Any]:
        """As the client reads a reply: from the body when it can, else decoded."""
        made = read(body)
        if made is not None:
            return made
        _, data = http.decode_body(body)
        return parse(data)

    page_size = BITSTAMP_PAGE if exchange == "bitstamp" else BITVAVO_PAGE
    lake = Lake(lake_dir)
    partition = {"exchange": exchange, "market": market, "interval": "1m"}
    fetched_at = datetime.now(UTC)
    rows = 0
    chunk: list[Page[Any]] = []
    landed: list[int] = []

    def land() -> int:
        start = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=len(landed))
        landed.append(len(chunk))
        window = Window(start, start + timedelta(days=1))  # (only the file's name)
        plan = ChunkPlan(window, window, window, ())
        return land_plan(lake, CANDLES, plan, reversed(chunk), partition)

    for body in bodies:
        chunk.append(Page(candles(body), "candles", {}, fetched_at))
        if len(chunk) * page_size >= MONTH_OF_MINUTES:
            rows += land()
            chunk = []
    if chunk:
        rows += land()
    return rows


def peak_rss_mib() -> float | None:
    """This process's own peak resident set (VmHWM), where /proc has it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> None:
    pages_file, exchange, market = argv if argv is not None else sys.argv[1:4]
    with open(pages_file, "rb") as file:
        bodies: list[bytes] = pickle.load(file)
    with tempfile.TemporaryDirectory(prefix="landing-replay-") as scratch:
        replay(bodies[:2], exchange, market, Path(scratch) / "warm-up")
        began = time.process_time()
        rows = replay(bodies, exchange, market, Path(scratch) / "lake")
        cpu = time.process_time() - began
    print(json.dumps({"rows": rows, "cpu_s": cpu, "peak_rss_mb": peak_rss_mib()}))


if __name__ == "__main__":
    main()
