"""Prefect at scale, part by part: a Prefect server on PostgreSQL, a work pool of process workers
that share deployments' runs and a rate limit that processes share through the server
(docs/prefect-postgres-notes.md); then issue 16's end-to-end test.

Everything runs on loopback: a throwaway PostgreSQL (`postgres`), `prefect server start` on it
(`prefect_on_postgres`), `prefect worker start` processes started here, and flows of
`scale_flows.py` deployed from this directory: the parts first. Then tally's own fan-out
(`pipelines/flows/fanout.py`): a sync of a sandbox served by this process into a lake on S3 (a
moto server of this process), its rate budgets in a PostgreSQL row, whose streams run on two
workers with data directories of their own, one of them killed in the middle (a run whose
worker is killed runs again on the other), against a plain sync of the same sandbox: the same
warehouse, and no rate-limit refusal served.

The module is marked `scale` (and `slow`): `pytest -m scale` runs it alone, `-m "not scale"`
leaves it out. Its time is mostly waiting: for processes to import Prefect, for the workers to
poll, and (the last test) for the server to notice a lost run (its heartbeat's `within`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Event, Thread
from typing import Any, cast
from uuid import UUID

import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal
from postgres_server import PostgresServer
from prefect_api import PrefectApi, pointed_at
from prefect_server import PREFECT, PrefectServer
from process_tree import Started, descendants, kill_seen
from s3_server import S3Server, s3_fixture
from test_flows import assert_published

from pipelines.config import Settings, load_settings
from pipelines.config_file import write_config
from pipelines.datasets import ALL
from pipelines.flows.fanout import (
    STREAM_LOCKS,
    STREAMS,
    Child,
    ChildRunsFailedError,
    run_children,
)
from pipelines.http._pgstate import TABLE as BUDGET_TABLE
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox_config import sandbox_document
from warehouse.connect import connect

pytestmark = [pytest.mark.scale, pytest.mark.slow]

s3 = s3_fixture(bucket="tally-fan-out")

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
RATE_WORKER = TESTS / "rate_limit_worker.py"
COMMAND_SECONDS = 90.0  # one `prefect ...` CLI call (importing Prefect is slow on busy cores)
WORKERS_SECONDS = 90.0  # until both workers have registered with the server
RUN_SECONDS = 120.0  # from asking for a run to its end, on an idle worker
HEARTBEAT_SECONDS = 30  # the flow runs' heartbeats: Prefect's minimum (PREFECT_FLOWS_...)
LOST_AFTER = timedelta(seconds=45)  # no heartbeat for this long: the run is lost
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
WORKER_SETTINGS = {
    "PREFECT_WORKER_QUERY_SECONDS": "2",  # poll for runs every 2 s (default 10)
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),  # the flow runs inherit it
    "PREFECT_LOGGING_LEVEL": "INFO",
}


@dataclass
class Pool:
    """A work pool of type `process` and the workers started for it (by name)."""

    name: str
    workers: dict[str, Started]

    def report(self) -> str:
        return "\n".join(worker.tail() for worker in self.workers.values())


@pytest.fixture(scope="module")
def api(
    prefect_on_postgres: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """The PostgreSQL-backed server, with this process's Prefect pointed at it."""
    server = prefect_on_postgres
    with pointed_at(PrefectApi(server.url, server.home), tmp_path_factory.mktemp("client")):
        yield server


