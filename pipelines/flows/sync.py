"""Prefect flows: thin glue that plans streams and maps tasks over them.

Tasks take only plain parameters (a config file path, names, times) — never secrets, which the
task process reads from its environment, its config file or the Prefect Secret blocks the file
names (when a client is first made) — and return small `StreamResult`
dictionaries, never data. A task is retried by Prefect only for a retryable exchange error
(the HTTP layer has already retried it with back-off); a fatal error fails it at once.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timedelta
from functools import cache, wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture, as_completed

from pipelines import progress
from pipelines.config import Settings, load_settings
from pipelines.datadir_lock import data_dir_lock
from pipelines.datasets import ALL, FILLS, OTHER_EVENTS, TRANSFERS
from pipelines.exchanges.registry import get
from pipelines.flows.artifacts import publish
from pipelines.flows.markets import check_markets
from pipelines.flows.plan import Window, chunks, floor_time
from pipelines.flows.public_trades import STREAM as PUBLIC_TRADES_STREAM
from pipelines.flows.runtime import Runtime
from pipelines.http import RetryableError
from pipelines.lake_lock import lake_writer
from pipelines.quarantine import moved_lines, quarantine_lake
from pipelines.tables import render

WHAT = ("candles", "trades", "account")
# A flow run that finds another process writing the data directory (a `tally sync`, another
# deployment's run) waits this long for it, then fails with one line: scheduled work has no one
# to tell at once, and the next scheduled run comes anyway.
LOCK_WAIT_SECONDS = 30 * 60
_SETTINGS_LOCK = threading.Lock()
_P = ParamSpec("_P")
_T = TypeVar("_T")


@cache
def _settings_for(config: str | None) -> Settings:
    return load_settings(config)


def runtime(config: str | None) -> Runtime:
    """A runtime with clients of its own, so that a task's request counts are its own; the
    limiter behind them is still the one per exchange and key shared by the whole process."""
    with _SETTINGS_LOCK:
        return Runtime(_settings_for(config))


def writes_the_data_dir(name: str) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """The decorated flow holds its data directory's writer lock while it runs (`datadir_lock`),
    and the lake's exclusively when `rate_budget_url` is set (`writer_locks`): re-entrant when
    this process holds them already (`tally sync`, `tally demo`), else waited for at most
    `LOCK_WAIT_SECONDS`, saying so in the run's log. Its `config` parameter names the settings,
    hence the directory and the lake."""

    def decorate(function: Callable[_P, _T]) -> Callable[_P, _T]:
        signature = inspect.signature(function)

        @wraps(function)
        def locked(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            settings = _settings_for(bound.arguments["config"])
            with writer_locks(settings, f"flow {name}"):
                return function(*args, **kwargs)

        return locked

    return decorate


@contextmanager
def writer_locks(settings: Settings, command: str) -> Iterator[None]:
    """What a writer of the whole lake holds: the data directory's lock, and the lake's lock
    exclusively when `rate_budget_url` is set (`lake_lock`: no fan-out child of any machine
    writes meanwhile); each waited for at most `LOCK_WAIT_SECONDS`, saying so in the run's log."""
    with (
        data_dir_lock(settings.data_dir, command=command, wait=LOCK_WAIT_SECONDS, notice=_warn),
        lake_writer(settings, shared=False, command=command, wait=LOCK_WAIT_SECONDS, notice=_warn),
    ):
        yield


def _warn(text: str) -> None:
    get_run_logger().warning(text)


def _only_retryable(task: Any, task_run: Any, state: Any) -> bool:
    return isinstance(getattr(state, "data", None), RetryableError)


_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [5, 30],
    "retry_condition_fn": _only_retryable,
    "persist_result": False,
}


@contextmanager
def _reported(stream: str) -> Iterator[None]:
    """Tell the progress channel that the task's stream failed, and when Prefect retries it."""
    try:
        yield
    except Exception as error:
        progress.stream_failed(error, stream=stream, retry_in=_task_retry_in(error))
        raise


