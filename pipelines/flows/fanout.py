"""Fan-out: a sync whose streams run as flow runs of their own, on any worker of the pool.

    sync_flow(config, fan_out="sync-stream/sync-stream")   # a deployment of `stream_flow`

The parent (`sync_flow` with `fan_out`, which calls `fan_out_sync`) plans as a plain sync does,
then asks for one run of the `fan_out` deployment per exchange × stream (`account`, `candles`,
`trades`) with `run_deployment(..., timeout=0)` (linked to it as subflow runs), polls their
states until every one has ended (at most `CHILDREN_WAIT_SECONDS`, a day: then the parent fails
naming those still running or pending), reads back each child's results (the table artifact
`RESULTS_KEY` of its run: results are not persisted, and a child may run on another machine)
and fails naming every child that did not end Completed. The accounts go first, as in a plain
sync: they say where the candles start. Last, the parent alone sweeps the lake, rebuilds the
warehouse and publishes the run's artifacts, as a plain sync does.

Locks. A child (`stream_flow`) holds its data directory's lock *shared*, so that the children on
one machine run beside each other and no exclusive writer (`tally sync`, `tally warehouse`,
another deployment's plain sync) writes beside them, plus an exclusive lock of its own stream
(`<data_dir>/.streams/<exchange>-<stream>/.lock`): two parents asking for the same stream (a
market-data and a candles fan-out at once) run it one after the other. The parent holds the
data directory's lock exclusively only for its sweeps and the warehouse rebuild, never while its
children run (they would wait for it). These locks are `flock`s: they span one machine. Across
machines (workers with data directories of their own on a shared lake), when `rate_budget_url`
names a PostgreSQL database every worker reaches, a child also holds the lake's advisory lock
there shared and its stream's exclusively (`pipelines.lake_lock`, `pipelines.stream_lock`):
two children of one stream on different machines write one after the other, the second saying
on whom it waits, and no plain sync or parent sweep of any machine (which hold the lake's lock
exclusively: `sync.writer_locks`) writes or deletes beside them. Before each object it writes
or deletes, a child checks that its session still holds both (`write_guard`): a lock lost with
its connection stops it at its next write. Without that database, one writer per stream across
machines comes from the fan-out itself: the parent deployment runs one run at a time
(`concurrency_limit: 1`), asks for each stream once (the idempotency key names the parent run
and the stream, so that a parent run again after its own worker died finds its children instead
of asking again), and a child is run again only after its first process is declared lost (the
lost-run automation of docs/prefect-postgres-notes.md, on heartbeats).

A child that keeps dying (e.g. out of memory, taking its worker with it) would be rescheduled
for ever by that automation: a child fails at once in its `MAX_RUNS + 1`-th run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from prefect import flow, get_run_logger

from pipelines.config import Settings
from pipelines.datadir_lock import data_dir_lock
from pipelines.flows import sync
from pipelines.flows.markets import check_markets
from pipelines.flows.plan import floor_time
from pipelines.lake_lock import lake_name, lake_writer
from pipelines.stream_lock import stream_lock
from pipelines.write_guard import write_guard

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

STREAMS = ("account", "candles", "trades")
RESULTS_KEY = "stream-results"  # the table artifact of a child's results
STREAM_LOCKS = ".streams"  # under the data directory: one lock directory per exchange × stream
POLL_SECONDS = 2.0  # how often the parent reads its children's states
CHILDREN_WAIT_SECONDS = 24 * 3600  # the parent fails naming the children not ended by then
MAX_RUNS = 3  # a child run more often than this (rescheduled after lost runs) fails
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
_DATETIMES = ("first", "last")


class ChildRunsFailedError(RuntimeError):
    """Some of a fan-out's child runs did not end Completed (they are named)."""


@dataclass(frozen=True)
class Child:
    """One child run: a stream of one exchange, with the span the parent planned for it."""

    exchange: str
    stream: str  # one of STREAMS
    candles_start: datetime | None = None
    candles_end: datetime | None = None
    trades_since: datetime | None = None

    @property
    def name(self) -> str:
        return f"{self.stream} {self.exchange}"

    def parameters(self, config: str | None) -> dict[str, Any]:
        return {
            "config": config,
            "exchange": self.exchange,
            "stream": self.stream,
            "candles_start": self.candles_start,
            "candles_end": self.candles_end,
            "trades_since": self.trades_since,
        }


