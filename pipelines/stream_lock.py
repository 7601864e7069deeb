"""One writer per stream across machines: a PostgreSQL advisory lock per lake × exchange × stream.

    with stream_lock(url, lake, "bitstamp", "candles", wait=LOCK_WAIT_SECONDS, notice=log):
        ...  # write that stream's part of the lake

A fan-out's child (`pipelines.flows.fanout.stream_flow`) locks its stream with a `flock` in its
data directory, which spans one machine. When `rate_budget_url` names a PostgreSQL database that
every worker reaches, the child also takes this lock there: a session-level advisory lock
(`pg_try_advisory_lock`) whose 64-bit key is a hash of the lake's location, the exchange and the
stream, held by a connection of its own for the block and released at its end
(`pg_advisory_unlock`, then the connection is closed). Two children of the same stream, on any
machines, then write one after the other; other streams, and other lakes, do not wait.

`lake_lock` is the whole lake's lock (key: a hash of its location), taken shared by the
children and exclusively by whatever else writes or deletes the lake's objects
(`pipelines.lake_lock`); it is re-entrant within a process. The block of either gets a
`HeldLock` whose `check()` asks, on the lock's own connection, whether its session still holds
it (`StreamLockLostError` if not, or if the connection is gone): a dropped session frees the
lock for another machine, and the holder must stop writing.

A holder that dies releases the lock with its session: at once when its process ends (the
kernel closes its socket), or when the server gives up on a machine that vanished (the session
sets TCP keepalives: some 60 s). A second holder waits, saying once through `notice` on whom
(the holder's `application_name`: `tally <command> pid N on HOST`), polling every
`POLL_SECONDS`; `wait` None refuses at once. Nothing is written to the database: no table, no
rights beyond connecting. Errors name the URL with its password masked (`DatabaseUrl`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.database_url import DatabaseUrl
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lock_wait import wait_for

if TYPE_CHECKING:
    import psycopg

POLL_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10
KEEPALIVES = {  # the server's side: a holder whose machine vanished is dropped after ~60 s
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}
NAME_BYTES = 63  # PostgreSQL keeps that much of an application_name


class StreamLockedError(OperatorError):
    """Another process holds the stream (and we were not asked to wait, or long enough)."""

    exit_code = ExitCode.USAGE


class StreamLockDatabaseError(OperatorError):
    """The database of the stream locks cannot be reached or refused a query."""

    exit_code = ExitCode.USAGE


class StreamLockLostError(OperatorError):
    """A lock this process held is no longer held (its session ended): stop writing."""

    exit_code = ExitCode.USAGE


def lock_key(lake: str, exchange: str, stream: str) -> int:
    """The advisory lock's key (a signed 64-bit integer) of `stream` of `exchange` in the lake
    at `lake` (its location: `s3://bucket/prefix` or a host and directory)."""
    return _key("tally stream", lake, exchange, stream)


def lake_key(lake: str) -> int:
    """The key of the whole lake's lock (`lake_lock`), from its location as in `lock_key`."""
    return _key("tally lake", lake)


def _key(*parts: str) -> int:
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class HeldLock:
    """An advisory lock held by a session of its own; `check()` says it still is."""

    def __init__(
        self, connection: psycopg.Connection[Any] | None, key: int, what: str, shared: bool
    ) -> None:
        self._connection = connection
        self.key = key
        self.what = what
        self.shared = shared

    def check(self) -> None:
        """`StreamLockLostError` unless this session still holds the lock: its connection may
        have dropped (a server restart, a network cut), and another machine may hold it now."""
        import psycopg

        if self._connection is None:  # re-entered: the outer holder's check covers it
            return
        try:
            row = self._connection.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objsubid = 1 AND mode = %s"
                " AND classid::bigint = %s AND objid::bigint = %s",
                (_mode(self.shared), *_halves(self.key)),
            ).fetchone()
        except psycopg.Error as error:
            text = str(error).strip()
            detail = text.splitlines()[0] if text else type(error).__name__
            raise StreamLockLostError(f"lost the lock of {self.what}: {detail}") from None
        if row is None:
            raise StreamLockLostError(f"lost the lock of {self.what}: no longer held")


@contextmanager
def stream_lock(
    url: DatabaseUrl,
    lake: str,
    exchange: str,
    stream: str,
    *,
    command: str = "sync-stream",
    wait: float | None = None,
    notice: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HeldLock]:
    """Hold the lock of `exchange` × `stream` in the lake `lake` for the block (see the module
    docstring). `wait` None: `StreamLockedError` at once when another session holds it; a
    number of seconds (`math.inf`: no limit): wait that long, saying so once through
    `notice`. The block gets the `HeldLock` (its `check()` before each write)."""
    with _advisory(
        url,
        lock_key(lake, exchange, stream),
        f"stream {exchange} {stream} of lake {lake}",
        shared=False,
        command=command,
        wait=wait,
        notice=notice,
        clock=clock,
        sleep=sleep,
    ) as held:
        yield held


