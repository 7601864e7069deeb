"""The candles stream: closed OHLC candles of one market and interval, one file per chunk.

    sync_candles(rt, "bitvavo", "BTC-EUR", "1m", Window(start, end))

The span is clipped to `final_cutoff(now, interval, 60 s)` (a candle that closed less than a
minute ago may still change) and cut into calendar chunks (`chunk_unit`: months of sub-hour
candles, years of the rest). For each chunk `plan_chunks` says what is missing given the
partition's landed stems; the missing range is fetched (Bitstamp walking back by `end`, Bitvavo
end-anchored), combined with the rows of the files it extends, deduplicated (last wins: Bitstamp
sometimes serves two candles for one open time) and landed as one file whose stem is the range
it covers, e.g. `20240301T000000-20240330T235900`. Only one chunk is held in memory at a time.

Hours without a Bitvavo candle are hours without trades, not gaps; Bitstamp fills them with
zero-volume candles, which are kept as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipelines.datasets import CANDLES
from pipelines.exchanges.paging import Page
from pipelines.exchanges.records import Candle
from pipelines.flows.chunks import (
    SETTLE,
    HttpMark,
    drop_superseded,
    held_range,
    land_plan,
    partition_files,
    sweep_partition,
)
from pipelines.flows.plan import Window, chunk_unit, final_cutoff, plan_chunks
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.http import HttpClient

CandleWalk = Callable[[str, str, Window], Iterator[Page[Candle]]]
"""`(market, interval, window) → pages` of every candle with open time in the window."""


def sync_candles(
    rt: Runtime, exchange: str, market: str, interval: str, span: Window
) -> StreamResult:
    """Land every closed candle of `market`/`interval` with open time in `span` not yet landed."""
    http, walk = _walker(rt, exchange)
    partition = {"exchange": exchange, "market": market, "interval": interval}
    lake, dataset = rt.lake, CANDLES.dataset
    mark = HttpMark.of(http)
    sweep_partition(lake, dataset, partition)
    drop_superseded(lake, dataset, partition, chunk_unit(interval))

    cutoff = final_cutoff(rt.now(), interval, SETTLE)
    fetched = landed = 0
    if span.start < min(span.end, cutoff):
        final = Window(span.start, min(span.end, cutoff))
        landed_stems = partition_files(lake, dataset, partition)
        for plan in plan_chunks(final, chunk_unit(interval), landed_stems):
            # Oldest page first: within a page Bitstamp's later duplicate wins (`Lake.land`).
            pages = reversed(list(walk(market, interval, plan.missing)))
            fetched += land_plan(lake, CANDLES, plan, pages, partition)
            landed += 1

    first, last = held_range(lake, dataset, "open_time", partition)
    used = mark.since(http)
    return StreamResult(
        stream=f"candles {exchange} {market} {interval}",
        exchange=exchange,
        rows={dataset.name: fetched},
        windows=landed,
        requests=used.requests,
        weight=used.weight,
        retries=used.retries,
        first=first,
        last=last,
    )


def _walker(rt: Runtime, exchange: str) -> tuple[HttpClient, CandleWalk]:
    """The exchange client's HTTP layer (for its stats) and its candle walk."""
    if exchange == "bitstamp":
        bitstamp = rt.bitstamp()

        def bitstamp_walk(market: str, interval: str, window: Window) -> Iterator[Page[Candle]]:
            return bitstamp.ohlc_window(market, interval, window.start, window.end)

        return bitstamp.http, bitstamp_walk
    if exchange == "bitvavo":
        bitvavo = rt.bitvavo()

        def bitvavo_walk(market: str, interval: str, window: Window) -> Iterator[Page[Candle]]:
            return bitvavo.candles_window(market, interval, window.start, window.end)

        return bitvavo.http, bitvavo_walk
    raise ValueError(f"unknown exchange {exchange!r}")