@flow(name="sync-stream", log_prints=True)
def stream_flow(
    config: str | None,
    exchange: str,
    stream: str,
    candles_start: datetime | None = None,
    candles_end: datetime | None = None,
    trades_since: datetime | None = None,
) -> list[dict[str, Any]]:
    """One exchange × stream of a fan-out sync (see the module docstring): `account` (every
    account stream), `candles` (every configured market and interval over
    [`candles_start`, `candles_end`)) or `trades` (every configured market's public trades
    since `trades_since`), as the plain sync's tasks run them. Its results are also published
    as the table artifact `RESULTS_KEY` of the run, where the parent reads them."""
    from prefect.artifacts import create_table_artifact
    from prefect.runtime import flow_run

    if stream not in STREAMS:
        raise ValueError(f"stream must be among {STREAMS}")
    if int(flow_run.run_count) > MAX_RUNS:
        raise RuntimeError(f"{stream} {exchange}: run {MAX_RUNS} times already; giving up")
    settings = sync.runtime(config).settings
    if exchange not in settings.exchanges:
        raise ValueError(f"unknown exchange: {exchange}")
    notice = get_run_logger().warning
    with (
        data_dir_lock(
            settings.data_dir,
            command=f"flow sync-stream {exchange} {stream}",
            wait=sync.LOCK_WAIT_SECONDS,
            notice=notice,
            shared=True,
        ),
        data_dir_lock(
            settings.data_dir / STREAM_LOCKS / f"{exchange}-{stream}",
            command=f"flow sync-stream {exchange} {stream}",
            wait=sync.LOCK_WAIT_SECONDS,
            notice=notice,
            sweep=False,
        ),
        _across_machines(settings, exchange, stream, notice),
    ):
        results = _run_stream(config, exchange, stream, candles_start, candles_end, trades_since)
    create_table_artifact(
        key=RESULTS_KEY,
        table=[encode(result) for result in results],
        description=f"{stream} {exchange}: one record per stream landed (read by the parent)",
    )
    return results


@contextmanager
def _across_machines(
    settings: Settings,
    exchange: str,
    stream: str,
    notice: Callable[[str], None],
    wait: float | None = sync.LOCK_WAIT_SECONDS,
) -> Iterator[None]:
    """When `rate_budget_url` is set: the lake's lock shared (`lake_lock`: no plain sync or
    parent sweep of any machine deletes meanwhile) and the stream's lock in that database
    (module docstring), both checked before every lake write of this process (`write_guard`):
    a lock lost with its session stops the run at its next write. Nothing without it."""
    if settings.rate_budget_url is None:
        yield
        return
    command = f"flow sync-stream {exchange} {stream}"
    with (
        lake_writer(settings, shared=True, command=command, wait=wait, notice=notice) as lake,
        stream_lock(
            settings.rate_budget_url,
            lake_name(settings),
            exchange,
            stream,
            command=command,
            wait=wait,
            notice=notice,
        ) as held,
    ):
        held_locks = [held] if lake is None else [lake, held]

        def check() -> None:
            for lock in held_locks:
                lock.check()

        with write_guard(check):
            yield


def _run_stream(
    config: str | None,
    exchange: str,
    stream: str,
    candles_start: datetime | None,
    candles_end: datetime | None,
    trades_since: datetime | None,
) -> list[dict[str, Any]]:
    if stream == "account":
        return sync._progress([sync.account_task.submit(config, exchange)], "account")
    settings = sync.runtime(config).settings.exchange(exchange)
    if stream == "candles":
        if candles_start is None or candles_end is None:
            raise ValueError("candles need candles_start and candles_end")
        futures = [
            sync.candles_task.submit(config, exchange, market, interval, candles_start, candles_end)
            for market in settings.markets
            for interval in settings.intervals
        ]
    else:
        futures = [
            sync.public_trades_task.submit(config, exchange, market, trades_since)
            for market in settings.markets
        ]
    return sync._progress(futures, f"{stream} {exchange}")


def fan_out_sync(
    deployment: str,
    config: str | None,
    exchanges: list[str] | None,
    what: list[str] | None,
    candles_since: datetime | None,
    markets_checked: bool,
    lake_checked: bool,
) -> list[dict[str, Any]]:
    """`sync_flow` with `fan_out=deployment` (module docstring): the same plan and the same end
    as a plain sync, its streams run as runs of `deployment` (a `stream_flow` deployment)."""
    rt = sync.runtime(config)
    chosen = set(what or sync.WHAT)
    if not chosen <= set(sync.WHAT):
        raise ValueError(f"what must be among {sync.WHAT}")
    names = sync._selected(exchanges, rt)
    if not lake_checked:
        with _exclusive(rt.settings):
            sync._quarantine(rt.settings)
    if not markets_checked:
        try:
            check_markets(rt, names)
        finally:
            rt.close()
    results: list[dict[str, Any]] = []
    if "account" in chosen:
        results += run_children(deployment, config, [Child(name, "account") for name in names])
    now = rt.now()
    children = []
    for name in names:
        settings = rt.settings.exchange(name)
        if "candles" in chosen and settings.markets and settings.intervals:
            start = candles_since or sync.account_start(rt, name) or now - timedelta(days=30)
            start = floor_time(start, timedelta(days=1))
            children.append(Child(name, "candles", candles_start=start, candles_end=now))
        if "trades" in chosen and settings.markets:
            since = now - timedelta(days=rt.settings.public_trades_days)
            children.append(Child(name, "trades", trades_since=since))
    results += run_children(deployment, config, children)
    with _exclusive(rt.settings):
        sync._quarantine(rt.settings)
        sync._refresh_warehouse(rt.settings)
        print(sync.summary_table(results))
        sync.publish(rt.settings, results)
    return results


