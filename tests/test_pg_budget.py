"""`PgState`: the rate budgets' document in a PostgreSQL row, on a real server.

The budgets' own behaviour on a row is tested with the file's, in test_shared_budget.py (the
`budget_store` fixture); here what is PostgreSQL's alone: edits by several processes in turn on
one row, a document another writer left unreadable, a connection that drops, a holder killed
inside an edit, forks, the table made when missing, `rate_budget_url` chosen by a sync, and a
password that never shows. Budget times are on an injected clock; processes are real.
"""

from __future__ import annotations

import gc
import itertools
import json
import multiprocessing
import os
import signal
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest
from budget_stores import BudgetStore
from fakeclock import FakeClock
from forked import ends_with_exit, run_forked
from postgres_server import PostgresServer, free_port
from test_shared_budget import Exhausted, never_sleep, write_config

from pipelines.config import load_settings
from pipelines.credentials import Credentials
from pipelines.database_url import DatabaseUrl
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.flows.runtime import Runtime
from pipelines.http import (
    BudgetDatabaseError,
    BudgetRow,
    SharedRequestBudget,
    SharedWeightBudget,
)
from pipelines.http._pgstate import TABLE, PgState

WINDOW = 60.0


@pytest.fixture
def store(postgres: PostgresServer, tmp_path: Path) -> BudgetStore:
    """A database of the test's own (no `tally_rate_budget` table in it yet)."""
    return BudgetStore.on_postgres(postgres, tmp_path)


def backend_pid(state: PgState) -> int:
    """The server process of `state`'s connection in this process (it has edited once)."""
    connection = state._connection
    assert connection is not None
    return int(connection.info.backend_pid)


def count_in(store: BudgetStore, name: str) -> dict[str, Any]:
    with PgState(store.url, name).edit() as document:
        return dict(document)


# ------------------------------------------------------------------------------ edits in turn


def add_ones(url: str, name: str, times: int, start: Any, slot: int) -> None:
    """Child process: `times` edits that each read the count, then write it plus one (after an
    edit that only connects, and the others' at the barrier)."""
    state = PgState(url, name)
    with state.edit():
        pass
    start.wait()
    for _ in range(times):
        with state.edit() as document:
            seen = document.get("count", 0)
            document["order"] = [*document.get("order", []), slot]
            document["count"] = seen + 1


def test_edits_from_several_processes_are_serialised(store: BudgetStore):
    """No lost update: each edit reads what the one before it wrote. The processes begin
    together on a database without the table, so that they also make it at once."""
    children, times = 4, 40
    context = multiprocessing.get_context("fork")
    start = context.Barrier(children)
    args = (store.url.reveal(), "counter", times, start)
    assert run_forked(context, add_ones, args, children, timeout=120) == [0] * children

    document = count_in(store, "counter")
    assert document["count"] == children * times  # a lost update would leave it lower
    order = document["order"]
    assert sorted(order) == sorted(list(range(children)) * times)
    # They took turns, not one after the other (which would need no lock).
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > children - 1
    assert store.fetch("SELECT count(*) FROM pg_tables WHERE tablename = $1", TABLE) == [(1,)]


def test_an_exception_in_the_block_leaves_the_document_as_it_was(store: BudgetStore):
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    with pytest.raises(KeyError), state.edit() as document:
        document["n"] = 2
        raise KeyError("the caller failed")
    with state.edit() as document:
        assert document["n"] == 1  # and the row lock was released: this edit did not wait


# --------------------------------------------------------------------- a document not ours


def request_budget(store: BudgetStore, clock: FakeClock) -> SharedRequestBudget:
    """3 requests per minute (and 10 per second) that never waits."""
    return SharedRequestBudget(store.place("b"), 3, WINDOW, 10, clock=clock, sleep=never_sleep)


def checksum_fails(text: str) -> str:
    """A count changed by hand: the document parses, its checksum does not match."""
    document = json.loads(text)
    window = document["windows"]["60.0"]["counts"]
    window[next(iter(window))] = 0
    return json.dumps(document)