def start_pool(
    server: PrefectServer,
    name: str,
    directory: Path,
    count: int = 2,
    *,
    env: Mapping[str, str] | None = None,
    own: Path | None = None,
) -> Pool:
    """Create the work pool `name` (the runbook's CLI) and start `count` workers for it, each
    running at most one flow run at a time (`--limit 1`), so that runs asked for together
    spread over the workers, with `env` added to their environment. With `own`, a directory,
    each worker sees a directory of its own at that path (`on_own_machine`). Returns once every
    worker has registered with the server."""
    directory.mkdir(parents=True, exist_ok=True)
    created = subprocess.run(
        [*PREFECT, "work-pool", "create", name, "--type", "process"],
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    pool = Pool(name, {})
    for number in range(1, count + 1):
        worker = f"{name}-w{number}"
        home = directory / f"{worker}-home"
        command = [
            *PREFECT,
            "worker",
            "start",
            *("--pool", name, "--type", "process"),
            *("--name", worker, "--limit", "1"),
        ]
        if own is not None:
            mine = directory / f"{worker}-own"
            mine.mkdir()
            command = on_own_machine(command, mine, own)
        pool.workers[worker] = Started.start(
            worker,
            command,
            logs=directory,
            env=server.env(home=home, **WORKER_SETTINGS, **(env or {})),
            cwd=directory,
        )
    try:
        _wait_online(server, pool)
    except BaseException:
        stop_pool(pool)
        raise
    return pool


def mount_namespaces(directory: Path) -> bool:
    """Whether this machine lets a process have mounts of its own (`on_own_machine`, tried in
    `directory`: no privilege needed where user namespaces are enabled)."""
    mine, path = directory / "mine", directory / "path"
    mine.mkdir(parents=True)
    path.mkdir()
    (mine / "seen").touch()
    try:
        done = subprocess.run(
            on_own_machine(["test", "-e", str(path / "seen")], mine, path),
            capture_output=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and not (path / "seen").exists()


def on_own_machine(command: list[str], mine: Path, path: Path) -> list[str]:
    """`command` in a mount namespace of its own where `path` is `mine` (a bind mount), as on a
    machine of its own with the same checkout and config: everything else is shared. The
    command replaces the shell, so that its pid is the one started (and killed)."""
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    return [
        *("unshare", "--user", "--map-root-user", "--mount", "--"),
        *("sh", "-c", script, "sh", str(mine), str(path), *command),
    ]


def stop_pool(pool: Pool) -> None:
    for worker in pool.workers.values():
        worker.stop()


def _wait_online(server: PrefectServer, pool: Pool) -> None:
    deadline = time.monotonic() + WORKERS_SECONDS
    online: set[str] = set()
    while time.monotonic() < deadline:
        for worker in pool.workers.values():
            assert worker.process.poll() is None, pool.report()
        reply = requests.post(f"{server.url}/work_pools/{pool.name}/workers/filter", timeout=10)
        reply.raise_for_status()
        online = {w["name"] for w in reply.json() if w["status"] == "ONLINE"}
        if online >= set(pool.workers):
            return
        time.sleep(0.5)
    pytest.fail(f"workers online after {WORKERS_SECONDS} s: {sorted(online)}\n{pool.report()}")


@pytest.fixture(scope="module")
def pool(api: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    started = start_pool(api, "scale", tmp_path_factory.mktemp("pool"))
    try:
        yield started
    finally:
        stop_pool(started)


def deploy(entrypoint: str, name: str, pool: Pool, source: Path = TESTS) -> str:
    """Deploy `scale_flows.py:<entrypoint>` from this directory (or `entrypoint`, a `path:flow`,
    from `source`) to `pool`: no image, no build, no push; the worker runs it from there.
    Returns `flow-name/deployment-name`."""
    from prefect import Flow, flow

    if ":" not in entrypoint:
        entrypoint = f"scale_flows.py:{entrypoint}"
    deployed = cast(Flow[..., Any], flow.from_source(source=str(source), entrypoint=entrypoint))
    deployed.deploy(
        name=name,
        work_pool_name=pool.name,
        build=False,
        push=False,
        print_next_steps=False,
        ignore_warnings=True,
    )
    return f"{deployed.name}/{name}"


def ask(deployment: str, **parameters: Any) -> UUID:
    """A new run of `deployment` (not waited for)."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = cast(FlowRun, run_deployment(deployment, parameters=parameters, timeout=0))
    return run.id


def read_run(run_id: UUID) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_ended(run_id: UUID, seconds: float, pool: Pool) -> Any:
    """The flow run once in a terminal state; fails the test after `seconds`."""
    deadline = time.monotonic() + seconds
    run = read_run(run_id)
    while time.monotonic() < deadline:
        if run.state_type is not None and run.state_type.value in TERMINAL:
            return run
        time.sleep(1)
        run = read_run(run_id)
    pytest.fail(f"flow run {run_id} still {run.state_name} after {seconds:g} s\n{pool.report()}")


def test_the_server_keeps_its_state_in_postgresql(
    prefect_on_postgres: PrefectServer, postgres: PostgresServer
) -> None:
    server = prefect_on_postgres
    assert requests.get(f"{server.url}/health", timeout=10).json() is True
    tables = {
        name
        for (name,) in postgres.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert {
        "alembic_version",
        "flow_run",
        "deployment",
        "work_pool",
        "worker",
        "automation",
        "concurrency_limit_v2",
        "events",
    } <= tables, sorted(tables)
    assert postgres.fetch("SELECT version_num FROM alembic_version")  # migrated
    assert not list(server.home.glob("*.db")), "a SQLite database beside PostgreSQL"
    print(
        f"prefect server healthy on PostgreSQL {postgres.version} after "
        f"{server.startup_seconds:.1f} s (migrations on an empty database included)"
    )


def test_runs_asked_together_run_on_both_workers(pool: Pool) -> None:
    deployment = deploy("hello", "hello", pool)
    asked = time.monotonic()
    # each run lasts long enough (15 s) for the other worker to poll (every 2 s) and start its
    # flow run process, even on two busy cores: the split below does not hang on a race
    runs = [ask(deployment, seconds=15) for _ in pool.workers]
    ended = [wait_ended(run, RUN_SECONDS, pool) for run in runs]
    took = time.monotonic() - asked
    assert [run.state_type.value for run in ended] == ["COMPLETED"] * len(runs), pool.report()
    assert all(run.work_pool_name == pool.name for run in ended)
    # each worker runs one flow run at a time: the second run went to the other worker
    names = sorted(run.labels["prefect.worker.name"] for run in ended)
    assert names == sorted(pool.workers), (names, pool.report())
    print(f"{len(runs)} runs on {names} in {took:.1f} s")


def test_a_rate_limit_is_one_budget_for_two_processes(api: PrefectServer) -> None:
    """Two processes each take `count` slots of one global concurrency limit with slot decay
    (`rate_limit`): together they stay within the limit's budget.

    Prefect's server grants a slot when the limit's active slots, decayed by
    floor(decay × seconds since its last change), leave room; a grant stores the decayed
    count plus one, refusals change nothing. Over the grants g_1..g_m in any time span T,
    then, m ≤ limit + decay × T (each grant adds one slot, at most decay × T decay in
    between, and at most `limit` are held). Each grant happened between the sending of its
    request and its answer (one clock: one machine): for every span [sent_i, answered_j]
    the grants whose request lies wholly inside it are counted against that bound.
    """
    limit, decay, count = 4, 4.0, 12
    name = f"rate-{os.getpid()}-{time.monotonic_ns()}"
    created = requests.post(
        f"{api.url}/v2/concurrency_limits/",
        json={"name": name, "limit": limit, "slot_decay_per_second": decay},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    processes = [
        subprocess.Popen(
            [sys.executable, str(RATE_WORKER), name, str(count)],
            env=api.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready", process.communicate()
        start = time.time() + 0.5  # both are told before either is waited for
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start}\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0], outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    grants = sorted(
        (sent, answered)
        for r in results
        for sent, answered, status in r["attempts"]
        if status == 200
    )
    refused = sum(1 for r in results for *_, status in r["attempts"] if status == 423)
    assert len(grants) == 2 * count, results  # every call took exactly one slot
    assert [len(r["calls"]) for r in results] == [count, count]
    worst = 0.0
    for sent, _ in grants:
        for _, answered in grants:
            if answered <= sent:
                continue
            inside = sum(1 for s, a in grants if s >= sent and a <= answered)
            allowed = limit + decay * (answered - sent)
            assert inside <= allowed, (inside, allowed, sent - start, answered - start)
            worst = max(worst, inside / allowed)
    # the two were paced as one: together no faster than one budget
    span = grants[-1][1] - grants[0][0]
    assert span >= (2 * count - limit) / decay
    # and they did take turns: each had a grant while the other still had some to take
    ends = [
        max(answered for _, answered, status in r["attempts"] if status == 200) for r in results
    ]
    firsts = [min(sent for sent, _, status in r["attempts"] if status == 200) for r in results]
    assert firsts[0] < ends[1] and firsts[1] < ends[0]
    rate = (2 * count - limit) / span
    print(
        f"{2 * count} slots of limit={limit} decay={decay}/s in {span:.2f} s: "
        f"{rate:.2f}/s after the burst ({rate / decay:.0%} of the decay), {refused} refusals "
        f"(423), fullest span at {worst:.0%} of its bound"
    )


def lost_run_automation(within: timedelta) -> Any:
    """An automation that puts a flow run back to Scheduled when no heartbeat of it came for
    `within` since it started running or since its last heartbeat (nor an end): its process
    is gone, with its worker or machine. Any worker of its pool then runs it again. `within`
    must well exceed the flow runs' heartbeat interval (PREFECT_FLOWS_HEARTBEAT_FREQUENCY), or
    live runs are taken for lost ones."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    ends = ("Completed", "Failed", "Cancelled", "Crashed", "Scheduled")
    return Automation(
        name="reschedule-lost-flow-runs",
        description="A flow run with no heartbeat is lost: run it again on any worker.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            # Running too: a run killed before its first heartbeat reached the server
            # would otherwise never be missed
            after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in ends)},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.SCHEDULED,
                name="Rescheduled",
                message="no heartbeat: its worker is gone; run again by any worker",
                force=False,  # Running -> Scheduled is allowed as it is
            )
        ],
    )


