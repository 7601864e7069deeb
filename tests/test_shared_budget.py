"""One rate budget per key across processes: `SharedRequestBudget`, `SharedWeightBudget`.

Unit tests run on an injected clock (a `FakeClock`, or a frozen time in child processes); the
last test runs two real sync processes with one key against a sandbox whose Bitstamp limit is
scaled down, let go together once each has sent one request, and reads what the sandbox served
from `/_sandbox/stats` and counted in each of its rate windows.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from budget_stores import BudgetStore
from fakeclock import T0, FakeClock
from forked import run_forked
from test_limiters import bitvavo_headers

from pipelines import config_file
from pipelines.config import load_settings
from pipelines.credentials import Credentials
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.runtime import Runtime
from pipelines.http import (
    BudgetPlace,
    BudgetRow,
    RequestBudget,
    SharedRequestBudget,
    SharedWeightBudget,
    WeightBudget,
    budget_path,
)
from pipelines.http._shared_limiters import _process_start as process_start
from pipelines.http._shared_limiters import host_identity
from pipelines.http._statefile import StateFile
from pipelines.sandbox.ratelimit import RateLimits
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("shared_budget_worker.py")


class Exhausted(Exception):
    """Raised by a clock that does not move: the budget wanted to wait."""


def never_sleep(seconds: float) -> None:
    raise Exhausted(seconds)


def weight_budget(
    where: BudgetPlace | str, clock: Callable[[], float], sleep: Callable[[float], None]
) -> SharedWeightBudget:
    """A `SharedWeightBudget` at `where` that spends the whole window (no reserve, no pacing)."""
    return SharedWeightBudget(
        where, headers=WEIGHT_HEADERS, reserve=0, pace_below=0.0, clock=clock, sleep=sleep
    )


def most_in_any_window(times: list[float], span: float) -> int:
    """The largest number of `times` inside any half-open interval (t - span, t]."""
    ordered = sorted(times)
    return max(
        (index + 1 - bisect.bisect_right(ordered, moment - span))
        for index, moment in enumerate(ordered)
    )


# ----------------------------------------------------------------------------- file and naming


def test_the_budget_file_is_named_by_a_fingerprint_and_never_holds_the_key(tmp_path: Path):
    key = "KEYkeyKEYkeyKEYkeyKEYkeyKEYkey12"
    credentials = Credentials.from_strings(key, "secret")
    path = budget_path(tmp_path, "bitstamp", credentials.fingerprint)
    assert path.parent == tmp_path and path.name.startswith("bitstamp-")
    assert len(path.stem.removeprefix("bitstamp-")) == 16 and key not in path.name
    with pytest.raises(ValueError, match="fingerprint"):
        budget_path(tmp_path, "bitstamp", key)  # a key is refused as a file name
    assert budget_path(tmp_path, "bitvavo", None).name == "bitvavo-public.json"

    budget = SharedRequestBudget(path, 10, 10.0, 100, clock=FakeClock(), sleep=never_sleep)
    budget.acquire()
    budget.block_until(T0 + 1)
    assert [item.name for item in tmp_path.iterdir()] == [path.name]
    written = path.read_text(encoding="utf-8")
    assert key not in written and "secret" not in written
    assert json.loads(written)["blocked_until"] == T0 + 1


def write_config(directory: Path, **extra: Any) -> Path:
    urls = {"bitstamp": "http://127.0.0.1:9", "bitvavo": "http://127.0.0.1:9/v2"}
    keys = {
        name: {"base_url": url, "api_key": "k-one", "api_secret": "s"} for name, url in urls.items()
    }
    document = config_file.config_document(**extra, data_dir="data", **keys)
    return config_file.write_config(directory / "tally.toml", document)


def test_a_sync_uses_the_budget_in_its_data_directory_unless_told(tmp_path: Path):
    fingerprint = Credentials.from_strings("k-one", "s").fingerprint
    plain = Runtime(load_settings(write_config(tmp_path / "a")))
    bitstamp, bitvavo = plain.client("bitstamp").limiter, plain.client("bitvavo").limiter
    assert isinstance(bitstamp, SharedRequestBudget) and isinstance(bitvavo, SharedWeightBudget)
    budgets = tmp_path / "a" / "data" / ".ratelimit"
    assert bitstamp.path == budgets / f"bitstamp-{fingerprint}.json"
    assert bitvavo.path == budgets / f"bitvavo-{fingerprint}.json"
    assert Runtime(plain.settings).client("bitstamp").limiter is bitstamp  # one object per process

    # Two data directories that use one key share a budget when they name one directory.
    shared = [
        Runtime(load_settings(write_config(tmp_path / name, rate_budget_dir="../budgets")))
        for name in ("b", "c")
    ]
    paths = {rt.client("bitstamp").limiter.path for rt in shared}  # type: ignore[attr-defined]
    assert paths == {tmp_path / "budgets" / f"bitstamp-{fingerprint}.json"}

    explicit = RequestBudget(*BITSTAMP_PACING)
    chosen = Runtime(plain.settings, limiters={"bitstamp": explicit})
    assert chosen.client("bitstamp").limiter is explicit  # tests and benchmarks keep their own


# --------------------------------------------------------------------------- SharedRequestBudget


def test_two_request_budgets_on_one_store_never_grant_more_than_the_window(
    budget_store: BudgetStore,
):
    clock = FakeClock()
    capacity, span = 10, 10.0
    budgets = [
        SharedRequestBudget(
            budget_store.place("b"), capacity, span, 100, clock=clock, sleep=clock.sleep
        )
        for _ in range(2)
    ]
    grants: list[tuple[int, float]] = []
    for turn in range(60):
        which = turn % 2
        budgets[which].acquire()
        grants.append((which, clock()))
    times = [moment for _, moment in grants]
    assert most_in_any_window(times, span) == capacity  # and never more
    # Shared: the first window holds `capacity` grants between both, not `capacity` each.
    assert sum(1 for moment in times if moment < T0 + span) == capacity
    assert {which for which, _ in grants[:capacity]} == {0, 1}
    # Not over-cautious: a slot (1/60 of the window) is all it may lose per window.
    assert times[-1] - T0 <= (len(times) / capacity - 1) * span * (1 + 1 / 60) + 1e-6


def test_threads_on_two_budget_objects_share_one_budget(budget_store: BudgetStore):
    budgets = [
        SharedRequestBudget(
            budget_store.place("b"), 200, 60.0, 1000, clock=lambda: T0, sleep=never_sleep
        )
        for _ in range(2)
    ]
    granted = [0] * 8

    def grab(slot: int) -> None:
        try:
            while True:
                budgets[slot % 2].acquire()
                granted[slot] += 1
        except Exhausted:
            return

    threads = [threading.Thread(target=grab, args=(slot,)) for slot in range(len(granted))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(granted) == 200


def test_the_per_second_limit_is_shared_too(budget_store: BudgetStore):
    clock = FakeClock()
    budgets = [
        SharedRequestBudget(budget_store.place("b"), 8000, 600.0, 3, clock=clock, sleep=clock.sleep)
        for _ in range(3)
    ]
    times = []
    for turn in range(30):
        budgets[turn % 3].acquire()
        times.append(clock())
    assert most_in_any_window(times, 1.0) == 3


def test_a_block_by_one_process_holds_for_the_others(budget_store: BudgetStore):
    clock = FakeClock()
    first, second = (
        SharedRequestBudget(budget_store.place("b"), 100, 60.0, 10, clock=clock, sleep=clock.sleep)
        for _ in range(2)
    )
    first.block_until(T0 + 7.5)
    second.acquire()
    assert clock() >= T0 + 7.5 and clock.sleeps


def grab_until_exhausted(where: BudgetPlace, kind: str, ready: Any, counts: Any, slot: int) -> None:
    """Child process: a budget at `where` at a frozen time; acquire until it would wait."""
    if kind == "request":
        budget: Any = SharedRequestBudget(
            where, 150, 60.0, 1000, clock=lambda: T0, sleep=never_sleep
        )
    else:
        budget = weight_budget(where, clock=lambda: T0, sleep=never_sleep)
    ready.wait()
    granted = 0
    try:
        while True:
            budget.acquire(1)
            granted += 1
    except Exhausted:
        counts[slot] = granted


def run_children(where: BudgetPlace, kind: str, children: int = 2) -> list[int]:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    counts = context.Array("i", [-1] * children)
    args = (where, kind, ready, counts)
    exits = run_forked(context, grab_until_exhausted, args, children, timeout=60, started=ready.set)
    assert exits == [0] * children
    return counts[:]


def test_two_processes_share_one_request_budget(budget_store: BudgetStore):
    counts = run_children(budget_store.place("b"), "request")
    assert min(counts) >= 0
    assert sum(counts) == 150  # per-process budgets would have granted 150 each


def test_two_processes_share_one_bitvavo_budget(budget_store: BudgetStore):
    path = budget_store.place("v")
    clock = FakeClock()
    seed = weight_budget(path, clock=clock, sleep=clock.sleep)
    seed.acquire(1)
    seed.observe(bitvavo_headers(120, T0 + 30), 1)  # the header says 120 weight are left
    counts = run_children(path, "weight")
    assert min(counts) >= 0
    assert sum(counts) == 120  # weight in flight in one process is seen by the other
    # They exited with their weight in flight: it is taken as spent, and no more of it blocks
    # than until the window's reset.
    after = weight_budget(path, clock=clock, sleep=clock.sleep)
    assert after.remaining == 0
    after.acquire(1)
    assert T0 + 30 <= clock() <= T0 + 31


class ProcessClock:
    """A fake wall clock that forked processes share (shared memory): it moves only when a
    process sleeps, to the end of that sleep (the time it last read plus the wait), and never
    back. `last` is what this process read last: the time its budget granted at, once
    `acquire` returns (the budget reads the clock inside its edit, then grants or sleeps).
    Each sleep also pauses a millisecond of real time, so that the other process gets its turn
    rather than one running through its requests alone; no assertion depends on it."""

    def __init__(self, context: Any, start: float = T0) -> None:
        self._now = context.Value("d", start)
        self.last = start

    def __call__(self) -> float:
        with self._now.get_lock():
            self.last = float(self._now.value)
        return self.last

    def sleep(self, seconds: float) -> None:
        with self._now.get_lock():
            self._now.value = max(self._now.value, self.last + seconds)
        time.sleep(0.001)


CAPACITY, SPAN, PER_SECOND, GRANTS = 10, 10.0, 3, 30


def pace(where: BudgetPlace, clock: ProcessClock, both: Any, times: Any, slot: int) -> None:
    """Child process: `GRANTS` requests through the budget at `where`, each grant's time kept;
    the second waits until both processes have had their first."""
    budget = SharedRequestBudget(where, CAPACITY, SPAN, PER_SECOND, clock=clock, sleep=clock.sleep)
    for index in range(GRANTS):
        budget.acquire()
        times[slot * GRANTS + index] = clock.last
        if index == 0:
            both.wait(60)


def test_two_processes_pacing_through_one_budget_stay_within_it(budget_store: BudgetStore):
    """Two processes that each want three windows' worth, on one clock that moves as they
    sleep: together they never exceed a window's requests, nor the per-second limit, and they
    use the budget (a window holds all it allows)."""
    context = multiprocessing.get_context("fork")
    clock = ProcessClock(context)
    both = context.Barrier(2)
    times = context.Array("d", [0.0] * 2 * GRANTS)
    place = budget_store.place("b")
    assert run_forked(context, pace, (place, clock, both, times), 2, timeout=120) == [0, 0]
    granted: list[float] = times[:]
    assert min(granted) >= T0
    assert most_in_any_window(granted, SPAN) == CAPACITY  # never more, and all of it
    assert most_in_any_window(granted, 1.0) <= PER_SECOND
    # Each process alone would have sent its 30 in 3 windows; the 60 together take 6.
    assert max(granted) - T0 >= (2 * GRANTS / CAPACITY - 1) * SPAN


def learn_in_turn(where: BudgetPlace, turns: list[Any], seen: Any, slot: int) -> None:
    """Child process `slot` of two, in lockstep through `turns` (events), on a frozen clock:
    each learns the budget from the other's headers (see the test)."""
    budget = weight_budget(where, clock=lambda: T0, sleep=never_sleep)
    if slot == 0:
        budget.acquire(1)  # the probe
        budget.observe(bitvavo_headers(50, T0 + 60), 1)
        turns[0].set()
        assert turns[1].wait(60)
        seen[0] = budget.remaining  # what the other's response said
        budget.acquire(5)  # in flight, never answered
        turns[2].set()
    else:
        assert turns[0].wait(60)
        seen[1] = budget.remaining  # what the other's response said
        budget.acquire(10)
        budget.observe(bitvavo_headers(40, T0 + 60), 10)
        turns[1].set()
        assert turns[2].wait(60)
        granted = 0
        with contextlib.suppress(Exhausted):
            while True:
                budget.acquire(1)
                granted += 1
        seen[2] = granted