@contextmanager
def lake_lock(
    url: DatabaseUrl,
    lake: str,
    *,
    shared: bool,
    command: str = "sync",
    wait: float | None = None,
    notice: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HeldLock]:
    """Hold the whole lake's lock for the block: `shared` by a fan-out's children (beside each
    other, each also holding its stream's lock), exclusive by whatever else writes or deletes
    the lake's objects (a plain sync, a fan-out parent's sweeps, `tally warehouse`). Waits as
    `stream_lock` does. Re-entrant within a process: a block inside another of the same lake
    whose lock this process holds exclusively (or both shared) takes nothing more."""
    key = lake_key(lake)
    with _HELD_LOCK:
        mine = _held.get(key)
        reenter = mine is not None and (not mine[0] or shared)
        if reenter and mine is not None:
            _held[key] = (mine[0], mine[1] + 1)
    if reenter:
        try:
            yield HeldLock(None, key, f"lake {lake}", shared)
        finally:
            _leave(key)
        return
    with _advisory(
        url,
        key,
        f"lake {lake}",
        shared=shared,
        command=command,
        wait=wait,
        notice=notice,
        clock=clock,
        sleep=sleep,
    ) as held:
        with _HELD_LOCK:
            _held[key] = (shared, 1)
        try:
            yield held
        finally:
            _leave(key)


_HELD_LOCK = threading.Lock()
_held: dict[int, tuple[bool, int]] = {}  # this process's lake locks: key -> (shared, depth)


def _leave(key: int) -> None:
    with _HELD_LOCK:
        shared, depth = _held[key]
        if depth > 1:
            _held[key] = (shared, depth - 1)
        else:
            del _held[key]


@contextmanager
def _advisory(
    url: DatabaseUrl,
    key: int,
    what: str,
    *,
    shared: bool,
    command: str,
    wait: float | None,
    notice: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[HeldLock]:
    import psycopg

    me = f"tally {command} pid {os.getpid()} on {socket.gethostname()}"
    connection = _connect(url, me.encode()[:NAME_BYTES].decode(errors="ignore"))
    try:
        try:
            if not _try(connection, key, shared):
                if wait is None:
                    raise StreamLockedError(f"{what} is in use by {_who(connection, key)}")
                wait_for(
                    lambda: True if _try(connection, key, shared) else None,
                    what=what,
                    holder=lambda: _who(connection, key),
                    wait=wait,
                    notice=notice,
                    clock=clock,
                    sleep=sleep,
                    poll_seconds=POLL_SECONDS,
                    refused=StreamLockedError,
                )
        except psycopg.Error as error:
            raise _error(url, f"could not lock {what} in", error) from None
        try:
            yield HeldLock(connection, key, what, shared)
        finally:
            # closing the session would release it too; unlocking says so at once
            with contextlib.suppress(psycopg.Error):
                unlock = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
                connection.execute(f"SELECT {unlock}(%s)", (key,))
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _connect(url: DatabaseUrl, name: str) -> psycopg.Connection[Any]:
    import psycopg

    try:
        connection = psycopg.connect(
            url.reveal(),
            autocommit=True,  # idle between statements: no transaction held open
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=name,
        )
    except psycopg.Error as error:
        raise _error(url, "could not connect to", error) from None
    try:
        for setting, value in KEEPALIVES.items():
            connection.execute(f"SET {setting} = {int(value)}")
    except psycopg.Error as error:
        connection.close()
        raise _error(url, "could not prepare a session of", error) from None
    return connection


def _try(connection: psycopg.Connection[Any], key: int, shared: bool = False) -> bool:
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    row = connection.execute(f"SELECT {function}(%s)", (key,)).fetchone()
    return bool(row and row[0])


def _halves(key: int) -> tuple[int, int]:
    """`key` as pg_locks shows it: `classid` its high 32 bits, `objid` its low ones."""
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


def _mode(shared: bool) -> str:
    return "ShareLock" if shared else "ExclusiveLock"


def _who(connection: psycopg.Connection[Any], key: int) -> str:
    """The sessions holding `key` in this database (several when shared), as they named
    themselves (or their server pids)."""
    rows = connection.execute(
        "SELECT a.pid, a.application_name, a.client_addr::text"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s"
        " AND l.pid <> pg_backend_pid() ORDER BY a.backend_start",
        _halves(key),
    ).fetchall()
    if not rows:
        return "another session (gone since)"
    return ", ".join(
        f"{name or f'server process {pid}'}{f' (from {address})' if address and not name else ''}"
        for pid, name, address in rows
    )


def _error(url: DatabaseUrl, doing: str, error: Exception) -> StreamLockDatabaseError:
    text = str(error).strip()
    detail = text.splitlines()[0] if text else type(error).__name__
    detail = url.scrub(detail)  # libpq quotes a password it cannot parse
    return StreamLockDatabaseError(f"{doing} the stream locks' database {url}: {detail}")
