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
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.database_url import DatabaseUrl
from pipelines.exit_codes import ExitCode, OperatorError

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


def lock_key(lake: str, exchange: str, stream: str) -> int:
    """The advisory lock's key (a signed 64-bit integer) of `stream` of `exchange` in the lake
    at `lake` (its location: `s3://bucket/prefix` or a host and directory)."""
    digest = hashlib.blake2b(
        "\0".join(("tally stream", lake, exchange, stream)).encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


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
) -> Iterator[None]:
    """Hold the lock of `exchange` × `stream` in the lake `lake` for the block (see the module
    docstring). `wait` None: `StreamLockedError` at once when another session holds it; a
    number of seconds (`math.inf`: no limit): wait that long, saying so once through
    `notice`."""
    import psycopg

    key = lock_key(lake, exchange, stream)
    what = f"stream {exchange} {stream} of lake {lake}"
    me = f"tally {command} pid {os.getpid()} on {socket.gethostname()}"
    connection = _connect(url, me.encode()[:NAME_BYTES].decode(errors="ignore"))
    try:
        try:
            if not _try(connection, key):
                if wait is None:
                    raise StreamLockedError(f"{what} is in use by {_who(connection, key)}")
                limit = "" if math.isinf(wait) else f" (at most {wait:g} s)"
                notice(f"waiting for {what}{limit}: in use by {_who(connection, key)}")
                deadline = clock() + wait
                while not _try(connection, key):
                    left = deadline - clock()
                    if left <= 0:
                        raise StreamLockedError(
                            f"{what} is still in use by {_who(connection, key)} "
                            f"after waiting {wait:g} s"
                        )
                    sleep(min(POLL_SECONDS, left))
        except psycopg.Error as error:
            raise _error(url, f"could not lock {what} in", error) from None
        try:
            yield
        finally:
            # closing the session would release it too; unlocking says so at once
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
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


def _try(connection: psycopg.Connection[Any], key: int) -> bool:
    row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def _who(connection: psycopg.Connection[Any], key: int) -> str:
    """The session holding `key` in this database, as it named itself (or its server pid)."""
    row = connection.execute(
        "SELECT a.pid, a.application_name, a.client_addr::text"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "another session (gone since)"
    pid, name, address = row
    who = name or f"server process {pid}"
    return f"{who} (from {address})" if address and not name else who


def _error(url: DatabaseUrl, doing: str, error: Exception) -> StreamLockDatabaseError:
    text = str(error).strip()
    detail = text.splitlines()[0] if text else type(error).__name__
    detail = url.scrub(detail)  # libpq quotes a password it cannot parse
    return StreamLockDatabaseError(f"{doing} the stream locks' database {url}: {detail}")