def test_two_processes_each_learn_the_bitvavo_budget_from_the_others_headers(
    budget_store: BudgetStore,
):
    context = multiprocessing.get_context("fork")
    turns = [context.Event() for _ in range(3)]
    seen = context.Array("i", [-1] * 3)
    place = budget_store.place("v")
    assert run_forked(context, learn_in_turn, (place, turns, seen), 2, timeout=60) == [0, 0]
    # The second learnt 50 from the first's header, the first 40 from the second's; then the
    # second spent what was left less the first's weight in flight: 40 - 5.
    assert seen[:] == [40, 50, 35]


# ----------------------------------------------------------------------------- stale and crashed


def hold_the_lock_forever(path: str, held: Any) -> None:
    with StateFile(path).edit():
        held.set()
        time.sleep(600)


def test_a_holder_killed_with_the_lock_and_old_state_do_not_block(tmp_path: Path):
    path = tmp_path / "b.json"
    context = multiprocessing.get_context("fork")
    held = context.Event()
    holder = context.Process(target=hold_the_lock_forever, args=(str(path), held))
    holder.start()
    try:
        assert held.wait(60)
        with open(path, "a") as probe, pytest.raises(BlockingIOError):  # the child holds it
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.join(60)
    assert holder.exitcode == -signal.SIGKILL
    with open(path, "a") as probe:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel: no wait
        fcntl.flock(probe, fcntl.LOCK_UN)

    # What a crashed process left: a full window long ago, and a block that has expired.
    old = T0 - 3600
    with StateFile(path).edit() as state:
        state["windows"] = {"60.0": {"slot": 1.0, "counts": {str(math.floor(old)): 100}}}
        state["blocked_until"] = old + 30
    clock = FakeClock()
    budget = SharedRequestBudget(path, 100, 60.0, 10, clock=clock, sleep=clock.sleep)
    budget.acquire()
    assert clock.sleeps == []


