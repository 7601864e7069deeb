"""`PgState`: `StateFile`'s document in a PostgreSQL row, for processes on several machines.

The same contract as `StateFile.edit()`: the document (a JSON object) is read, changed by the
caller and written back in turn by every process that edits it, an exception in the block leaves
it as it was, and a document that cannot be read (not one this module or `StateFile` wrote: hand
edits, another version, a checksum that fails) is replaced by what `recover` gives. What the rate
budgets keep in it does not change either: see `_shared_limiters`.

One row per document, `name` → `document` (the same checksummed line as a `StateFile`'s), in the
table `tally_rate_budget` of the URL's database (its search path's schema), created when missing.
An edit is one short transaction: `SELECT document … FOR UPDATE` (the row lock is what serialises
the writers, as the `flock` does on one machine), the caller's block, `UPDATE` if it changed the
document, `COMMIT`. The lock is never held while a caller sleeps or sends a request: the budgets
edit, release, then sleep or send, as they do on a file. The row is made on first use
(`INSERT … ON CONFLICT DO NOTHING`, then the `SELECT … FOR UPDATE` again).

Connections: one per `PgState` and process, made on first use and kept. The session sets
`idle_in_transaction_session_timeout` (15 s: a process stopped or cut off inside an edit loses its
transaction and its lock, as a dead process loses its `flock`) and `lock_timeout` (60 s: waiting
longer for the row raises instead of hanging). A connection found dropped when an edit begins
(a server restart, a network cut, an idle timeout on the way) is made again, retried for
`reconnect_seconds`; one that drops inside an edit makes that edit raise (its block has run, but
what it changed was not stored) and the next edit reconnects. Errors name the URL with its
password masked (`DatabaseUrl`).

Fork: a child gets its own mutex and drops the connection it inherited without closing it
(closing would end the parent's session; psycopg frees a connection made by another process
without a word to the server); the child connects anew on its first edit. A child forked inside
an edit cannot finish it (the transaction is the parent's): that edit raises in the child.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.database_url import DatabaseUrl
from pipelines.exit_codes import ExitCode, OperatorError

from ._statefile import CHECKSUM, VERSION, document_line, parse_line

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__package__)

TABLE = "tally_rate_budget"
IDLE_IN_TRANSACTION_MS = 15_000
LOCK_TIMEOUT_MS = 60_000
CONNECT_TIMEOUT_SECONDS = 10
RECONNECT_SECONDS = 30.0
APPLICATION_NAME = "tally rate budget"

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    name text PRIMARY KEY,
    document text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
)"""
_SELECT = f"SELECT document FROM {TABLE} WHERE name = %s FOR UPDATE"
_INSERT = f"INSERT INTO {TABLE} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
_UPDATE = f"UPDATE {TABLE} SET document = %s, updated_at = now() WHERE name = %s"

_OPEN: weakref.WeakSet[PgState] = weakref.WeakSet()


class BudgetDatabaseError(OperatorError, ConnectionError):
    """The rate budget's database could not be reached or used (the message masks the password):
    a problem of the setup, as a Prefect server that does not start (exit 2)."""

    exit_code = ExitCode.USAGE