def _task_retry_in(error: BaseException) -> float | None:
    """Seconds until Prefect runs the current task again after `error` (None: it will not)."""
    if not isinstance(error, RetryableError):
        return None
    from prefect.runtime import task_run

    runs = int(task_run.run_count)  # 1 during the first run
    if not 1 <= runs <= _TASK_OPTIONS["retries"]:
        return None
    delays = _TASK_OPTIONS["retry_delay_seconds"]
    return float(delays[min(runs - 1, len(delays) - 1)])


@task(task_run_name="candles {exchange} {market} {interval}", **_TASK_OPTIONS)
def candles_task(
    config: str | None, exchange: str, market: str, interval: str, start: datetime, end: datetime
) -> dict[str, Any]:
    from pipelines.flows.candles import sync_candles

    with _reported(f"candles {exchange} {market} {interval}"), closing(runtime(config)) as rt:
        return dataclasses.asdict(sync_candles(rt, exchange, market, interval, Window(start, end)))


@task(task_run_name="public trades {exchange} {market}", **_TASK_OPTIONS)
def public_trades_task(
    config: str | None, exchange: str, market: str, since: datetime | None
) -> dict[str, Any]:
    from pipelines.flows.public_trades import STREAM, sync_public_trades

    with _reported(f"{STREAM} {exchange} {market}"), closing(runtime(config)) as rt:
        return dataclasses.asdict(sync_public_trades(rt, exchange, market, since=since))


@task(task_run_name="account {exchange}", **_TASK_OPTIONS)
def account_task(config: str | None, exchange: str) -> list[dict[str, Any]]:
    from pipelines.flows.account_streams import sync_account

    with _reported(f"account {exchange}"), closing(runtime(config)) as rt:
        return [dataclasses.asdict(result) for result in sync_account(rt, exchange)]


def _selected(exchanges: Sequence[str] | None, rt: Runtime) -> list[str]:
    names = list(exchanges) if exchanges else list(rt.settings.exchanges)
    unknown = set(names) - set(rt.settings.exchanges)
    if unknown:
        raise ValueError(f"unknown exchange(s): {', '.join(sorted(unknown))}")
    return names


def account_start(rt: Runtime, exchange: str) -> datetime | None:
    """The earliest moment the lake knows of the account on `exchange` (None: nothing landed)."""
    lake = rt.lake
    starts = []
    for dataset, column in (
        (FILLS.dataset, "executed_at"),
        (TRANSFERS.dataset, "executed_at"),
        (OTHER_EVENTS.dataset, "executed_at"),
    ):
        frame = lake.scan(dataset).filter(pl.col("exchange") == exchange)
        starts.append(frame.select(pl.col(column).min()).collect().item())
    ledger = ALL[get(exchange).ingestion.ledger.dataset].dataset
    starts.append(lake.scan(ledger).select(pl.col("executed_at").min()).collect().item())
    known = [s for s in starts if s is not None]
    return min(known) if known else None


def _progress(futures: Iterable[PrefectFuture[Any]], label: str) -> list[Any]:
    """Wait for `futures`, logging progress (done/total, rows, ETA) as each one finishes."""
    logger = get_run_logger()
    pending = list(futures)
    total, began, rows, results = len(pending), time.monotonic(), 0, []
    progress.tasks_planned(label, total)
    for done, future in enumerate(as_completed(pending), start=1):
        outcome = future.result()
        progress.task_done(label)
        for result in outcome if isinstance(outcome, list) else [outcome]:
            results.append(result)
            rows += sum(result["rows"].values())
        elapsed = time.monotonic() - began
        eta = elapsed / done * (total - done)
        logger.info(f"{label}: {done}/{total} tasks, {rows} rows landed, ETA {eta:.0f} s")
    return results