FAN_OUT_NOW = datetime(2024, 3, 31, tzinfo=UTC)
# the fan-out's child with the most work (Bitstamp's candles since its oldest ledger row: some
# 250 requests, seconds): still running when the test sees it Running and kills its worker
KILLED_CHILD = "candles bitstamp"
FETCH_MOMENTS = ("fetched_at", "taken_at")  # when a row was fetched (a snapshot taken)
CHILDREN = {f"{stream} {exchange}" for stream in STREAMS for exchange in ("bitstamp", "bitvavo")}


def config_in(sandbox: Sandbox, directory: Path, **keys: str) -> Path:
    """`directory`/tally.toml on `sandbox` (as `tally sandbox --write-config` writes it) with
    `keys` added, its data in `directory`/data (an absolute path: a worker reads it from its
    own directory)."""
    directory.mkdir(parents=True)
    document = {**sandbox_document(sandbox), **keys}
    document["data_dir"] = str(directory / "data")
    config = directory / "tally.toml"
    write_config(config, document)
    return config


def lake_values(settings: Settings) -> dict[str, pl.DataFrame]:
    """Every dataset's rows in the lake of `settings`, in key order, but the moments of their
    fetch (`FETCH_MOMENTS`: the wall clock's, not the sandbox's frozen one)."""
    lake = Lake.of(settings)
    frames = {}
    for name, source in ALL.items():
        if lake.files(source.dataset):
            key = [column for column in source.dataset.key if column not in FETCH_MOMENTS]
            frame = lake.scan(source.dataset).collect().drop(FETCH_MOMENTS, strict=False)
            frames[name] = frame.sort([*key, *(c for c in frame.columns if c not in key)])
    return frames


