"""Candles are final only when settled (issue 10, deliverable 7): Bitvavo's newest candles come
back incomplete for a while (`bitvavo-candles-settle=30`), and every sync reads again what was
read too soon after it closed.

The sandbox's world is the truth: its tape's candles are the settled ones. One scenario, synced
over real HTTP against a sandbox whose clock the test moves, serves the tests below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal
from sandbox_runtime import FAST_RETRY, ClockedWorld

from pipelines.config import ConfigError, load_settings
from pipelines.config_file import write_config
from pipelines.datasets import CANDLES
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.records import Candle
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window, final_cutoff, floor_time, plan_chunks
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.flows.settle import read_note, unsettled_from
from pipelines.http import RequestBudget, WeightBudget
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

SEED = 23
MARKET = "BTC-EUR"
SETTLE_MINUTES = 30
REREAD = timedelta(minutes=180)  # tally's default
T1 = datetime(2024, 3, 31, 13, 7, 30, tzinfo=UTC)
T2 = T1 + timedelta(minutes=45)  # every candle unsettled at T1 has settled
T3 = T2 + timedelta(hours=4)  # every candle read at T2 was read long enough after its close
SPAN = Window(T1 - timedelta(hours=12), T1 + timedelta(days=1))
INTERVALS = {"1m": 60, "5m": 300, "1h": 3600}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def runtime(sandbox: Sandbox, data_dir: Path, world: ClockedWorld) -> Runtime:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "tally.toml"
    write_config(config, sandbox_document(sandbox))
    settings = load_settings(config, data_dir=data_dir)
    limiters = {
        "bitstamp": RequestBudget(*BITSTAMP_PACING),
        "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
    }
    return Runtime(settings, retry=FAST_RETRY, clock=world.now, limiters=limiters)


def sync(rt: Runtime) -> dict[str, StreamResult]:
    return {i: sync_candles(rt, "bitvavo", MARKET, i, SPAN) for i in INTERVALS}


def frames(lake: Lake) -> dict[str, pl.DataFrame]:
    return {
        interval: lake.scan(CANDLES.dataset, exchange="bitvavo", market=MARKET, interval=interval)
        .collect()
        .drop("fetched_at")
        .sort("open_time")
        for interval in INTERVALS
    }


def file_bytes(lake: Lake) -> dict[str, bytes]:
    return {str(p.relative_to(lake.root)): p.read_bytes() for p in lake.root.rglob("*.parquet")}


Values = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]


def values(frame: pl.DataFrame) -> dict[int, Values]:
    return {
        ms(r["open_time"]): (
            ms(r["open_time"]),
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
        )
        for r in frame.iter_rows(named=True)
    }


def tape(world: World, interval: str, end: datetime) -> dict[int, Values]:
    """The settled candles of the span that closed by `end`."""
    step = INTERVALS[interval]
    candles = world.market("bitvavo", MARKET).candles(step, ms(SPAN.start), ms(end))
    return {
        c.open_ms: (c.open_ms, c.open, c.high, c.low, c.close, c.volume)
        for c in candles
        if c.open_ms + step * 1000 <= ms(end)
    }


def settled_by(moment: datetime) -> datetime:
    return moment - timedelta(minutes=SETTLE_MINUTES)


@dataclass
class Scenario:
    world: ClockedWorld
    first: dict[str, pl.DataFrame]  # lake A after a sync at T1
    again: dict[str, StreamResult]  # A synced again at T1
    again_unchanged: bool
    later: dict[str, pl.DataFrame]  # A after a second sync at T2
    later_results: dict[str, StreamResult]
    fresh: dict[str, pl.DataFrame]  # lake B synced once, at T2
    fresh_stems: dict[str, set[str]]
    later_stems: dict[str, set[str]]
    settled: dict[str, pl.DataFrame]  # A after a third sync at T3
    settled_results: dict[str, StreamResult]
    pending_after_t3: dict[str, datetime | None]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    world = ClockedWorld(seed=SEED, days=2, now=T1)
    variants = Variants(bitvavo_candles_settle=SETTLE_MINUTES)
    root = tmp_path_factory.mktemp("settle")
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        a = runtime(sandbox, root / "a", world)
        sync(a)
        first = frames(a.lake)
        before = file_bytes(a.lake)
        again = sync(a)
        again_unchanged = file_bytes(a.lake) == before

        world.set(T2)
        later_results = sync(a)
        later = frames(a.lake)
        b = runtime(sandbox, root / "b", world)
        sync(b)
        fresh = frames(b.lake)

        def stems(rt: Runtime) -> dict[str, set[str]]:
            return {
                i: rt.lake.stems(CANDLES.dataset, exchange="bitvavo", market=MARKET, interval=i)
                for i in INTERVALS
            }

        later_stems, fresh_stems = stems(a), stems(b)
        world.set(T3)
        settled_results = sync(a)
        settled = frames(a.lake)
        pending = {
            i: unsettled_from(
                a.lake,
                CANDLES.dataset,
                {"exchange": "bitvavo", "market": MARKET, "interval": i},
                i,
                reread=REREAD,
                now=T3 + timedelta(seconds=1),
            )
            for i in INTERVALS
        }
        for rt in (a, b):
            rt.close()
    yield Scenario(
        world,
        first,
        again,
        again_unchanged,
        later,
        later_results,
        fresh,
        fresh_stems,
        later_stems,
        settled,
        settled_results,
        pending,
    )


# -- the sandbox plays the reality ----------------------------------------------------------------


def test_the_first_read_holds_unsettled_candles_and_the_settled_part_is_exact(
    scenario: Scenario,
) -> None:
    missing_seen = changed_seen = 0
    for interval, frame in scenario.first.items():
        got = values(frame)
        cutoff = final_cutoff(T1, interval, timedelta(seconds=60))
        truth = tape(scenario.world, interval, cutoff)
        step = INTERVALS[interval] * 1000
        settled = {k: v for k, v in truth.items() if k + step <= ms(settled_by(T1))}
        assert {k: got[k] for k in settled if k in got} == settled
        assert set(settled) <= set(got)
        recent = {k: v for k, v in truth.items() if k not in settled}
        missing_seen += sum(k not in got for k in recent)
        changed_seen += sum(k in got and got[k] != v for k, v in recent.items())
        assert not set(got) - set(truth), "a candle the exchange never had"
    assert missing_seen > 0, "no unsettled candle was left out: the variant is not played"
    assert changed_seen > 0, "no unsettled candle was incomplete: the variant is not played"


def test_the_sandbox_serves_one_read_per_moment_and_the_settled_candle_later() -> None:
    world = ClockedWorld(seed=SEED, days=2, now=T1)
    variants = Variants(bitvavo_candles_settle=SETTLE_MINUTES)
    params: dict[str, str | int] = {
        "interval": "1m",
        "limit": 90,
        "end": ms(floor_time(T1, timedelta(minutes=1))),
    }
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        url = f"{sandbox.bitvavo.base_url}/{MARKET}/candles"
        first, second = (requests.get(url, params, timeout=10).json() for _ in range(2))
        world.set(T1 + timedelta(minutes=SETTLE_MINUTES, seconds=1))
        later = requests.get(url, params, timeout=10).json()

    def served(rows: list[list[Any]]) -> dict[int, tuple[Any, ...]]:
        return {int(r[0]): (int(r[0]), *(Decimal(v) for v in r[1:])) for r in rows}

    assert first == second  # a function of the moment, not of chance
    truth = tape(world, "1m", floor_time(T1, timedelta(minutes=1)))
    oldest = min(served(later))
    assert served(later) == {k: v for k, v in truth.items() if k >= oldest}
    unsettled = {k for k in truth if k + 60_000 > ms(settled_by(T1))}
    early = served(first)
    assert {k: v for k, v in early.items() if k not in unsettled} == {
        k: v for k, v in truth.items() if k >= oldest and k not in unsettled
    }
    assert {k: early.get(k) for k in unsettled} != {k: truth[k] for k in unsettled}


# -- tally reads again until the candles settled -------------------------------------------------


def test_the_same_clock_reads_nothing_again(scenario: Scenario) -> None:
    for interval, result in scenario.again.items():
        assert (result.requests, result.windows, result.rows["candles"]) == (0, 0, 0), interval
    assert scenario.again_unchanged


def test_a_later_sync_equals_a_sync_made_after_the_candles_settled(scenario: Scenario) -> None:
    for interval in INTERVALS:
        assert scenario.later[interval].height > 0
        assert_frame_equal(scenario.later[interval], scenario.fresh[interval])
        assert scenario.later_stems[interval] == scenario.fresh_stems[interval]
        truth = tape(scenario.world, interval, settled_by(T2))
        got = values(scenario.later[interval])
        assert {k: got.get(k) for k in truth} == truth, interval


def test_a_hole_that_fills_later_is_filled(scenario: Scenario) -> None:
    filled = 0
    for interval in INTERVALS:
        truth = tape(scenario.world, interval, settled_by(T2))
        holes = set(truth) - set(values(scenario.first[interval]))
        holes = {k for k in holes if k < ms(final_cutoff(T1, interval, timedelta(seconds=60)))}
        assert holes <= set(values(scenario.later[interval])), interval
        filled += len(holes)
        # rows landed by the later sync: the filled holes and changed candles among them
        assert scenario.later_results[interval].rows["candles"] >= len(holes)
    assert filled > 0, "no hole to fill: the test proves nothing"


def test_the_reread_is_one_request_per_stream(scenario: Scenario) -> None:
    for interval in INTERVALS:
        assert scenario.later_results[interval].requests == 1, interval
        assert scenario.settled_results[interval].requests == 1, interval


def test_candles_read_long_enough_after_their_close_are_final(scenario: Scenario) -> None:
    for interval in INTERVALS:
        truth = tape(scenario.world, interval, settled_by(T3))
        got = values(scenario.settled[interval])
        assert {k: got.get(k) for k in truth} == truth, interval
        # what T3's read left unsettled starts `reread` before T3; nothing older is read again
        pending = scenario.pending_after_t3[interval]
        assert pending == floor_time(T3 - REREAD, timedelta(seconds=INTERVALS[interval]))


# -- the pieces ---------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def land_window(lake: Lake, window: Window, notes: dict[str, str] | None) -> None:
    candle = Candle("bitvavo", MARKET, "1h", window.start, *(Decimal(1),) * 4, Decimal("0.5"))
    lake.land(
        CANDLES.dataset,
        CANDLES.frame([candle], fetched_at=window.end),
        stem=window.stem,
        partition={"exchange": "bitvavo", "market": MARKET, "interval": "1h"},
        metadata=notes,
    )


def test_unsettled_from_reads_the_note_of_each_file(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    partition = {"exchange": "bitvavo", "market": MARKET, "interval": "1h"}
    read = at("2024-03-31T12:00:30")
    land_window(lake, Window(at("2024-03-01"), at("2024-03-31T12:00")), read_note(read))

    def pending(now: datetime, reread: timedelta = REREAD) -> datetime | None:
        return unsettled_from(lake, CANDLES.dataset, partition, "1h", reread=reread, now=now)

    assert pending(read) is None  # the same clock: the exchange would say the same
    assert pending(read - timedelta(hours=1)) is None
    # the 09:00 candle closed at 10:00, 2 h 0 min 30 s before the read: not settled
    assert pending(read + timedelta(seconds=1)) == at("2024-03-31T09:00")
    assert pending(read + timedelta(days=1), timedelta(minutes=30)) == at("2024-03-31T11:00")
    assert pending(read + timedelta(days=1), timedelta(0)) is None
    # an older file read long after its end is final; a file without a note too
    land_window(lake, Window(at("2024-02-01"), at("2024-03-01")), read_note(at("2024-03-05")))
    land_window(lake, Window(at("2024-01-01"), at("2024-02-01")), None)
    assert pending(read + timedelta(seconds=1)) == at("2024-03-31T09:00")
    (path,) = [p for p in lake.files(CANDLES.dataset, **partition) if "20240101" in p.name]
    assert Lake.notes(path) == {}


def test_plan_reads_the_unsettled_tail_again_and_replaces_its_file() -> None:
    landed = [
        Window(at("2024-01-01"), at("2024-03-31T12:00")).stem,
        Window(at("2023-01-01"), at("2024-01-01")).stem,
    ]
    span = Window(at("2024-03-01"), at("2024-03-31T14:00"))
    (plan,) = plan_chunks(span, "year", landed, stale_from=at("2024-03-31T09:00"))
    assert plan.missing == Window(at("2024-03-31T09:00"), at("2024-03-31T14:00"))
    assert plan.target == Window(at("2024-01-01"), at("2024-03-31T14:00"))
    assert plan.replaces == (landed[0],)
    # without a stale tail the same lake needs only what follows
    (plain,) = plan_chunks(span, "year", landed)
    assert plain.missing == Window(at("2024-03-31T12:00"), at("2024-03-31T14:00"))


def test_plan_rewrites_a_stale_window_whole_even_past_the_span() -> None:
    landed = [Window(at("2024-03-31T00:00"), at("2024-03-31T12:00")).stem]
    span = Window(at("2024-03-31T00:00"), at("2024-03-31T10:00"))
    (plan,) = plan_chunks(span, "month", landed, stale_from=at("2024-03-31T09:00"))
    assert plan.missing == Window(at("2024-03-31T09:00"), at("2024-03-31T12:00"))
    assert plan.replaces == (landed[0],)
    # a window wholly after the stale moment is read again whole
    landed.append(Window(at("2024-04-01"), at("2024-04-01T03:00")).stem)
    april = Window(at("2024-04-01"), at("2024-04-01T04:00"))
    (plan,) = plan_chunks(april, "month", landed, stale_from=at("2024-03-31T09:00"))
    assert plan.missing == april and plan.replaces == (landed[1],)


def test_the_reread_window_is_configured_in_minutes(tmp_path: Path) -> None:
    config = tmp_path / "tally.toml"
    config.write_text("", encoding="utf-8")
    assert load_settings(config, environ={}).candles_reread_minutes == 180
    config.write_text("candles_reread_minutes = 45\n", encoding="utf-8")
    assert load_settings(config, environ={}).candles_reread_minutes == 45
    for bad in (-1, "3h", 1.5, True):
        write_config(config, {"candles_reread_minutes": bad})
        with pytest.raises(ConfigError, match="candles_reread_minutes"):
            load_settings(config, environ={})