class PgState:
    """The JSON object named `name` in the database at `url`, edited in turn by every thread
    and process (on any machine) that edits it.

    `recover` gives the document to start from when the row holds one that cannot be read; a
    missing row or an empty document starts as `{}`.
    """

    def __init__(
        self,
        url: DatabaseUrl | str,
        name: str,
        recover: Callable[[], dict[str, Any]] | None = None,
        *,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        self.url = url if isinstance(url, DatabaseUrl) else DatabaseUrl(url)
        self.name = name
        self._recover = recover or dict
        self._reconnect_seconds = float(reconnect_seconds)
        self._mutex = threading.Lock()  # one connection: its threads take turns
        self._holder: int | None = None  # the thread inside `edit`
        self._connection: psycopg.Connection[Any] | None = None
        self._connection_pid = -1
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"PgState({str(self.url)!r}, {self.name!r})"

    @contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        """Lock the row, read the document, yield it, write it back if the block changed it,
        commit. An exception in the block leaves the document as it was."""
        with self._mutex:
            self._holder = threading.get_ident()
            try:
                process = os.getpid()
                connection, text = self._locked_document()
                try:
                    state, recovered = self._read(text)
                    before = None if recovered else json.dumps(state, sort_keys=True)
                    yield state
                except BaseException:
                    if os.getpid() == process:
                        self._rollback(connection)
                    raise
                if os.getpid() != process:  # the transaction is the parent's: leave it be
                    raise RuntimeError(f"{self}: forked inside an edit, which only the parent ends")
                self._write(connection, state, before)
            finally:
                self._holder = None

    def _locked_document(self) -> tuple[psycopg.Connection[Any], str]:
        """A transaction holding the row's lock, and the row's document (made if missing).
        A connection that dropped since the last edit is made again, once."""
        import psycopg

        for attempt in (1, 2):
            connection = self._connect()
            try:
                row = connection.execute(_SELECT, (self.name,)).fetchone()
                if row is None:
                    connection.execute(_INSERT, (self.name,))
                    row = connection.execute(_SELECT, (self.name,)).fetchone()
                assert row is not None
                return connection, str(row[0])
            except psycopg.Error as error:
                dropped = connection.closed
                self._rollback(connection)
                if dropped and attempt == 1:
                    logger.warning("%s: the connection dropped; connecting again", self)
                    continue
                raise self._error("could not read", error) from None
        raise AssertionError("unreachable")

    def _read(self, text: str) -> tuple[dict[str, Any], bool]:
        """The document, and whether it was recovered (then it must be written back)."""
        if not text:
            return {}, False
        state = parse_line(text.encode().split(b"\n", 1)[0])
        if state is None:
            logger.warning("%s is corrupt or of another version: recovering", self)
            return self._recover(), True
        return state, False

    def _write(
        self, connection: psycopg.Connection[Any], state: dict[str, Any], before: str | None
    ) -> None:
        import psycopg

        state.pop(CHECKSUM, None)
        state["version"] = VERSION
        after = json.dumps(state, sort_keys=True)
        try:
            if after != before:
                document = document_line(state, after).decode().rstrip("\n")
                connection.execute(_UPDATE, (document, self.name))
            connection.commit()
        except psycopg.Error as error:
            self._rollback(connection)
            raise self._error("could not store", error) from None

    def _connect(self) -> psycopg.Connection[Any]:
        """This process's connection, made (with the session settings, and the table if
        missing) when there is none or it was closed; tried for `reconnect_seconds`."""
        import psycopg

        connection = self._connection
        if connection is not None and self._connection_pid == os.getpid():
            if not connection.closed:
                return connection
            self._connection = None
        deadline = time.monotonic() + self._reconnect_seconds
        pause = 0.1
        while True:
            try:
                connection = psycopg.connect(
                    self.url.reveal(),
                    autocommit=False,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name=APPLICATION_NAME,
                )
                try:
                    _prepare(connection)
                except BaseException:
                    connection.close()
                    raise
            except psycopg.Error as error:
                if time.monotonic() + pause > deadline:
                    raise self._error("could not connect to", error) from None
                time.sleep(pause)
                pause = min(2 * pause, 2.0)
                continue
            self._connection, self._connection_pid = connection, os.getpid()
            return connection

    def _rollback(self, connection: psycopg.Connection[Any]) -> None:
        """End the transaction; a connection that fails to (it dropped) is let go."""
        try:
            connection.rollback()
        except Exception:
            with contextlib.suppress(Exception):
                connection.close()
            self._connection = None

    def _error(self, doing: str, error: Exception) -> BudgetDatabaseError:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        detail = self.url.scrub(detail)  # libpq quotes a password it cannot parse
        return BudgetDatabaseError(f"{doing} the rate budget {self.name!r} in {self.url}: {detail}")

    def close(self) -> None:
        with self._mutex:
            connection = self._connection
            if connection is not None and self._connection_pid == os.getpid():
                with contextlib.suppress(Exception):
                    connection.close()
            self._connection = None

    def _after_fork_in_child(self) -> None:
        # The connection is the parent's: never used, nor closed, here (psycopg does not end,
        # when it frees it, a connection another process made).
        self._connection = None
        if self._holder == threading.get_ident():
            return  # forked inside `edit`: this thread leaves it (and releases the mutex)
        # The thread that may have held the mutex does not exist here: it would never be
        # released.
        self._mutex = threading.Lock()
        self._holder = None


def _prepare(connection: psycopg.Connection[Any]) -> None:
    """The session's timeouts, and the table when it is missing (made by one session at a
    time: `CREATE TABLE IF NOT EXISTS` races with itself, and needs a right that using an
    existing table does not)."""
    connection.execute(
        f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS};"
        f" SET lock_timeout = {LOCK_TIMEOUT_MS}"
    )
    row = connection.execute("SELECT to_regclass(%s) IS NULL", (TABLE,)).fetchone()
    if row is not None and row[0]:
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
        connection.execute(_CREATE)
    connection.commit()


def _after_fork_in_child() -> None:
    for state in list(_OPEN):
        state._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