DAMAGES = {
    "not JSON": lambda text: text[: len(text) // 2],
    "another version": lambda text: json.dumps({"version": 99, "windows": {}}),
    "checksum fails": checksum_fails,
    "not an object": lambda text: "[1, 2, 3]",
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_an_unreadable_row_is_taken_as_spent_for_one_window(store: BudgetStore, damage: str):
    clock = FakeClock()
    budget = request_budget(store, clock)
    budget.acquire()
    budget.acquire()  # 2 of 3 sent: one more would fit
    place = store.place("b")
    store.write_raw(place, DAMAGES[damage](store.raw(place)))

    with pytest.raises(Exhausted) as waited:
        request_budget(store, clock).acquire()
    assert waited.value.args[0] == pytest.approx(WINDOW)  # not "afresh": 3 more right away

    # The conservative state was written back: another process waits for the same block.
    clock.now += 20
    with pytest.raises(Exhausted) as waited:
        budget.acquire()
    assert waited.value.args[0] == pytest.approx(WINDOW - 20)

    clock.now += WINDOW - 20
    for _ in range(3):
        budget.acquire()
    with pytest.raises(Exhausted):
        budget.acquire()


def test_an_unreadable_weight_row_waits_a_window_then_probes(store: BudgetStore):
    clock = FakeClock()
    place = store.place("v")
    options: dict[str, Any] = {"headers": WEIGHT_HEADERS, "reserve": 0, "pace_below": 0.0}
    first = SharedWeightBudget(place, **options, clock=clock, sleep=clock.sleep)
    first.acquire(1)
    store.write_raw(place, "{ torn")

    budget = SharedWeightBudget(place, **options, clock=clock, sleep=never_sleep)
    with pytest.raises(Exhausted) as waited:
        budget.acquire(1)
    assert waited.value.args[0] == pytest.approx(60.0)  # Bitvavo's window
    clock.now += 60.0
    budget.acquire(1)  # the probe...
    with pytest.raises(Exhausted):
        budget.acquire(1)  # ...goes alone until its response tells the budget


# -------------------------------------------------------------------- connections that end


def test_a_dropped_connection_is_made_again(store: BudgetStore):
    server = store.server
    assert server is not None
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    first = backend_pid(state)
    server.execute("SELECT pg_terminate_backend($1)", first)  # a restart, a cut, a timeout

    with state.edit() as document:
        assert document["n"] == 1
        document["n"] = 2
    assert backend_pid(state) != first

    # Cut inside an edit: what the block changed is not stored, the edit says so, and the
    # next one connects again.
    second = backend_pid(state)
    with pytest.raises(BudgetDatabaseError, match="could not store"), state.edit() as document:
        document["n"] = 3
        server.execute("SELECT pg_terminate_backend($1)", second)
    with state.edit() as document:
        assert document["n"] == 2
    assert backend_pid(state) not in (first, second)


def hold_the_row(url: str, held: Any) -> None:
    with PgState(url, "b").edit() as document:
        document["holder"] = os.getpid()
        held.set()
        threading.Event().wait(600)


def test_a_holder_killed_inside_an_edit_releases_the_row(store: BudgetStore):
    """As the kernel releases a dead process's flock, PostgreSQL ends a dead client's
    transaction (its connection closes) and with it the row's lock."""
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    context = multiprocessing.get_context("fork")
    held = context.Event()
    holder = context.Process(target=hold_the_row, args=(store.url.reveal(), held))
    holder.start()
    try:
        assert held.wait(60)
        locked = store.fetch(f"SELECT name FROM {TABLE} WHERE name = 'b' FOR UPDATE SKIP LOCKED")
        assert locked == []  # the child holds the row now
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.join(60)
    assert holder.exitcode == -signal.SIGKILL
    with state.edit() as document:
        assert document == {"n": 1, "version": 2}  # its edit never happened


# ------------------------------------------------------------------------------------ fork


def edit_in_child(state: PgState, failure: Path) -> None:
    try:
        with state.edit() as document:
            document["child"] = os.getpid()
        state.close()
        gc.collect()  # what a long-lived child does: its garbage (the inherited connection) goes
    except BaseException:
        failure.write_text(traceback.format_exc(), encoding="utf-8")
        raise


def test_a_child_forked_while_a_thread_edits_has_its_own_connection(
    store: BudgetStore, tmp_path: Path
):
    """The child inherits the connection (in a transaction, holding the row) and the mutex a
    thread of the parent holds. It must neither deadlock nor use, nor end, the parent's
    session: its edit waits for the parent's on a connection of its own, and the parent's
    connection is the same after the child has gone."""
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    parent_backend = backend_pid(state)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state.edit() as document:
            document["parent"] = True
            inside.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(60)
    failure = tmp_path / "child-failure.txt"
    child = multiprocessing.get_context("fork").Process(
        target=ends_with_exit(edit_in_child), args=(state, failure)
    )
    try:
        child.start()
        release.set()
        holder.join(60)
        child.join(60)
    finally:
        if child.exitcode is None:
            child.kill()
            child.join()
    assert child.exitcode == 0, failure.read_text() if failure.exists() else "no exception"
    with state.edit() as document:
        assert document["parent"] is True and document["child"] == child.pid
    assert backend_pid(state) == parent_backend  # the parent's session was never ended


def drop_inherited(state: PgState, done: Any) -> None:
    """A child that closes and drops its copy of the parent's state and collects its garbage,
    as a child that lives on does (libpq would say goodbye on the socket of a connection it
    frees, were it the child's to free)."""
    state.close()
    del state
    gc.collect()
    done.set()


def test_a_child_that_exits_leaves_its_parents_session_alone(store: BudgetStore):
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    before = backend_pid(state)
    context = multiprocessing.get_context("fork")
    done = context.Event()
    child = context.Process(target=ends_with_exit(drop_inherited), args=(state, done))
    child.start()
    child.join(60)
    assert child.exitcode == 0 and done.is_set()
    with state.edit() as document:
        document["n"] = 2
    assert backend_pid(state) == before


def edit_and_fork(state: PgState) -> int:
    """Fork inside an edit. In the parent: the child's pid. The child ends here: exit 3 when
    its side of the edit was refused, 4 when it went through (the parent's transaction)."""
    child = -1
    try:
        with state.edit() as document:
            document["n"] = 2
            child = os.fork()
    except RuntimeError:
        if child == 0:
            os._exit(3)
        raise
    if child == 0:
        os._exit(4)
    return child


def test_a_child_forked_inside_an_edit_cannot_finish_it(store: BudgetStore):
    state = PgState(store.url, "b")
    with state.edit() as document:
        document["n"] = 1
    before = backend_pid(state)
    child = edit_and_fork(state)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    with state.edit() as document:
        assert document["n"] == 2  # the parent's edit, stored by the parent
    assert backend_pid(state) == before


# ------------------------------------------------------------------------ a sync's settings


def test_a_sync_with_rate_budget_url_keeps_its_budgets_in_postgresql(
    store: BudgetStore, tmp_path: Path
):
    config = write_config(tmp_path / "a", **store.config())
    settings = load_settings(config)
    assert settings.rate_budget_url == store.url
    runtime = Runtime(settings)
    fingerprint = Credentials.from_strings("k-one", "s").fingerprint
    bitstamp = runtime.client("bitstamp").limiter
    bitvavo = runtime.client("bitvavo").limiter
    assert isinstance(bitstamp, SharedRequestBudget) and isinstance(bitvavo, SharedWeightBudget)
    assert bitstamp.where == BudgetRow(store.url, f"bitstamp-{fingerprint}")
    assert bitvavo.where == BudgetRow(store.url, f"bitvavo-{fingerprint}")
    assert Runtime(settings).client("bitstamp").limiter is bitstamp  # one per process
    bitstamp.acquire()
    bitvavo.acquire(1)

    rows = dict(store.fetch(f"SELECT name, document FROM {TABLE}"))
    assert set(rows) == {f"bitstamp-{fingerprint}", f"bitvavo-{fingerprint}"}
    assert all("k-one" not in text for text in rows.values())
    assert json.loads(rows[f"bitstamp-{fingerprint}"])["windows"]
    assert json.loads(rows[f"bitvavo-{fingerprint}"])["in_flight"]
    assert not (tmp_path / "a" / "data" / ".ratelimit").exists()  # no file beside it


# ---------------------------------------------------------------------------------- secrets


def test_the_password_never_shows(tmp_path: Path):
    closed = free_port()  # nothing listens there
    url = DatabaseUrl(f"postgresql://tally:hunter2@127.0.0.1:{closed}/budgets")
    row = BudgetRow(url, "bitstamp-0123456789abcdef")
    for shown in (str(url), repr(url), f"{url}", str(row), repr(row)):
        assert "hunter2" not in shown and "****" in shown
    budget = SharedRequestBudget(row, 3, WINDOW, 10, clock=FakeClock(), sleep=never_sleep)
    assert "hunter2" not in repr(budget)
    state = PgState(url, "b", reconnect_seconds=0)
    assert "hunter2" not in repr(state)
    with pytest.raises(BudgetDatabaseError) as failed, state.edit():
        pass
    message = str(failed.value)
    assert "could not connect" in message and "127.0.0.1" in message
    assert "hunter2" not in message and "****" in message
    assert "hunter2" not in "".join(traceback.format_exception(failed.value))

    with pytest.raises(TypeError):  # not into a pickle, a Prefect parameter, a result
        import pickle

        pickle.dumps(url)
    (tmp_path / "tally.toml").write_text(f'rate_budget_url = "{url.reveal()}"\n')
    settings = load_settings(tmp_path / "tally.toml")
    assert settings.rate_budget_url == url and "hunter2" not in repr(settings)
