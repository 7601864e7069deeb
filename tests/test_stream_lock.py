"""One writer per stream across machines: `pipelines.stream_lock` on a real PostgreSQL (the
session's `postgres` server, a database of this module's own), between processes and sessions;
and the fan-out's child taking it when `rate_budget_url` is set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresServer

from pipelines.config import load_settings
from pipelines.config_file import config_document, write_config
from pipelines.database_url import DatabaseUrl
from pipelines.stream_lock import (
    StreamLockedError,
    StreamLockLostError,
    lake_key,
    lake_lock,
    lock_key,
    stream_lock,
)

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "stream_lock_worker.py"
LAKE = "s3://bucket/lake"
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def url(postgres: PostgresServer) -> DatabaseUrl:
    database = f"streams_{uuid.uuid4().hex[:10]}"
    postgres.execute(f'CREATE DATABASE "{database}"')
    return DatabaseUrl(postgres.url(database))


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def start(
    holders: list[subprocess.Popen[str]],
    url: DatabaseUrl,
    stream: str = "candles",
    exchange: str = "bitstamp",
) -> subprocess.Popen[str]:
    """A worker holding `exchange` × `stream` (`exchange` "--lake": the lake's lock, `stream`
    "shared" or "exclusive")."""
    process = subprocess.Popen(
        [sys.executable, str(WORKER), url.reveal(), LAKE, exchange, stream],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
    )
    holders.append(process)
    assert line(process) == "asking"
    return process


def take(lock: AbstractContextManager[Any]) -> None:
    """Take `lock` and leave it."""
    with lock:
        pass


def line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()


def holder_names(url: DatabaseUrl, postgres: PostgresServer, key: int) -> list[str]:
    """The application names of the sessions holding `key`'s advisory lock."""
    return [name for name, _, _ in holding(url, postgres, key)]


def holding(url: DatabaseUrl, postgres: PostgresServer, key: int) -> list[tuple[str, str, int]]:
    """(application name, lock mode, server pid) of each session holding `key`, oldest first."""
    rows = postgres.fetch(
        "SELECT a.application_name, l.mode, l.pid"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.classid::bigint = $1 AND l.objid::bigint = $2 ORDER BY a.backend_start",
        (key >> 32) & 0xFFFFFFFF,
        key & 0xFFFFFFFF,
        database=url.reveal().rsplit("/", 1)[1],
    )
    return [(name, mode, pid) for name, mode, pid in rows]


def test_two_processes_asking_for_one_stream_run_one_after_the_other(
    url: DatabaseUrl, postgres: PostgresServer, holders: list[subprocess.Popen[str]]
) -> None:
    key = lock_key(LAKE, "bitstamp", "candles")
    first = start(holders, url)
    assert line(first) == "held"
    assert holder_names(url, postgres, key) == [f"tally test pid {first.pid} on {HOST}"]
    second = start(holders, url)
    # it waits, and says on whom
    assert line(second) == (
        f"notice waiting for stream bitstamp candles of lake {LAKE} (at most 60 s): "
        f"in use by tally test pid {first.pid} on {HOST}"
    )
    assert holder_names(url, postgres, key) == [f"tally test pid {first.pid} on {HOST}"]
    release(first)
    assert line(first) == "released"
    assert line(second) == "held"  # only now
    assert holder_names(url, postgres, key) == [f"tally test pid {second.pid} on {HOST}"]
    release(second)
    assert line(second) == "released"
    assert [p.wait(timeout=30) for p in (first, second)] == [0, 0]
    assert holder_names(url, postgres, key) == []


def test_a_killed_holder_leaves_the_stream_free(
    url: DatabaseUrl, holders: list[subprocess.Popen[str]]
) -> None:
    holder = start(holders, url, "trades")
    assert line(holder) == "held"
    with pytest.raises(StreamLockedError, match=f"in use by tally test pid {holder.pid}"):
        take(stream_lock(url, LAKE, "bitstamp", "trades"))
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    noticed: list[str] = []
    # its session ends with its socket: the lock is free (the wait is a bound, not a margin)
    take(stream_lock(url, LAKE, "bitstamp", "trades", wait=30, notice=noticed.append))


def test_other_streams_exchanges_and_lakes_do_not_wait(url: DatabaseUrl) -> None:
    with (
        stream_lock(url, LAKE, "bitstamp", "account"),
        stream_lock(url, LAKE, "bitstamp", "candles"),
        stream_lock(url, LAKE, "bitvavo", "account"),
        stream_lock(url, "s3://bucket/other", "bitstamp", "account"),
        pytest.raises(StreamLockedError) as refused,
    ):
        take(stream_lock(url, LAKE, "bitstamp", "account"))
    assert str(refused.value) == (
        f"stream bitstamp account of lake {LAKE} is in use by "
        f"tally sync-stream pid {os.getpid()} on {HOST}"
    )
    take(stream_lock(url, LAKE, "bitstamp", "account"))  # released at the block's end