def test_a_writer_killed_before_truncating_leaves_a_readable_document(tmp_path: Path):
    path = tmp_path / "b.json"
    clock = FakeClock()
    budget = SharedRequestBudget(path, 3, 60.0, 10, clock=clock, sleep=never_sleep)
    for _ in range(3):
        budget.acquire()
    # The tail of a longer, older document after the newline, as if truncate never ran.
    path.write_bytes(path.read_bytes() + b'"windows": {"60.0": {"slot": 1.0, "counts": {}}}}')
    with pytest.raises(Exhausted):
        SharedRequestBudget(path, 3, 60.0, 10, clock=clock, sleep=never_sleep).acquire()


def test_weight_in_flight_of_a_gone_process_is_dropped(budget_store: BudgetStore):
    path = budget_store.place("v")
    clock = FakeClock()
    budget = weight_budget(path, clock=clock, sleep=clock.sleep)
    budget.acquire(1)
    budget.observe(bitvavo_headers(100, T0 + 60, limit=100), 1)
    gone_pid = int(  # a process that has exited
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    host = budget._host
    with budget_store.state(path).edit() as state:
        state["in_flight"] = {
            "gone": {"host": host, "pid": gone_pid, "weight": 40, "at": T0},
            "hung": {"host": "elsewhere", "pid": 1, "weight": 30, "at": T0 - 121},
            "alive": {"host": "elsewhere", "pid": 1, "weight": 20, "at": T0 - 10},
        }
    # 100 left; the gone (40) and hung (30) requests count as spent, the live one is in flight.
    budget.acquire(10)
    assert clock.sleeps == []
    assert budget.remaining == 30
    with pytest.raises(Exhausted):
        weight_budget(path, clock=clock, sleep=never_sleep).acquire(1)


def test_only_a_pid_of_this_host_tells_that_its_process_is_gone(budget_store: BudgetStore):
    """Budgets shared across machines: another host's pid means nothing here, even when that
    host has the same name (two containers, cloned machines), nor may a live pid of this host
    keep weight in flight that a process started earlier booked (its pid was reused)."""
    path = budget_store.place("v")
    clock = FakeClock()
    budget = weight_budget(path, clock=clock, sleep=clock.sleep)
    budget.acquire(1)
    budget.observe(bitvavo_headers(100, T0 + 60, limit=100), 1)
    host, name = host_identity(), socket.gethostname()
    assert host.startswith(name) and host != name  # boot id and pid namespace (Linux)
    gone = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    old = T0 - 110  # 10 s short of `stale_seconds` (120)
    with budget_store.state(path).edit() as state:
        state["in_flight"] = {
            # a live pid here, but not the process that booked it (another start time)
            "reused": {"host": host, "pid": os.getpid(), "started": "1", "weight": 40, "at": T0},
            # a pid that is gone here, booked on a namesake host: it may be running there
            "namesake": {"host": f"{name}/another-boot/1", "pid": gone, "weight": 20, "at": old},
            "old entry": {"host": name, "pid": gone, "weight": 10, "at": old},  # no identity
        }
    budget.acquire(10)  # 100 - 40 (spent: its process is gone) - 30 in flight elsewhere
    assert budget.remaining == 60
    grabber = weight_budget(path, clock=clock, sleep=never_sleep)
    grabber.acquire(20)  # 60 - 30 - 10 (in flight here) = 20 left
    with pytest.raises(Exhausted):
        grabber.acquire(1)

    clock.now += 11  # the other hosts' entries have not changed for `stale_seconds`: gone
    assert grabber.remaining == 30  # their 30 count as spent; ours (11 s old) are in flight
    with pytest.raises(Exhausted):
        grabber.acquire(1)  # 30 - 10 - 20 in flight here: nothing left


def test_a_live_process_of_this_host_keeps_its_weight_in_flight(budget_store: BudgetStore):
    path = budget_store.place("v")
    clock = FakeClock()
    budget = weight_budget(path, clock=clock, sleep=clock.sleep)
    budget.acquire(1)
    budget.observe(bitvavo_headers(100, T0 + 60, limit=100), 1)
    me = {"host": host_identity(), "pid": os.getpid(), "weight": 40, "at": T0}
    with budget_store.state(path).edit() as state:
        state["in_flight"] = {
            "with start": {**me, "started": process_start(os.getpid())},
            "without": {**me, "weight": 30},
        }
    grabber = weight_budget(path, clock=clock, sleep=never_sleep)
    grabber.acquire(30)  # 100 - 70 in flight
    with pytest.raises(Exhausted):
        grabber.acquire(1)
    assert grabber.remaining == 100


def test_state_from_a_clock_that_went_back_waits_at_most_one_window(budget_store: BudgetStore):
    path = budget_store.place("b")
    future = T0 + 86_400
    with budget_store.state(path).edit() as state:
        state["windows"] = {"60.0": {"slot": 1.0, "counts": {str(math.floor(future)): 100}}}
    clock = FakeClock()
    SharedRequestBudget(path, 100, 60.0, 10, clock=clock, sleep=clock.sleep).acquire()
    assert 60.0 < clock() - T0 <= 61.0  # the future slot counts as now: one window (+ a slot)

    weights = budget_store.place("v")
    with budget_store.state(weights).edit() as state:
        state.update(reset_at=future, observed_reset=future, last_send=future, remaining=0)
        state.update(blocked_until=future)
    clock = FakeClock()
    budget = SharedWeightBudget(weights, headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep)
    budget.acquire(1)
    assert 0 < clock() - T0 <= 1800.0  # a ban read from the file lasts 30 minutes at most
    budget.observe(bitvavo_headers(900, clock() + 60), 1)
    assert budget.remaining == 900  # a fresh header is believed again


# ------------------------------------------------------------------------------ SharedWeightBudget


def test_two_weight_budgets_share_headers_and_weight_in_flight(budget_store: BudgetStore):
    clock = FakeClock()
    place = budget_store.place("v")
    first, second = (weight_budget(place, clock=clock, sleep=clock.sleep) for _ in range(2))
    first.acquire(1)  # the probe: alone until its response confirms the budget
    clock.on_sleep = lambda _: first.observe(bitvavo_headers(20, T0 + 60), 1)
    second.acquire(1)
    assert len(clock.sleeps) == 1  # the second waited for the first's response
    clock.on_sleep = None
    assert second.remaining == 20
    second.observe(bitvavo_headers(19, T0 + 60), 1)
    first.acquire(5)
    first.acquire(5)  # 10 of the 19 in flight in the first
    second.acquire(5)
    third = weight_budget(place, clock=clock, sleep=never_sleep)
    with pytest.raises(Exhausted) as waited:
        third.acquire(5)  # 19 - 10 - 5 = 4 left: not enough, so it waits for the reset
    assert clock() + waited.value.args[0] >= T0 + 60

    # A per-process budget (as before) would not have waited.
    alone = WeightBudget(
        headers=WEIGHT_HEADERS, reserve=0, pace_below=0.0, clock=FakeClock(), sleep=never_sleep
    )
    alone.acquire(1)
    alone.observe(bitvavo_headers(19, T0 + 60), 1)
    for _ in range(3):
        alone.acquire(5)


def test_a_ban_seen_by_one_process_holds_for_the_others(budget_store: BudgetStore):
    clock = FakeClock()
    first, second = (
        SharedWeightBudget(
            budget_store.place("v"), headers=WEIGHT_HEADERS, clock=clock, sleep=clock.sleep
        )
        for _ in range(2)
    )
    first.block_until(T0 + 90)
    second.acquire(1)
    assert clock() >= T0 + 90


# ------------------------------------------------------------------------- two real sync processes

# Bitstamp's window limit scaled down to 10 requests per 6 s (tally paces at 8): two syncs that
# each need about 8 requests fit it only if they pace together. The per-second limit stays.
LIMITS = RateLimits(bitstamp_budget=10, bitstamp_window_ms=6_000)
PACING = LIMITS.bitstamp_budget * 4 // 5  # what `sandbox_config` sets: one process's budget
SEED = 23
NOW_MS = 1_711_843_200_000  # 2024-03-31T00:00:00Z
INTERVAL, DAYS = "1h", 300  # 7200 hourly candles in pages of 1000: 8 requests per sync
MARKETS = ("BTC-EUR", "BTC-USD")  # one each: one writer per lake partition


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of the test's own: what it served and counted is the test's alone."""
    world = World(seed=SEED, days=10, now_ms=NOW_MS)
    with start_sandbox(seed=SEED, world=world, rate_limits=LIMITS) as running:
        yield running


def served(sandbox: Sandbox) -> dict[str, Any]:
    return requests.get(sandbox.bitstamp.stats_url, timeout=5).json()


def start_syncs(sandbox: Sandbox, root: Path, **extra: Any) -> list[subprocess.Popen[str]]:
    """Two sync processes with one config (one key, one data directory, `extra` keys)."""
    root.mkdir(parents=True)
    config = root / "tally.toml"
    config_file.write_config(config, {**sandbox_document(sandbox), **extra})
    assert f"requests_per_window = {PACING}" in config.read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(config), INTERVAL, str(DAYS), market],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )
        for market in MARKETS
    ]


def run_together(processes: list[subprocess.Popen[str]], window: float) -> list[dict[str, float]]:
    """Hold every process at its second request until all are there, then let them all go at
    the beginning of the sandbox's next rate window; their reports."""
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "waiting"
        start_at = (math.floor(time.time() / window) + 1) * window
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start_at!r}\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=300)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [process.returncode for process in processes] == [0] * len(processes)
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def refused(stats: dict[str, Any]) -> tuple[int, int]:
    """(429 responses, rate-limit refusals: 400.002) a sandbox served."""
    return stats["responses"].get("429", 0), stats["rate_limited"]