def warehouse_values(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every model's rows (tables and views) in the warehouse of `settings`, read over its
    lake, sorted, with the lake's location cut out of any text and every moment after the
    sandbox's frozen now masked: the wall clock's (when a page was fetched, a balance snapshot
    taken, the warehouse built), which two syncs cannot share (as tests/test_lake_s3_sync.py)."""
    location = Lake.of(settings).location
    with connect(settings.data_dir, lake=location, s3=settings.s3) as connection:
        names = [
            name
            for (name,) in connection.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'main' order by table_name"
            ).fetchall()
        ]
        return {
            name: sorted(
                (
                    tuple(_masked(value, location) for value in row)
                    for row in connection.execute(f'select * from "{name}"').fetchall()
                ),
                key=repr,
            )
            for name in names
        }


def _masked(value: Any, location: str) -> Any:
    if isinstance(value, str):
        return value.replace(location, "<lake>")
    if isinstance(value, datetime):
        now = FAN_OUT_NOW if value.tzinfo is not None else FAN_OUT_NOW.replace(tzinfo=None)
        return "<wall clock>" if value > now else value
    return value


def served(sandbox: Sandbox) -> dict[str, dict[str, int]]:
    """What each exchange of `sandbox` refused for its rate limits (`GET /_sandbox/stats`):
    429s served (Bitvavo's errorCode 110 among them), Bitstamp's 400.002 / Bitvavo's limit
    refusals (`rate_limited`), bans started (Bitvavo) and requests refused while banned (105)."""
    found = {}
    for side in (sandbox.bitstamp, sandbox.bitvavo):
        stats = requests.get(side.stats_url, timeout=10).json()
        found[stats["exchange"]] = {
            "requests": stats["requests"],
            "429": stats["responses"].get("429", 0),
            "rate_limited": stats["rate_limited"],
            "bans": stats["bans"],
            "banned_requests": stats["banned_requests"],
        }
    return found


class Killer(Thread):
    """Once the flow run named `child` is Running, kills the worker running it and that worker's
    descendants (the flow run's process): a machine lost in the middle of a sync."""

    def __init__(self, server: PrefectServer, pool: Pool, child: str) -> None:
        super().__init__(daemon=True)
        self.server, self.pool, self.child = server, pool, child
        self.done = Event()
        self.victim: Started | None = None
        self.run_id: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.is_set():
                if self._kill_when_running():
                    return
                time.sleep(0.1)
        except BaseException as error:
            self.error = error

    def _kill_when_running(self) -> bool:
        reply = requests.post(
            f"{self.server.url}/flow_runs/filter",
            json={"flow_runs": {"name": {"any_": [self.child]}}},
            timeout=10,
        )
        reply.raise_for_status()
        for run in reply.json():
            worker = run["labels"].get("prefect.worker.name")
            if run["state_type"] == "RUNNING" and worker in self.pool.workers:
                victim = self.pool.workers[worker]
                family = descendants(victim.pid)
                os.kill(victim.pid, signal.SIGKILL)
                kill_seen(family)
                self.victim, self.run_id = victim, run["id"]
                return True
        return False


def fan_out_failure(deployment: str, config: Path, child: Child) -> str:
    """What a parent that asked for `child` alone failed with (it must fail)."""
    from prefect import flow

    @flow(name="fan-out-of-one")
    def parent() -> list[dict[str, Any]]:
        return run_children(deployment, str(config), [child])

    with pytest.raises(ChildRunsFailedError) as failed:
        parent()
    return str(failed.value)


def child_runs(deployment: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    with get_client(sync_client=True) as client:
        ours = client.read_deployment_by_name(deployment).id
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[ours]))
        )


def test_a_fan_out_sync_into_s3_on_two_workers_equals_a_plain_one_and_a_killed_one_loses_nothing(
    api: PrefectServer,
    postgres: PostgresServer,
    s3: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 16's end-to-end test. A sync with `fan_out` of a sandbox into a lake on S3 (the
    loopback moto server) runs its six streams (account, candles, trades × two exchanges) as
    runs of a `sync-stream` deployment on two workers (`--limit 1`) of the Prefect server on
    PostgreSQL, every process sharing one rate budget per key in a row of a PostgreSQL database
    of the test's own (`rate_budget_url`), each worker with a data directory of its own at the
    config's path (a mount namespace: as on machines of their own, only caches are local). The
    worker running Bitstamp's candles is killed with that run's process as soon as it runs: the
    lost-run automation puts the run back to Scheduled, the other worker runs it again, and the
    parent (run here, so that both workers are free for its children) ends Completed, having
    rebuilt its warehouse over the bucket. That warehouse equals, model by model and value for
    value (but the wall clock's moments), the one of a plain sync of the same sandbox in one
    process into a local lake, and the sandbox served no 429, no 400.002 and no ban."""
    from prefect import get_client
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from pipelines.flows.sync import sync_flow

    database = f"budgets_{uuid.uuid4().hex[:10]}"
    postgres.execute(f'CREATE DATABASE "{database}"')
    budget = {"rate_budget_url": postgres.url(database)}
    for name, value in s3.environment().items():  # the parent reads the lake here
        monkeypatch.setenv(name, value)
    separate = mount_namespaces(tmp_path / "namespaces")
    if not separate:  # said where a reader of the run sees it: a part of the test not checked
        warnings.warn(
            "no mount namespaces here: the workers share the parent's data directory, and "
            "that each keeps only caches of its own is not checked",
            stacklevel=1,
        )
    with start_sandbox(seed=3, days=10, now_ms=int(FAN_OUT_NOW.timestamp() * 1000)) as sandbox:
        plain = config_in(sandbox, tmp_path / "plain", **budget)
        plain_results = sync_flow(str(plain))
        fanned = config_in(sandbox, tmp_path / "fan-out", lake_url=s3.url("fan-out"), **budget)
        parent_dir = load_settings(fanned).data_dir
        parent_dir.mkdir()  # the workers' own directories are mounted on it
        automation = lost_run_automation(LOST_AFTER).create()
        fan_pool: Pool | None = None
        killer: Killer | None = None
        try:
            fan_pool = start_pool(
                api,
                "fan-out",
                tmp_path / "pool",
                env=s3.environment(),
                own=parent_dir if separate else None,
            )
            child = deploy("pipelines/flows/fanout.py:stream_flow", "sync-stream", fan_pool, ROOT)
            killer = Killer(api, fan_pool, KILLED_CHILD)
            killer.start()
            began = time.monotonic()
            # heartbeats, as a worker's flow runs send them: the automation must not take
            # the parent for lost while it waits
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}):
                state = sync_flow(str(fanned), fan_out=child, return_state=True)
            took = time.monotonic() - began
            killer.done.set()
            killer.join(timeout=30)
            assert killer.error is None, killer.error
            assert state.is_completed(), (state, fan_pool.report())
            runs = {run.name: run for run in child_runs(child)}
            report = fan_pool.report()
            # a child that fails fails its parent, which names it (candles without a span)
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_SECONDS}):
                failure = fan_out_failure(child, fanned, Child("bitvavo", "candles"))
        finally:
            if killer is not None:
                killer.done.set()
            if fan_pool is not None:
                stop_pool(fan_pool)
            with get_client(sync_client=True) as client:
                client.delete_automation(automation.id)
        refusals = served(sandbox)

    results = state.result()
    assert_published(state.state_details.flow_run_id, results)
    assert sorted(r["stream"] for r in results) == sorted(r["stream"] for r in plain_results)
    # every stream ran as a child run linked to the parent, and completed
    assert set(runs) == CHILDREN, sorted(runs)
    assert all(run.parent_task_run_id is not None for run in runs.values())
    assert {name: run.state_type.value for name, run in runs.items()} == dict.fromkeys(
        CHILDREN, "COMPLETED"
    ), report
    # the killed run ran again, on the other worker; nothing else ran twice
    victim = killer.victim
    assert victim is not None, f"{KILLED_CHILD} was never seen running\n{report}"
    killed = runs[KILLED_CHILD]
    assert str(killed.id) == killer.run_id
    (survivor,) = set(fan_pool.workers) - {victim.name}
    assert killed.run_count == 2 and killed.labels["prefect.worker.name"] == survivor
    with get_client(sync_client=True) as client:
        states = [s.name for s in client.read_flow_run_states(killed.id)]
    assert "Rescheduled" in states and states[-1] == "Completed", states
    assert "Running" in states[states.index("Rescheduled") :], states
    assert {name: run.run_count for name, run in runs.items() if name != KILLED_CHILD} == (
        dict.fromkeys(CHILDREN - {KILLED_CHILD}, 1)
    )
    # both workers ran child runs: the victim the killed one, the survivor the rest
    ran_on = {run.labels["prefect.worker.name"] for run in runs.values()}
    assert ran_on | {victim.name} == set(fan_pool.workers)
    assert failure.startswith("stream run(s) did not complete: candles bitvavo (Failed: "), failure
    assert "candles need candles_start and candles_end" in failure, failure

    # the sandbox refused nothing for its rate limits, to anyone: one budget per key (the row)
    assert refusals == {
        exchange: {**counts, "429": 0, "rate_limited": 0, "bans": 0, "banned_requests": 0}
        for exchange, counts in refusals.items()
    }
    budget_rows = postgres.fetch(f"SELECT name FROM {BUDGET_TABLE}", database=database)
    assert {name.split("-")[0] for (name,) in budget_rows} == {"bitstamp", "bitvavo"}
    # the children's stream locks there (pipelines/stream_lock.py) are all released, the
    # killed child's with its session (its rerun could not have run otherwise)
    held = postgres.fetch(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND d.datname = $1",
        database,
    )
    assert held == [(0,)]
    # the lake is in the bucket, and every data directory holds only local things
    settings = load_settings(fanned)
    plain_settings = load_settings(plain)
    assert Lake.of(settings).location == s3.url("fan-out") and not settings.lake_dir.exists()
    directories = [settings.data_dir]
    if separate:
        own = [tmp_path / "pool" / f"{name}-own" for name in fan_pool.workers]
        # the children locked their streams in their worker's own directory, none in the
        # parent's: each stream in the directory of the worker that ran it to its end (and the
        # killed one, and the failing child above, maybe in the other's too)
        locked = {d.name: {p.name for p in (d / STREAM_LOCKS).iterdir()} for d in own}
        assert not (settings.data_dir / STREAM_LOCKS).exists()
        for directory in own:
            worker = directory.name.removesuffix("-own")
            ended_here = {
                f"{run.parameters['exchange']}-{run.parameters['stream']}"
                for run in runs.values()
                if run.labels["prefect.worker.name"] == worker
            }
            assert ended_here <= locked[directory.name], (worker, locked)
        assert set().union(*locked.values()) >= {
            f"{exchange}-{stream}" for stream in STREAMS for exchange in ("bitstamp", "bitvavo")
        }, locked
        assert not any((d / "lake").exists() for d in own)
        directories += own
    assert not [p for d in directories for p in d.rglob("*.parquet")]
    assert not [p for d in directories for p in d.rglob(".ratelimit/*")]  # in the database

    # the lake: the same rows, value for value, as the plain sync's
    expected, found = lake_values(plain_settings), lake_values(settings)
    assert set(found) == set(expected) and expected
    for name, frame in expected.items():
        assert_frame_equal(found[name], frame, check_exact=True)
    # the warehouse built over the bucket: every model equal to the plain sync's
    ours, theirs = warehouse_values(settings), warehouse_values(plain_settings)
    assert set(ours) == set(theirs) and len(theirs) > 10, sorted(ours)
    for name, rows in theirs.items():
        assert ours[name] == rows, name
    assert sum(map(len, ours.values())) > 0
    print(
        f"fan-out sync of {len(runs)} child runs on {sorted(fan_pool.workers)} "
        f"({'each with a data directory of its own' if separate else 'one data directory'}) "
        f"into {s3.url('fan-out')} in {took:.1f} s, {victim.name} killed with {KILLED_CHILD}; "
        f"states of the killed run {states}; {sum(f.height for f in found.values())} rows in "
        f"{len(found)} datasets and {len(ours)} models equal to the plain sync's; sandbox "
        f"served {refusals}"
    )