def test_a_waiter_gives_up_after_its_wait(url: DatabaseUrl) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    noticed: list[str] = []
    waiter = stream_lock(
        url,
        LAKE,
        "bitvavo",
        "trades",
        wait=2,
        notice=noticed.append,
        clock=lambda: now[0],
        sleep=sleep,
    )
    with (
        stream_lock(url, LAKE, "bitvavo", "trades", command="first"),
        pytest.raises(StreamLockedError) as refused,
    ):
        take(waiter)
    me = f"tally first pid {os.getpid()} on {HOST}"
    assert noticed == [
        f"waiting for stream bitvavo trades of lake {LAKE} (at most 2 s): in use by {me}"
    ]
    assert str(refused.value) == (
        f"stream bitvavo trades of lake {LAKE} is still in use by {me} after waiting 2 s"
    )
    assert sum(slept) == 2 and len(slept) == 4


def test_an_unreachable_database_is_named_without_its_password() -> None:
    from postgres_server import free_port

    url = DatabaseUrl(f"postgresql://tally:hunter2@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(Exception) as failed:
        take(stream_lock(url, LAKE, "bitstamp", "candles"))
    assert type(failed.value).__name__ == "StreamLockDatabaseError"
    assert "hunter2" not in str(failed.value)
    assert str(failed.value).startswith(
        "could not connect to the stream locks' database postgresql://tally:****@127.0.0.1:"
    )


def test_a_fan_out_child_locks_its_stream_in_the_rate_budget_database(
    url: DatabaseUrl, tmp_path: Path
) -> None:
    """`stream_flow` takes the lock of its stream in the lake it writes (a local lake named
    with its host) when `rate_budget_url` is set, and none without."""
    from pipelines.flows.fanout import _across_machines

    config = tmp_path / "tally.toml"
    write_config(config, config_document(data_dir="data", rate_budget_url=url.reveal()))
    settings = load_settings(config)
    lake = f"{HOST}:{settings.lake_dir}"
    with stream_lock(url, lake, "bitstamp", "candles", command="elsewhere"):
        with pytest.raises(StreamLockedError, match="in use by tally elsewhere pid"):
            take(_across_machines(settings, "bitstamp", "candles", print, wait=None))
        take(_across_machines(settings, "bitstamp", "trades", print, wait=None))
    plain = tmp_path / "plain.toml"
    write_config(plain, config_document(data_dir="data"))
    with stream_lock(url, lake, "bitstamp", "candles"):
        take(_across_machines(load_settings(plain), "bitstamp", "candles", print, wait=None))


def test_shared_holders_of_the_lake_run_together_and_an_exclusive_one_waits_for_all(
    url: DatabaseUrl, postgres: PostgresServer, holders: list[subprocess.Popen[str]]
) -> None:
    """Fan-out children (shared) beside each other; a plain sync (exclusive) after all of them,
    and a child asking meanwhile after the plain sync."""
    key = lake_key(LAKE)
    first = start(holders, url, "shared", "--lake")
    assert line(first) == "held"
    second = start(holders, url, "shared", "--lake")
    assert line(second) == "held"  # beside the first
    assert [(name, mode) for name, mode, _ in holding(url, postgres, key)] == [
        (f"tally test pid {first.pid} on {HOST}", "ShareLock"),
        (f"tally test pid {second.pid} on {HOST}", "ShareLock"),
    ]
    plain = start(holders, url, "exclusive", "--lake")
    assert line(plain) == (
        f"notice waiting for lake {LAKE} (at most 60 s): in use by "
        f"tally test pid {first.pid} on {HOST}, tally test pid {second.pid} on {HOST}"
    )
    release(first)
    assert line(first) == "released"
    # one shared holder left: the exclusive one still waits
    assert holder_names(url, postgres, key) == [f"tally test pid {second.pid} on {HOST}"]
    release(second)
    assert line(second) == "released"
    assert line(plain) == "held"  # only now
    assert [mode for _, mode, _ in holding(url, postgres, key)] == ["ExclusiveLock"]
    child = start(holders, url, "shared", "--lake")
    assert line(child) == (
        f"notice waiting for lake {LAKE} (at most 60 s): in use by "
        f"tally test pid {plain.pid} on {HOST}"
    )
    assert holder_names(url, postgres, key) == [f"tally test pid {plain.pid} on {HOST}"]
    release(plain)
    assert line(plain) == "released"
    assert line(child) == "held"
    release(child)
    assert line(child) == "released"
    assert [p.wait(timeout=30) for p in (first, second, plain, child)] == [0, 0, 0, 0]
    assert holder_names(url, postgres, key) == []


def test_the_lake_lock_is_re_entrant_within_a_process(
    url: DatabaseUrl, postgres: PostgresServer
) -> None:
    """`tally sync` holds the lake exclusively and runs the plain sync flow in its process,
    which asks again: it takes nothing more (a second session would wait for the first)."""
    key = lake_key("s3://bucket/reentrant")
    with lake_lock(url, "s3://bucket/reentrant", shared=False, command="sync"):
        with lake_lock(url, "s3://bucket/reentrant", shared=False, command="flow sync"):
            assert holder_names(url, postgres, key) == [f"tally sync pid {os.getpid()} on {HOST}"]
        assert holder_names(url, postgres, key) == [f"tally sync pid {os.getpid()} on {HOST}"]
    assert holder_names(url, postgres, key) == []


def rate_budget_settings(tmp_path: Path, url: DatabaseUrl | None) -> Path:
    config = tmp_path / ("shared.toml" if url else "alone.toml")
    if url is None:
        write_config(config, config_document(data_dir=str(tmp_path / "data")))
    else:
        write_config(
            config, config_document(data_dir=str(tmp_path / "data"), rate_budget_url=url.reveal())
        )
    return config


@pytest.mark.parametrize("shared_database", [True, False])
def test_a_plain_sync_takes_the_lake_exclusively_only_with_a_rate_budget_database(
    url: DatabaseUrl, postgres: PostgresServer, tmp_path: Path, shared_database: bool
) -> None:
    """What `_sync_here` and `backfill_flow` run inside (`writes_the_data_dir`): the data
    directory's flock, plus the lake's advisory lock exclusively when `rate_budget_url` is set."""
    from pipelines.flows import sync

    config = rate_budget_settings(tmp_path, url if shared_database else None)
    settings = load_settings(config)
    key = lake_key(f"{HOST}:{settings.lake_dir}")
    seen: list[list[tuple[str, str]]] = []

    @sync.writes_the_data_dir("sync")
    def probe(config: str | None) -> None:
        seen.append([(name, mode) for name, mode, _ in holding(url, postgres, key)])

    probe(str(config))
    me = f"tally flow sync pid {os.getpid()} on {HOST}"
    assert seen == [[(me, "ExclusiveLock")] if shared_database else []]
    assert holding(url, postgres, key) == []
    # the plain sync's body runs inside it (as `backfill_flow`'s does)
    assert sync._sync_here.__wrapped__.__name__ == "_sync_here"  # type: ignore[attr-defined]


def test_a_fan_out_child_holds_the_lake_shared(
    url: DatabaseUrl, postgres: PostgresServer, tmp_path: Path
) -> None:
    from pipelines.flows.fanout import _across_machines

    settings = load_settings(rate_budget_settings(tmp_path, url))
    lake = f"{HOST}:{settings.lake_dir}"
    me = f"tally flow sync-stream bitstamp candles pid {os.getpid()} on {HOST}"
    with _across_machines(settings, "bitstamp", "candles", print, wait=None):
        assert [(n, m) for n, m, _ in holding(url, postgres, lake_key(lake))] == [(me, "ShareLock")]
        key = lock_key(lake, "bitstamp", "candles")
        assert [(n, m) for n, m, _ in holding(url, postgres, key)] == [(me, "ExclusiveLock")]
        # a plain sync elsewhere (another session) is refused while the child writes
        with pytest.raises(StreamLockedError, match=f"lake {lake} is in use by {me}"):
            take(_other_session_lake_lock(url, lake))
    assert holding(url, postgres, lake_key(lake)) == []


def _other_session_lake_lock(url: DatabaseUrl, lake: str) -> AbstractContextManager[Any]:
    """The exclusive lake lock as another process would ask for it (this process's re-entrance
    does not apply: the child holds it shared)."""
    return lake_lock(url, lake, shared=False, command="elsewhere")


def test_a_lost_stream_lock_refuses_the_next_write(
    url: DatabaseUrl, postgres: PostgresServer, tmp_path: Path
) -> None:
    """The child's session is cut (here: its server process terminated, as a database restart
    or a network cut would end it): its next lake write fails naming the stream, nothing lands."""
    from pipelines.flows.fanout import _across_machines
    from pipelines.lake_store import put_file

    settings = load_settings(rate_budget_settings(tmp_path, url))
    lake = f"{HOST}:{settings.lake_dir}"
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    with (
        pytest.raises(StreamLockLostError) as lost,
        _across_machines(settings, "bitvavo", "trades", print, wait=None),
    ):
        put_file(first, lambda handle: handle.write(b"landed"))
        [(_, _, pid)] = holding(url, postgres, lock_key(lake, "bitvavo", "trades"))
        postgres.execute("SELECT pg_terminate_backend($1)", pid)
        # another machine may take the stream now
        with stream_lock(url, lake, "bitvavo", "trades", wait=30, notice=print):
            pass
        put_file(second, lambda handle: handle.write(b"too late"))
    assert str(lost.value).startswith(f"lost the lock of stream bitvavo trades of lake {lake}: ")
    assert "\n" not in str(lost.value)
    assert first.read_bytes() == b"landed" and not second.exists()
    put_file(second, lambda handle: handle.write(b"no guard left"))  # the guard ends with it


def test_a_held_lock_checks_its_own_session(url: DatabaseUrl, postgres: PostgresServer) -> None:
    with stream_lock(url, LAKE, "bitstamp", "checked") as held:
        held.check()  # still held
        [(_, _, pid)] = holding(url, postgres, lock_key(LAKE, "bitstamp", "checked"))
        postgres.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(StreamLockLostError, match="lost the lock of stream bitstamp checked"):
            held.check()