@flow(name="sync", log_prints=True)
def sync_flow(
    config: str | None = None,
    exchanges: list[str] | None = None,
    what: list[str] | None = None,
    candles_since: datetime | None = None,
    markets_checked: bool = False,
    lake_checked: bool = False,
    fan_out: str | None = None,
) -> list[dict[str, Any]]:
    """Everything new: account history first (it says where history starts), then the candles
    that value it and the configured markets' public trades (`_sync_here`).

    `fan_out` names a deployment of `pipelines.flows.fanout.stream_flow` ("sync-stream/
    sync-stream" in prefect.yaml): the streams then run as runs of it, one per exchange ×
    stream, on any worker of its pool (`fan_out_sync`). Without it, everything runs here."""
    if fan_out:
        from pipelines.flows.fanout import fan_out_sync

        return fan_out_sync(
            fan_out, config, exchanges, what, candles_since, markets_checked, lake_checked
        )
    return _sync_here(config, exchanges, what, candles_since, markets_checked, lake_checked)


@writes_the_data_dir("sync")
def _sync_here(
    config: str | None,
    exchanges: list[str] | None,
    what: list[str] | None,
    candles_since: datetime | None,
    markets_checked: bool,
    lake_checked: bool,
) -> list[dict[str, Any]]:
    """The streams as tasks of this flow run, holding the data directory for the whole run.

    Before any task, the configured markets are compared with the exchanges' market lists
    (`check_markets`, with this flow's own clients), unless `markets_checked` says the caller
    has just done so (`tally sync` does, before Prefect starts): once per run either way.
    Before the tasks and after them, unreadable lake files are moved to the quarantine
    (`quarantine_lake`; before them only unless `lake_checked` says the caller has just done
    so, as `tally sync` does): the tasks then fetch what they held again, and the run after
    them marks the holes the lake covers again as restored. Last, the warehouse's catalog is
    rebuilt (`_refresh_warehouse`)."""
    rt = runtime(config)
    chosen = set(what or WHAT)
    if not chosen <= set(WHAT):
        raise ValueError(f"what must be among {WHAT}")
    names = _selected(exchanges, rt)
    if not lake_checked:
        _quarantine(rt.settings)
    if not markets_checked:
        try:
            check_markets(rt, names)  # a typo fetches nothing
        finally:
            rt.close()  # the tasks have runtimes of their own
    results: list[dict[str, Any]] = []
    if "account" in chosen:
        results += _progress([account_task.submit(config, name) for name in names], "account")
    now = rt.now()
    futures = []
    for name in names:
        settings = rt.settings.exchange(name)
        if "candles" in chosen:
            start = candles_since or account_start(rt, name) or now - timedelta(days=30)
            start = floor_time(start, timedelta(days=1))
            futures += [
                candles_task.submit(config, name, market, interval, start, now)
                for market in settings.markets
                for interval in settings.intervals
            ]
        if "trades" in chosen:
            since = now - timedelta(days=rt.settings.public_trades_days)
            futures += [
                public_trades_task.submit(config, name, market, since)
                for market in settings.markets
            ]
    results += _progress(futures, "market data")
    _quarantine(rt.settings)
    _refresh_warehouse(rt.settings)
    print(summary_table(results))
    publish(rt.settings, results)
    return results


def _refresh_warehouse(settings: Settings) -> None:
    """Rebuild the warehouse's catalog after a run, so that a dataset's first files are seen
    (its views read the lake's files as they are; a view is created once a dataset has files):
    a scheduled run leaves it as fresh as `tally sync` does."""
    from pipelines.exchanges.registry import warehouse_rules
    from warehouse.build import build

    get_run_logger().info(f"warehouse rebuilt: {build(settings, rules=warehouse_rules()).path}")


def _quarantine(settings: Settings) -> None:
    """Move the lake's unreadable files to the quarantine, saying so (`tally sync` has done it
    once before Prefect started: a file found here broke since)."""
    for line in moved_lines(quarantine_lake(settings)):
        get_run_logger().warning(line)