# On PostgreSQL too, left to `-m scale` (10-20 s): `make test` runs the same two syncs on a file,
# and the budget on a row is the same code as on a file (the tests above run on both).
@pytest.mark.parametrize(
    "budget_store", ["file", pytest.param("postgresql", marks=pytest.mark.scale)], indirect=True
)
def test_two_concurrent_syncs_with_one_key_get_no_429(
    sandbox: Sandbox, budget_store: BudgetStore, tmp_path: Path
):
    root = tmp_path / "syncs"
    processes = start_syncs(sandbox, root, **budget_store.config())
    runs = run_together(processes, LIMITS.bitstamp_window_ms / 1000)

    stats = served(sandbox)
    assert refused(stats) == (0, 0)  # no 429, no 400.002
    assert all(run["requests"] > 0 and run["retries"] == 0 for run in runs)
    total = sum(run["requests"] for run in runs)
    assert stats["requests"] == total
    fingerprint = Credentials.from_strings(sandbox.bitstamp.key, "-").fingerprint
    budgets = (root / "data" / ".ratelimit").glob("bitstamp-*.json")
    if budget_store.kind == "file":
        assert [path.name for path in budgets] == [f"bitstamp-{fingerprint}.json"]
    else:  # in the database instead, in the row of that name
        assert list(budgets) == []
        row = BudgetRow(budget_store.url, f"bitstamp-{fingerprint}")
        assert json.loads(budget_store.raw(row))["windows"]

    # They overlapped: each had sent its first request before either sent its second...
    assert max(run["first"] for run in runs) < min(run["last"] for run in runs)
    # ...and together asked for more than one window allows, while each fits its own pacing:
    # with a budget per process (as before) neither would have waited for anything, and the
    # sandbox would have refused what went beyond its budget.
    assert total > LIMITS.bitstamp_budget
    assert all(run["requests"] <= PACING for run in runs)

    # What the sandbox counted in each of its windows (refused requests included): never more
    # than its budget, so the requests beyond it went in a later window.
    windows = sandbox.app("bitstamp").limiter.windows()  # type: ignore[attr-defined]
    assert list(windows) == ["ip:127.0.0.1"]  # public candles: counted per address
    counts = list(windows["ip:127.0.0.1"].values())
    assert sum(counts) == total
    assert max(counts) <= LIMITS.bitstamp_budget