def _exclusive(settings: Settings) -> AbstractContextManager[None]:
    """The data directory's lock, and the lake's when `rate_budget_url` is set, exclusive:
    the parent's sweeps and rebuild."""
    return sync.writer_locks(settings, "flow sync (fan-out)")


def run_children(
    deployment: str,
    config: str | None,
    children: Sequence[Child],
    wait_seconds: float = CHILDREN_WAIT_SECONDS,
) -> list[dict[str, Any]]:
    """Ask for a run of `deployment` per child, wait for them all (at most `wait_seconds`), and
    return their results; `ChildRunsFailedError` names those that did not end Completed, or
    had not ended in time."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    if not children:
        return []
    logger = get_run_logger()
    parent = flow_run.id
    runs: dict[UUID, Child] = {}
    for child in children:
        run = cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters=child.parameters(config),
                timeout=0,
                flow_run_name=child.name,
                idempotency_key=f"{parent}:{child.stream}:{child.exchange}",
            ),
        )
        runs[run.id] = child
    logger.info(f"asked for {len(runs)} run(s) of {deployment}: {_names(runs.values())}")
    ended = _wait(runs, seconds=wait_seconds)
    failed = [
        f"{runs[run.id].name} ({run.state_name}: {run.state.message if run.state else ''})"
        for run in ended
        if run.state_type is None or run.state_type.value != "COMPLETED"
    ]
    if failed:
        raise ChildRunsFailedError(f"stream run(s) did not complete: {'; '.join(failed)}")
    return _results(runs)


def _names(children: Iterable[Child]) -> str:
    return ", ".join(child.name for child in children)


def _wait(
    runs: dict[UUID, Child],
    *,
    seconds: float = CHILDREN_WAIT_SECONDS,
    read: Callable[[list[UUID]], list[FlowRun]] | None = None,
    log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[FlowRun]:
    """The flow runs `runs` once every one has ended, logging each end (`read` reads the
    states of the runs it is given: the Prefect API's by default). `ChildRunsFailedError`
    names those still not ended after `seconds`."""
    if read is None:
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        with get_client(sync_client=True) as client:

            def from_api(ids: list[UUID]) -> list[FlowRun]:
                return client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
                )

            return _wait(runs, seconds=seconds, read=from_api, log=log, clock=clock, sleep=sleep)
    say = log or get_run_logger().info
    deadline = clock() + seconds
    ended: dict[UUID, FlowRun] = {}
    last: dict[UUID, str] = {}
    while len(ended) < len(runs):
        if clock() >= deadline:
            left = [
                f"{child.name} ({last.get(run_id, 'not found')})"
                for run_id, child in runs.items()
                if run_id not in ended
            ]
            raise ChildRunsFailedError(
                f"stream run(s) still not ended after {seconds:g} s: {', '.join(left)}"
            )
        sleep(POLL_SECONDS)
        for run in read([run_id for run_id in runs if run_id not in ended]):
            last[run.id] = run.state_name or "no state"
            if run.state_type is not None and run.state_type.value in TERMINAL:
                ended[run.id] = run
                say(
                    f"{runs[run.id].name}: {run.state_name} "
                    f"({len(ended)}/{len(runs)} ended, run {run.run_count} time(s))"
                )
    return list(ended.values())


def _results(runs: dict[UUID, Child]) -> list[dict[str, Any]]:
    """Every child's results, from the last `RESULTS_KEY` artifact of its run."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    theirs = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=list(runs)),
        key=ArtifactFilterKey(any_=[RESULTS_KEY]),
    )
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=theirs, sort=ArtifactSort.CREATED_DESC)
    last: dict[UUID, Any] = {}
    for artifact in artifacts:
        if artifact.flow_run_id is not None:
            last.setdefault(artifact.flow_run_id, artifact.data)
    missing = [child.name for run_id, child in runs.items() if run_id not in last]
    if missing:
        raise ChildRunsFailedError(f"stream run(s) completed without results: {missing}")
    results: list[dict[str, Any]] = []
    for run_id in runs:
        data = last[run_id]
        results += [
            decode(record) for record in (json.loads(data) if isinstance(data, str) else data)
        ]
    return results


def encode(result: dict[str, Any]) -> dict[str, Any]:
    """A task's result (a `StreamResult` as a dict) as plain JSON values."""
    plain = {**result, "gaps": list(result["gaps"])}
    for name in _DATETIMES:
        moment = result.get(name)
        plain[name] = moment.isoformat() if moment is not None else None
    return plain


def decode(record: dict[str, Any]) -> dict[str, Any]:
    """`encode`'s inverse: the task's result as the plain sync returns it."""
    result = {**record, "gaps": tuple(record["gaps"])}
    for name in _DATETIMES:
        text = record.get(name)
        result[name] = datetime.fromisoformat(text) if text is not None else None
    return result