@flow(name="market-data", log_prints=True)
def market_data_flow(
    config: str | None = None, exchanges: list[str] | None = None, fan_out: str | None = None
) -> list[Any]:
    """Hourly: public trades (Bitstamp's only exist inside a rolling window) and fresh candles."""
    return sync_flow(config, exchanges, ["trades", "candles"], fan_out=fan_out)


@flow(name="candles", log_prints=True)
def candles_flow(
    config: str | None = None, exchanges: list[str] | None = None, fan_out: str | None = None
) -> list[Any]:
    """Daily: candles of every configured market and interval since the account began."""
    return sync_flow(config, exchanges, ["candles"], fan_out=fan_out)


@flow(name="account", log_prints=True)
def account_flow(
    config: str | None = None, exchanges: list[str] | None = None, fan_out: str | None = None
) -> list[Any]:
    """Daily: both accounts' ledgers, fills, transfers, balances and fees."""
    return sync_flow(config, exchanges, ["account"], fan_out=fan_out)


@flow(name="backfill", log_prints=True)
@writes_the_data_dir("backfill")
def backfill_flow(
    exchange: str,
    market: str,
    interval: str,
    start: datetime,
    end: datetime | None = None,
    config: str | None = None,
) -> list[dict[str, Any]]:
    """Candles of one market and interval over [start, end), one task per year."""
    rt = runtime(config)
    _quarantine(rt.settings)
    span = Window(start, min(end or rt.now(), rt.now()))
    futures = [
        candles_task.submit(
            config, exchange, market, interval, max(year.start, span.start), min(year.end, span.end)
        )
        for year in chunks(span, "year")
    ]
    results = _progress(futures, f"backfill {exchange} {market} {interval}")
    _refresh_warehouse(rt.settings)
    print(summary_table(results))
    publish(rt.settings, results)
    return results


def lost_data(results: Sequence[dict[str, Any]]) -> list[str]:
    """The gaps of this run that are data lost for good: public trades that Bitstamp's rolling
    window no longer reaches (the poll came too late). The other gaps a run records are ranges
    where the exchange has nothing to give (before a market's listing, a delisted market's
    trades): they are in `coverage` with their reason but are not a problem of the run."""
    return [
        gap
        for result in results
        if result["stream"].startswith(PUBLIC_TRADES_STREAM)
        for gap in result["gaps"]
    ]


SUMMARY_COLUMNS = ("stream", "rows", "windows", "requests", "weight", "retries", "gaps")


def summary_records(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run summary, a record per stream and a last one for the total: `landed` (rows per
    dataset, "candles 10, raw 5", or "-"), then the numbers of `SUMMARY_COLUMNS`: rows landed,
    windows, requests, weight, retries and gaps."""
    records: list[dict[str, Any]] = []
    totals = dict.fromkeys(SUMMARY_COLUMNS[1:], 0)
    for result in sorted(results, key=lambda r: r["stream"]):
        numbers = {
            "rows": sum(result["rows"].values()),
            "windows": result["windows"],
            "requests": result["requests"],
            "weight": result["weight"],
            "retries": result["retries"],
            "gaps": len(result["gaps"]),
        }
        totals = {name: totals[name] + numbers[name] for name in totals}
        landed = ", ".join(f"{k} {v}" for k, v in sorted(result["rows"].items()) if v) or "-"
        records.append({"stream": result["stream"], "landed": landed, **numbers})
    records.append({"stream": "total", "landed": str(totals["rows"]), **totals})
    return records


def summary_table(results: Sequence[dict[str, Any]]) -> str:
    """The run summary (`summary_records`) as a text table, rows per dataset under "rows"."""
    rows: list[tuple[str, ...]] = [SUMMARY_COLUMNS]
    for record in summary_records(results):
        shown = {**record, "rows": record["landed"]}
        rows.append(tuple(str(shown[name]) for name in SUMMARY_COLUMNS))
    return "\n".join(render(rows))


def config_path(path: Path | str | None) -> str | None:
    """Tasks get an absolute config path, so a worker in another directory reads the same file."""
    return str(Path(path).resolve()) if path is not None else None
