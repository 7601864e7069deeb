"""Crash safety of the market-data backfill: SIGKILL a sync process at random moments, restart
it, let it finish: the lake equals an uninterrupted run's, and no half-written file is ever
visible. The sandbox runs in the test process and outlives every kill."""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import polars as pl
from fakeclock import FakeClock
from polars.testing import assert_frame_equal

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import CANDLES, PUBLIC_TRADES
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.public_trades import sync_public_trades
from pipelines.flows.runtime import Runtime
from pipelines.http import Limiter, RequestBudget, RetryPolicy, WeightBudget
from pipelines.lake import Lake
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

SEED = 13
NOW = datetime(2024, 3, 31, tzinfo=UTC)
TWO_MONTHS = Window(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
MARKET = "BTC-EUR"
FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)
KILLS = 4
# Each kill comes once the process has landed a file more than the lake held at the last kill,
# and then a random moment more (mid-fetch, mid-write): the kills fall at different stages,
# whatever the machine's speed, and together cannot let the run finish.
KILL_JITTER_S = (0.0, 0.05)
READY = "ready"
DONE = "done"


def backfill(rt: Runtime) -> None:
    """Four day chunks of Bitvavo trades, then two months of 1m candles on both exchanges."""
    sync_public_trades(rt, "bitvavo", MARKET, since=NOW - timedelta(days=4))
    for exchange in ("bitstamp", "bitvavo"):
        sync_candles(rt, exchange, MARKET, "1m", TWO_MONTHS)


def runtime(config: Path, data_dir: Path, limiters: dict[str, Limiter] | None = None) -> Runtime:
    settings = load_settings(config, data_dir=data_dir)
    return Runtime(settings, retry=FAST_RETRY, clock=lambda: NOW, limiters=limiters or {})


def main(config: str, data_dir: str, report: Connection) -> None:
    """The sync process: says when it is ready, and when it is done."""
    rt = runtime(Path(config), Path(data_dir))
    report.send(READY)
    backfill(rt)
    report.send(DONE)


# Each sync process is forked from a server process that has imported tally once (not from this
# one, whose sandbox threads a fork would copy mid-request), so that it is ready at once.
SYNCS = multiprocessing.get_context("forkserver")
SYNCS.set_forkserver_preload(["pipelines.flows.candles", "pipelines.flows.public_trades"])


def start_sync(config: Path, data_dir: Path) -> tuple[BaseProcess, Connection]:
    """A sync process, and the end of the pipe it reports on."""
    messages, report = SYNCS.Pipe(duplex=False)
    process = SYNCS.Process(target=main, args=(str(config), str(data_dir), report), daemon=True)
    process.start()
    report.close()
    return process, messages


def wait_ready(messages: Connection, timeout: float = 20.0) -> None:
    assert messages.poll(timeout), "the sync process did not start"
    assert messages.recv() == READY


def wait_for_a_new_file(process: BaseProcess, lake: Lake, held: int) -> None:
    """Until the process has landed more than `held` files, or has ended (a minute at most)."""
    deadline = time.monotonic() + 60
    while process.is_alive() and len(parquet_files(lake)) <= held:
        assert time.monotonic() < deadline, f"the sync landed nothing past {held} files"
        time.sleep(0.005)


def received(messages: Connection) -> list[str]:
    """Every message the (finished) process sent."""
    said = []
    while messages.poll():
        try:
            said.append(messages.recv())
        except EOFError:
            break
    return said


def parquet_files(lake: Lake) -> list[Path]:
    return sorted(lake.root.rglob("*.parquet")) if lake.root.is_dir() else []


def assert_every_file_opens(lake: Lake) -> None:
    for path in parquet_files(lake):
        columns = pl.read_parquet(path).columns
        dataset = CANDLES if "candles" in path.parts else PUBLIC_TRADES
        assert columns == dataset.dataset.file_columns, path


def frames(lake: Lake) -> dict[str, pl.DataFrame]:
    return {
        source.dataset.name: lake.scan(source.dataset)
        .collect()
        .drop("fetched_at")
        .sort(list(source.dataset.key))
        for source in (CANDLES, PUBLIC_TRADES)
    }


