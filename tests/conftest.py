"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipelines.cycles import relax_cycle_collector

if TYPE_CHECKING:  # imported when a test asks for them: collection stays light
    from budget_stores import BudgetStore
    from postgres_server import PostgresServer
    from prefect_api import PrefectApi, SessionServer
    from prefect_server import PrefectServer
    from synced_lake import SyncedLakeFactory

# The test processes hold big session objects (sandbox worlds, lakes' frames) that Python's default
# cycle-collector setting traverses again and again (~3% of their CPU): relaxed as in `tally`.
relax_cycle_collector()
_session_prefect: SessionServer | None = None  # xdist's controller's (`pytest_configure_node`)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "data" / "exchange-samples"
PREFECT_SERVER_INPUT = "tally_prefect_server"  # the workers' key for `SessionServer`'s directory

# Seconds each long test file takes in `make test` (3 workers on 2 cores; --durations=0 summed
# per file). `--dist loadfile` hands whole files to the workers, and xdist's own order (most
# tests first) would start these last, leaving one worker alone with them at the end: they go
# first, the longest first, and the many short files fill in behind them. Order only: a file
# missing here runs after these, in xdist's order; update a figure when a file grows a lot.
LONG_FILES = {
    "tests/test_notebooks.py": 128,
    "tests/test_prefect_postgres.py": 190,  # mostly waiting (a lost run is noticed after 45 s)
    "tests/test_exports.py": 104,
    "tests/test_variants.py": 60,
    "tests/test_datadir_lock.py": 51,
    "tests/test_leftovers.py": 51,
    "tests/test_progress_cli.py": 42,
    "tests/test_ingest_market.py": 37,
    "tests/test_ingest_crash.py": 31,
    "tests/test_prefect_deployment.py": 31,
    "tests/test_reporting_currency.py": 28,
    "tests/test_ingest_memory.py": 24,
    "tests/test_quarantine.py": 21,
    "tests/test_flows.py": 17,
    "tests/test_warehouse_staging.py": 15,
    "tests/test_shared_budget.py": 15,
    "tests/test_sql_readonly.py": 13,
    "tests/test_history_amounts.py": 13,
    "tests/test_warehouse.py": 13,
    "tests/test_doctor_deadline.py": 13,
    "tests/test_preflight.py": 12,
    "tests/test_interrupt.py": 11,
    "tests/test_history_matching.py": 10,
}


class _LongestFirst(OrderedDict[str, Any]):
    """xdist's queue of files to hand out (it pops the first): pops the longest instead."""

    def popitem(self, last: bool = True) -> tuple[str, Any]:
        scope = max(self, key=lambda name: LONG_FILES.get(name, 0))  # ties: the first
        return scope, self.pop(scope)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` with the long files first (`LONG_FILES`); other modes as xdist has
    them."""
    if config.getvalue("dist") != "loadfile":
        return None
    try:  # xdist's internals: if they change, its own order (slower, never wrong)
        from xdist.scheduler import LoadFileScheduling

        scheduler = LoadFileScheduling(config, log)
        if not isinstance(scheduler.workqueue, OrderedDict):
            return None
        scheduler.workqueue = _LongestFirst()
    except Exception:
        return None
    return scheduler


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's controller, for each worker: the directory of the session's Prefect server
    (`prefect_api`), started the first time a worker asks for it."""
    global _session_prefect
    if _session_prefect is None:
        from prefect_api import SessionServer

        directory = node.config._tmp_path_factory.getbasetemp() / "prefect-server"
        _session_prefect = SessionServer(directory)
    node.workerinput[PREFECT_SERVER_INPUT] = str(_session_prefect.directory)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scale: Prefect on PostgreSQL with several workers (tests/test_prefect_postgres.py); "
        "`-m scale` runs them alone, `-m 'not scale'` leaves them out",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    global _session_prefect
    if _session_prefect is not None:
        _session_prefect.close()
        _session_prefect = None


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real recorded responses and market series (shared/, beside the checkout)."""
    if not SAMPLES_DIR.is_dir():
        raise FileNotFoundError(f"exchange samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def prefect_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectApi]:
    """One Prefect server for the session's flows and for `tally` subprocesses given
    `prefect_api.env()` (prefect_api.py): it takes 5–10 s of CPU to start. Under xdist the
    controller runs it for every worker (`pytest_configure_node`). Tests of tally's own server
    start theirs."""
    from prefect_api import borrowed_server, own_server

    client_home = tmp_path_factory.mktemp("prefect-home")
    shared = getattr(request.config, "workerinput", {}).get(PREFECT_SERVER_INPUT)
    with borrowed_server(Path(shared), client_home) if shared else own_server(client_home) as api:
        yield api


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server of the session with a database `prefect`
    (postgres_server.py); a failure where PostgreSQL is not installed."""
    from postgres_server import find_bindir, postgres_server

    if find_bindir() is None:  # (these machines have it: a missing one is a failure, not a skip)
        pytest.fail("PostgreSQL is not installed (no initdb; TALLY_PG_BINDIR names its bin/)")
    with postgres_server("prefect") as server:
        yield server


@pytest.fixture(params=["file", "postgresql"])
def budget_store(request: pytest.FixtureRequest, tmp_path: Path) -> BudgetStore:
    """Where a shared-budget test keeps its budgets: a directory, then rows of the session's
    PostgreSQL server (budget_stores.py); the test runs once on each."""
    from budget_stores import BudgetStore

    if request.param == "file":
        return BudgetStore.on_files(tmp_path)
    return BudgetStore.on_postgres(request.getfixturevalue("postgres"), tmp_path)


@pytest.fixture(scope="session")
def prefect_on_postgres(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """`prefect server start` on the `postgres` database (prefect_server.py): the session's
    own, apart from `prefect_api`'s (SQLite)."""
    from prefect_server import prefect_server_on

    with prefect_server_on(postgres, tmp_path_factory.mktemp("prefect-on-postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def synced_lake(tmp_path_factory: pytest.TempPathFactory) -> SyncedLakeFactory:
    """`synced_lake(seed=, days=, now=, what=(steps…), variants=, warehouse=)`: a directory
    synced from that sandbox world (`synced_lake.py`), the same one for the same arguments in
    the whole session. Under xdist the workers share it: the first to ask syncs it, holding a
    file lock, while the others wait for it. Read it; copy it (`.copy(dir)`) to change it."""
    from synced_lake import SyncedLakeFactory

    root = _session_dir(tmp_path_factory) / "synced-lakes"
    root.mkdir(exist_ok=True)
    return SyncedLakeFactory(root)


@pytest.fixture(scope="module", autouse=True)
def _close_warehouse_readers() -> Iterator[None]:
    """The connections `warehouse_query` kept open for the module's queries, closed at its end."""
    yield
    if "warehouse_query" in sys.modules:
        sys.modules["warehouse_query"].close_readers()


def _session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's base temporary directory, the same for every xdist worker."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the controller's basetemp: one per session, every worker's
    return shared
