"""Candles before a pair's listing (issue 10, deliverable 7): under every reality of Bitstamp's
OHLC before a listing (`bitstamp-ohlc-before-listing=empty|first|zero`) a sync spanning the
listing lands exactly the candles from the listing on, stores no filler before it, records
where the stream starts, and ends after a bounded number of requests.

The sandbox lists Bitstamp ltceur (LTC-EUR) at `World.listings`, a UTC midnight inside the
account window; the world's tape after the listing is the truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import requests

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import CANDLES, GAPS
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window, final_cutoff
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.http import RequestBudget, RetryPolicy, WeightBudget
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document
from warehouse.build import build
from warehouse.connect import connect

SEED = 29
NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
DAYS = 21
MARKET, SYMBOL = "LTC-EUR", "ltceur"
REALITIES = ("empty", "first", "zero")
STEP_S = {"1m": 60, "1h": 3600, "1d": 86400}
SETTLE = timedelta(seconds=60)
# (open ms, open, high, low, close, volume)
CandleRow = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]
FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def moment(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=SEED, days=DAYS, now_ms=ms(NOW))


def listed(world: World) -> datetime:
    return moment(world.listings[("bitstamp", SYMBOL)])


def spans(world: World) -> dict[str, Window]:
    """Per interval, a span that starts before the listing and ends after it."""
    at = listed(world)
    whole = Window(NOW - timedelta(days=DAYS), NOW)
    return {
        "1m": Window(at - timedelta(hours=2), at + timedelta(hours=6)),
        "1h": whole,
        "1d": whole,
    }


def runtime(sandbox: Sandbox, data_dir: Path) -> Runtime:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "tally.toml"
    write_config(config, sandbox_document(sandbox))
    settings = load_settings(config, data_dir=data_dir)
    limiters = {
        "bitstamp": RequestBudget(*BITSTAMP_PACING),
        "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
    }
    return Runtime(settings, retry=FAST_RETRY, clock=lambda: NOW, limiters=limiters)


def held(
    lake: Lake, interval: str, market: str = MARKET, exchange: str = "bitstamp"
) -> list[CandleRow]:
    frame = (
        lake.scan(CANDLES.dataset, exchange=exchange, market=market, interval=interval)
        .collect()
        .sort("open_time")
    )
    return [
        (ms(r["open_time"]), r["open"], r["high"], r["low"], r["close"], r["volume"])
        for r in frame.iter_rows(named=True)
    ]


def expected(world: World, interval: str, span: Window) -> list[CandleRow]:
    """Bitstamp's series from the first trade after the listing: the tape's candles, and a flat
    zero-volume candle at the previous close for every interval without trades."""
    step = STEP_S[interval] * 1000
    cutoff = min(span.end, final_cutoff(NOW, interval, SETTLE))
    start = max(ms(span.start), ms(listed(world)))
    tape = world.market("bitstamp", SYMBOL).candles(STEP_S[interval], start, ms(cutoff))
    traded = {c.open_ms: (c.open_ms, c.open, c.high, c.low, c.close, c.volume) for c in tape}
    out: list[CandleRow] = []
    for open_ms in range(tape[0].open_ms, ms(cutoff), step):
        row = traded.get(open_ms)
        if row is None:
            close = out[-1][4]
            row = (open_ms, close, close, close, close, Decimal(0))
        out.append(row)
    return out


@dataclass
class Synced:
    reality: str
    rt: Runtime
    results: dict[str, StreamResult]
    again: dict[str, StreamResult]
    again_unchanged: bool


def file_bytes(lake: Lake) -> dict[str, bytes]:
    return {str(p.relative_to(lake.root)): p.read_bytes() for p in lake.root.rglob("*.parquet")}


@pytest.fixture(scope="module", params=REALITIES)
def synced(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Synced]:
    reality = request.param
    variants = Variants(bitstamp_ohlc_before_listing=reality)
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        rt = runtime(sandbox, tmp_path_factory.mktemp(f"listing-{reality}"))
        results = {
            i: sync_candles(rt, "bitstamp", MARKET, i, span) for i, span in spans(world).items()
        }
        before = file_bytes(rt.lake)
        again = {
            i: sync_candles(rt, "bitstamp", MARKET, i, span) for i, span in spans(world).items()
        }
        unchanged = file_bytes(rt.lake) == before
        yield Synced(reality, rt, results, again, unchanged)
        rt.close()


# -- the sandbox plays each reality ------------------------------------------------------------


def test_the_listing_lies_inside_the_account_window(world: World) -> None:
    assert world.history_start_ms < ms(listed(world)) < world.created_ms
    assert ms(listed(world)) % 86_400_000 == 0
    assert ("bitstamp", SYMBOL) in world.markets
    ledger = world.bitstamp.user_transactions
    assert not any("ltc" in row for row in ledger), "an account trades the late-listed pair"


@pytest.mark.parametrize("reality", REALITIES)
def test_ohlc_before_the_listing_per_reality(world: World, reality: str) -> None:
    at = ms(listed(world)) // 1000
    first_hours = world.market("bitstamp", SYMBOL).candles(3600, at * 1000, at * 1000 + 86_400_000)
    with start_sandbox(
        seed=SEED, world=world, variants=Variants(bitstamp_ohlc_before_listing=reality)
    ) as sandbox:
        url = f"{sandbox.bitstamp.base_url}/api/v2/ohlc/{SYMBOL}/"
        params = {"step": 3600, "limit": 5, "end": at - 2 * 3600}
        rows = requests.get(url, params, timeout=10).json()["data"]["ohlc"]
        across = requests.get(url, {**params, "end": at + 3600}, timeout=10).json()["data"]["ohlc"]
    stamps = [int(r["timestamp"]) for r in rows]
    if reality == "empty":
        assert rows == []
        assert min(int(r["timestamp"]) for r in across) >= at
    elif reality == "first":  # the first candles after the listing, after the `end` asked for
        # a filled series from the first trade on (Bitstamp fills hours without trades)
        assert stamps == [first_hours[0].open_ms // 1000 + 3600 * k for k in range(5)]
        assert min(stamps) > params["end"]
        assert min(int(r["timestamp"]) for r in across) >= at
    else:  # zero-volume fillers, flat at the first traded price
        assert stamps == [at - 2 * 3600 - 3600 * k for k in range(4, -1, -1)]
        first_price = str(first_hours[0].open)
        assert all(Decimal(r["volume"]) == 0 for r in rows)
        assert all(
            Decimal(r[k]) == Decimal(first_price)
            for r in rows
            for k in ("open", "high", "low", "close")
        )
        assert [int(r["timestamp"]) for r in across][:3] == [
            at - 3 * 3600,
            at - 2 * 3600,
            at - 3600,
        ]


# -- tally lands the stream from the listing on -------------------------------------------------


@pytest.mark.parametrize("interval", list(STEP_S))
def test_a_sync_across_the_listing_lands_exactly_the_candles_after_it(
    synced: Synced, world: World, interval: str
) -> None:
    span = spans(world)[interval]
    truth = expected(world, interval, span)
    got = held(synced.rt.lake, interval)
    assert got == truth, synced.reality
    assert got[0][0] >= ms(listed(world))
    assert got[0][5] > 0, "the stream starts at a filler"
    assert synced.results[interval].rows == {"candles": len(truth)}


@pytest.mark.parametrize("interval", list(STEP_S))
def test_the_walk_ends_after_a_bounded_number_of_requests(
    synced: Synced, world: World, interval: str
) -> None:
    span = spans(world)[interval]
    listed_candles = len(expected(world, interval, span))
    pages = -(-listed_candles // 1000)
    # the pages that hold the stream, one that finds nothing older, one look before the start
    assert synced.results[interval].requests <= pages + 2, synced.reality


@pytest.mark.parametrize("interval", list(STEP_S))
def test_the_stream_start_is_recorded_as_a_gap_with_its_reason(
    synced: Synced, world: World, interval: str
) -> None:
    span = spans(world)[interval]
    first = moment(expected(world, interval, span)[0][0])
    gaps = synced.rt.lake.scan(GAPS).collect().filter(pl.col("stream") == f"candles {interval}")
    assert gaps.select("exchange", "market", "gap_start", "gap_end").to_dicts() == [
        {"exchange": "bitstamp", "market": MARKET, "gap_start": span.start, "gap_end": first}
    ]
    assert "listing" in gaps["reason"][0]
    assert synced.results[interval].gaps and "listing" in synced.results[interval].gaps[0]


def test_a_second_sync_asks_nothing_and_changes_nothing(synced: Synced) -> None:
    for interval, result in synced.again.items():
        assert (result.requests, result.rows["candles"], result.gaps) == (0, 0, ()), interval
    assert synced.again_unchanged


def test_coverage_shows_where_the_stream_starts(synced: Synced, world: World) -> None:
    build(synced.rt.settings)
    with connect(synced.rt.settings.data_dir) as connection:
        rows = connection.execute(
            "select interval, gap_start, gap_end, gap_reason from coverage "
            "where dataset = 'candles' and exchange = 'bitstamp' and market = ? "
            "order by interval",
            [MARKET],
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        (interval, spans(world)[interval].start) for interval in sorted(STEP_S)
    ]
    assert all("listing" in r[3] for r in rows)


# -- the edges ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reality", REALITIES)
def test_a_sync_before_the_listing_then_one_across_it(
    world: World, tmp_path: Path, reality: str
) -> None:
    at = listed(world)
    before = Window(at - timedelta(hours=3), at - timedelta(hours=1))
    across = Window(before.start, at + timedelta(hours=2))
    with start_sandbox(
        seed=SEED, world=world, variants=Variants(bitstamp_ohlc_before_listing=reality)
    ) as sandbox:
        rt = runtime(sandbox, tmp_path)
        nothing = sync_candles(rt, "bitstamp", MARKET, "1m", before)
        assert held(rt.lake, "1m") == [] and nothing.rows == {"candles": 0}
        assert nothing.requests <= 2
        # fillers read and not stored are recorded (`test_candles_listing_gaps.py`); else nothing
        assert len(nothing.gaps) == (1 if reality == "zero" else 0)
        assert rt.lake.stems(
            CANDLES.dataset, exchange="bitstamp", market=MARKET, interval="1m"
        ) == {before.stem}
        later = sync_candles(rt, "bitstamp", MARKET, "1m", across)
        rt.close()
    assert held(rt.lake, "1m") == expected(world, "1m", across)
    gap = rt.lake.scan(GAPS).collect()
    assert gap["gap_start"].to_list() == [across.start]
    assert later.requests <= 3


def test_a_quiet_start_of_a_listed_pair_is_kept(world: World, tmp_path: Path) -> None:
    """Bitstamp's zero-volume candles at the start of a sync of a long-listed pair are real: the
    look before the start finds trades (even where fillers before a listing exist)."""
    market = world.market("bitstamp", "btceur")
    day = ms(NOW) // 86_400_000 * 86_400_000 - 3 * 86_400_000
    minutes = {c.open_ms for c in market.candles(60, day, day + 86_400_000)}
    quiet = next(t for t in range(day + 60_000, day + 86_400_000, 60_000) if t not in minutes)
    span = Window(moment(quiet), moment(quiet) + timedelta(hours=3))
    with start_sandbox(
        seed=SEED, world=world, variants=Variants(bitstamp_ohlc_before_listing="zero")
    ) as sandbox:
        rt = runtime(sandbox, tmp_path)
        result = sync_candles(rt, "bitstamp", "BTC-EUR", "1m", span)
        rt.close()
    got = held(rt.lake, "1m", market="BTC-EUR")
    assert got[0][0] == quiet and got[0][5] == 0
    assert len(got) == 180
    assert result.gaps == () and rt.lake.files(GAPS) == []


def test_bitvavo_serves_nothing_before_a_listing(tmp_path: Path) -> None:
    """No empty candles on Bitvavo: a sync across a listing lands the tape after it, with no
    gap (a late first candle there cannot be told from quiet hours)."""
    small = World(seed=SEED, days=3, now_ms=ms(NOW))
    at = (ms(NOW) - 86_400_000) // 86_400_000 * 86_400_000
    small.listings[("bitvavo", "ADA-EUR")] = at
    span = Window(NOW - timedelta(days=3), NOW)
    with start_sandbox(seed=SEED, world=small) as sandbox:
        url = f"{sandbox.bitvavo.base_url}/ADA-EUR/candles"
        params: dict[str, str | int] = {"interval": "1h", "end": at}
        before = requests.get(url, params, timeout=10).json()
        rt = runtime(sandbox, tmp_path)
        result = sync_candles(rt, "bitvavo", "ADA-EUR", "1h", span)
        rt.close()
    assert before == []
    cutoff = final_cutoff(NOW, "1h", SETTLE)
    tape = small.market("bitvavo", "ADA-EUR").candles(3600, at, ms(cutoff))
    truth = [(c.open_ms, c.open, c.high, c.low, c.close, c.volume) for c in tape]
    assert held(rt.lake, "1h", market="ADA-EUR", exchange="bitvavo") == truth
    assert result.requests <= 2 and result.gaps == ()