def test_killed_backfill_converges_to_the_uninterrupted_lake(tmp_path: Path) -> None:
    world = World(seed=SEED, days=30, now_ms=int(NOW.timestamp() * 1000))
    rng = random.Random(SEED)
    with start_sandbox(seed=SEED, world=world) as sandbox:
        config = tmp_path / "tally.toml"
        write_config(config, sandbox_document(sandbox))

        whole = runtime(
            config,
            tmp_path / "whole",
            {
                "bitstamp": RequestBudget(*BITSTAMP_PACING),
                "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
            },
        )
        backfill(whole)

        crashed = Lake(tmp_path / "crashed" / "lake")
        files_at_kill: list[int] = []
        for _ in range(KILLS):
            process, messages = start_sync(config, tmp_path / "crashed")
            try:
                wait_ready(messages)
                wait_for_a_new_file(process, crashed, files_at_kill[-1] if files_at_kill else 0)
                time.sleep(rng.uniform(*KILL_JITTER_S))
            finally:
                process.kill()  # SIGKILL
                process.join(timeout=10)
                messages.close()
            if process.exitcode == 0:
                break  # finished before the kill: nothing left to kill
            assert process.exitcode == -signal.SIGKILL
            assert_every_file_opens(crashed)
            files_at_kill.append(len(parquet_files(crashed)))

        final, messages = start_sync(config, tmp_path / "crashed")
        final.join(timeout=60)
        assert final.exitcode == 0 and received(messages) == [READY, DONE]

    assert len(files_at_kill) >= KILLS - 1, f"too few kills: {files_at_kill}"
    assert files_at_kill[-1] > 0, f"no kill came after a chunk had landed: {files_at_kill}"
    assert_every_file_opens(crashed)
    assert not list(crashed.root.rglob("*.tmp")), "a stale temp file survived the final run"
    relative = {p.relative_to(crashed.root) for p in parquet_files(crashed)}
    assert relative == {p.relative_to(whole.lake.root) for p in parquet_files(whole.lake)}
    expected = frames(whole.lake)
    for name, frame in frames(crashed).items():
        assert frame.height > 0
        assert_frame_equal(frame, expected[name])


def test_an_overlap_left_between_landing_and_unlinking_is_folded_in(tmp_path: Path) -> None:
    """The crash window no kill can hit reliably: the new chunk file landed, the file it
    replaced is still there. The next run, even with nothing new to fetch, removes it."""
    clock = FakeClock(NOW - timedelta(hours=2))
    world = World(seed=SEED, days=3, now_ms=int(NOW.timestamp() * 1000))
    span = Window(NOW - timedelta(days=2), NOW + timedelta(days=1))
    with start_sandbox(seed=SEED, world=world) as sandbox:
        config = tmp_path / "tally.toml"
        write_config(config, sandbox_document(sandbox))
        settings = load_settings(config, data_dir=tmp_path)
        rt = Runtime(
            settings,
            retry=FAST_RETRY,
            clock=clock.utc,
            limiters={
                "bitstamp": RequestBudget(*BITSTAMP_PACING),
                "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
            },
        )
        for exchange, sync in (
            ("bitvavo", lambda: sync_candles(rt, "bitvavo", MARKET, "1m", span)),
            ("bitstamp", lambda: sync_public_trades(rt, "bitstamp", MARKET, since=None)),
        ):
            clock.set(NOW - timedelta(hours=2))
            sync()
            older = max(p for p in parquet_files(rt.lake) if exchange in str(p))  # newest day
            kept = older.read_bytes()
            clock.set(NOW)
            sync()
            older.write_bytes(kept)  # as if the run died before unlinking it
            overlapping = pl.read_parquet(older).height
            dataset = CANDLES if exchange == "bitvavo" else PUBLIC_TRADES
            partition = {"exchange": exchange, "market": MARKET}
            rows = rt.lake.scan(dataset.dataset, **partition).collect()
            key = [k for k in dataset.dataset.key if k not in partition]
            assert rows.height - rows.unique(key).height == overlapping > 0

            result = sync()
            rows = rt.lake.scan(dataset.dataset, **partition).collect()
            assert rows.unique(key).height == rows.height
            assert not older.exists()
            assert sum(result.rows.values()) == 0
