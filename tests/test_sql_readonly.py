"""`tally sql` and the notebook helper are read-only: over a small built warehouse, every way of
writing (COPY into the lake and elsewhere, EXPORT DATABASE, ATTACH, INSTALL/LOAD, SET/RESET,
writing PRAGMAs, CREATE, INSERT, a second statement, a table function that writes a log file into
the lake) and reading outside the lake is refused with the read-only message and exit 2, and
nothing is written anywhere; ordinary queries still answer."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from warehouse_build import build

from pipelines.cli import main
from pipelines.config import Settings
from pipelines.config_file import write_config
from pipelines.datasets import CANDLES, FILLS
from pipelines.exchanges.records import Candle, Fill
from pipelines.flows.plan import Window
from pipelines.lake import Lake
from warehouse.notebook import Warehouse
from warehouse.readonly import ReadOnlyError
from warehouse.sources import view_files

REPO = Path(__file__).resolve().parents[1]
H0 = datetime(2024, 3, 1, tzinfo=UTC)
FETCHED = datetime(2024, 3, 2, tzinfo=UTC)
CANDLE_CLOSES = ("61000", "61100", "61234.5")
FILL_IDS = ("101", "102")
READ_ONLY = "the warehouse is read-only: "


@dataclass(frozen=True)
class Refusal:
    sql: str  # {lake}: the lake directory, {out}: a directory outside the data directory
    refused: str  # what the message names
    target: str | None = None  # a path the statement would create

    def render(self, lake: Path, out: Path) -> str:
        return self.sql.format(lake=lake, out=out)


PARTITION = "fills/exchange=bitstamp/account=main"
REFUSALS = {
    "copy into the lake": Refusal(
        "copy (select 1 as fill_id) to '{lake}/fills/x.parquet'",
        "COPY … TO is refused",
        "{lake}/fills/x.parquet",
    ),
    "copy into a partition the fills view reads": Refusal(
        f"copy (select * from read_parquet('{{lake}}/{PARTITION}/*.parquet') limit 1) "
        f"to '{{lake}}/{PARTITION}/x.parquet'",
        "COPY … TO is refused",
        f"{{lake}}/{PARTITION}/x.parquet",
    ),
    "copy elsewhere": Refusal(
        "copy (select * from candles) to '{out}/candles.csv'",
        "COPY … TO is refused",
        "{out}/candles.csv",
    ),
    "copy from": Refusal("copy fills from '{out}/fills.csv'", "COPY … FROM is refused"),
    "export database elsewhere": Refusal(
        "export database '{out}/export'", "EXPORT DATABASE is refused", "{out}/export"
    ),
    "export database into the lake": Refusal(
        "export database '{lake}/export'", "EXPORT DATABASE is refused", "{lake}/export"
    ),
    "attach for writing": Refusal(
        "attach '{out}/other.duckdb' (read_only false)", "ATTACH is refused", "{out}/other.duckdb"
    ),
    "attach": Refusal(
        "attach '{out}/plain.duckdb' as plain", "ATTACH is refused", "{out}/plain.duckdb"
    ),
    "attach in the lake": Refusal(
        "attach '{lake}/other.duckdb'", "ATTACH is refused", "{lake}/other.duckdb"
    ),
    "detach": Refusal("detach warehouse", "DETACH is refused"),
    "install": Refusal("install httpfs", "INSTALL httpfs is refused"),
    "load": Refusal("load httpfs", "LOAD httpfs is refused"),
    "set": Refusal("set threads=1", "SET threads is refused"),
    "set the time zone": Refusal("SET TimeZone = 'Europe/Berlin'", "SET TimeZone is refused"),
    "reset": Refusal("reset TimeZone", "RESET TimeZone is refused"),
    "set variable": Refusal("set variable x = 1", "SET variable is refused"),
    "pragma setting": Refusal("pragma threads=1", "PRAGMA threads is refused"),
    "pragma profiling": Refusal("pragma enable_profiling", "PRAGMA enable_profiling is refused"),
    "pragma checkpoint on shutdown": Refusal(
        "pragma enable_checkpoint_on_shutdown", "PRAGMA enable_checkpoint_on_shutdown is refused"
    ),
    "create table": Refusal("create table t as select 1 as a", "CREATE TABLE is refused"),
    "create temp table": Refusal("create temp table t (a integer)", "CREATE TEMP is refused"),
    "create macro": Refusal("create macro twice(x) as 2 * x", "CREATE MACRO is refused"),
    "insert": Refusal("insert into fills select * from fills", "INSERT is refused"),
    "checkpoint": Refusal("checkpoint", "CHECKPOINT is refused"),
    "a second statement": Refusal(
        "select count(*) from fills; copy (select 1) to '{lake}/fills/second.parquet'",
        "COPY … TO is refused",
        "{lake}/fills/second.parquet",
    ),
    "explain analyze runs the copy": Refusal(
        "explain analyze copy (select 1) to '{lake}/fills/explained.parquet'",
        "COPY … TO is refused",
        "{lake}/fills/explained.parquet",
    ),
    # DuckDB's settings let this one through: logging to files is not a locked setting
    "a table function that writes": Refusal(
        "select * from enable_logging(storage='file', storage_path='{lake}/log')",
        "the table function enable_logging() is refused",
        "{lake}/log",
    ),
    "call of a table function that writes": Refusal(
        "call enable_logging(storage='file', storage_path='{lake}/log')",
        "the table function enable_logging() is refused",
        "{lake}/log",
    ),
    "a table function that runs sql": Refusal(
        "select * from (from query('select 1'))", "the table function query() is refused"
    ),
    "a function that writes the log": Refusal(
        "select write_log('x') from fills", "the function write_log() is refused"
    ),
    "reading outside the lake": Refusal(
        "select * from read_csv('/etc/passwd')", "/etc/passwd is outside the lake"
    ),
    "reading the data directory beside the lake": Refusal(
        "select * from read_text('{lake}/../tally.toml')", "is outside the lake"
    ),
}


def candle(i: int, close: str) -> Candle:
    price = Decimal(close)
    return Candle(
        "bitstamp", "BTC-EUR", "1h", H0 + timedelta(hours=i), price, price, price, price, price
    )


def fill(fill_id: str, i: int) -> Fill:
    return Fill(
        exchange="bitstamp",
        account="main",
        market="BTC-EUR",
        base_asset="BTC",
        quote_asset="EUR",
        fill_id=fill_id,
        order_id=f"o{fill_id}",
        side="buy",
        base_amount=Decimal("0.01"),
        quote_amount=Decimal("610"),
        price=Decimal("61000"),
        fee=Decimal("1.22"),
        fee_asset="EUR",
        taker=True,
        settled=True,
        executed_at=H0 + timedelta(hours=i, minutes=5),
        source="user_transactions",
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A built warehouse over a lake with a few candles and fills (and a `tally.toml`)."""
    root = tmp_path_factory.mktemp("readonly")
    settings = Settings(data_dir=root / "data")
    lake = Lake(settings.lake_dir)
    candles = [candle(i, close) for i, close in enumerate(CANDLE_CLOSES)]
    lake.land(
        CANDLES.dataset,
        CANDLES.frame(candles, fetched_at=FETCHED),
        stem=Window(H0, H0 + timedelta(hours=len(candles))).stem,
        partition={"exchange": "bitstamp", "market": "BTC-EUR", "interval": "1h"},
    )
    fills = [fill(fill_id, i) for i, fill_id in enumerate(FILL_IDS)]
    lake.land(
        FILLS.dataset,
        FILLS.frame(fills, fetched_at=FETCHED),
        stem=Window(H0, H0 + timedelta(days=1)).stem,
        partition={"exchange": "bitstamp", "account": "main"},
    )
    build(settings)
    (settings.data_dir / "tally.toml").write_text("# read by nothing: a file to not read\n")
    write_config(root / "tally.toml", {"data_dir": str(settings.data_dir)})
    return settings


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """The home directory of the `tally` process: where DuckDB would install extensions."""
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


def files(*roots: Path) -> dict[str, str]:
    """Every file and directory under `roots`, with its content hash."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            found[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            )
    return found


def tally_sql(
    settings: Settings, home: Path, query: str, *options: str
) -> subprocess.CompletedProcess[str]:
    config = settings.data_dir.parent / "tally.toml"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home)}
    command = [sys.executable, "-m", "pipelines.cli", "sql", "--config", str(config), query]
    return subprocess.run(
        [*command, *options], capture_output=True, text=True, env=env, cwd=home, timeout=60
    )


# shown by a program only when its own code (__main__) raises them
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


class KeptRecords(logging.Handler):
    """The log records of WARNING and above, kept."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def tally_sql_called(
    settings: Settings,
    home: Path,
    query: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """`tally_sql(...)` as a call of tally's `main` in this process (the same parsing, guard
    and message, without starting an interpreter): its exit code, stdout and stderr (the file
    descriptors', so DuckDB's own output too). A warning or log record the program would print
    on stderr, which pytest takes here, fails the call."""
    config = settings.data_dir.parent / "tally.toml"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    capfd.readouterr()
    handler = KeptRecords()
    logging.getLogger().addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("default")  # what a program shows
            code = main(["sql", "--config", str(config), query])
    finally:
        logging.getLogger().removeHandler(handler)
    printed = capfd.readouterr()
    shown = [w for w in warned if not issubclass(w.category, HIDDEN_WARNINGS)]
    assert (shown, handler.records) == ([], []), "the program would print these on stderr"
    return code, printed.out, printed.err


# One refusal is asked of `tally sql` as a program; the others of its `main`, called here
# (~0.3 CPU-s less each).
AS_A_PROGRAM = next(iter(REFUSALS.values()))


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_tally_sql_refuses_and_writes_nothing(
    case: Refusal,
    settings: Settings,
    out: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    query = case.render(settings.lake_dir, out)
    before = files(settings.data_dir, out, home)

    if case is AS_A_PROGRAM:
        done = tally_sql(settings, home, query)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        code, stdout, stderr = tally_sql_called(settings, home, query, monkeypatch, capfd)

    assert code == 2, stderr
    assert stdout == ""
    assert stderr.splitlines() == [stderr.strip()], "one line"
    assert stderr.startswith(f"tally sql: {READ_ONLY}")
    assert case.refused in stderr
    assert files(settings.data_dir, out, home) == before
    if case.target:
        assert not Path(case.target.format(lake=settings.lake_dir, out=out)).exists()


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_the_notebook_helper_refuses_and_writes_nothing(
    case: Refusal, settings: Settings, out: Path
) -> None:
    query = case.render(settings.lake_dir, out)
    before = files(settings.data_dir, out)
    with Warehouse(settings.data_dir) as wh:
        settings_before = wh.frame("select name, value from duckdb_settings() order by name")
        with pytest.raises(ReadOnlyError) as frame_refused:
            wh.frame(query)
        with pytest.raises(ReadOnlyError) as value_refused:
            wh.value(query)
        # still usable after a refusal, its settings unchanged
        assert wh.frame("select name, value from duckdb_settings() order by name").equals(
            settings_before
        )
        assert wh.value("select current_setting('TimeZone')") == "UTC"
    for refused in (frame_refused.value, value_refused.value):
        (line,) = refused.lines
        assert line.startswith(READ_ONLY)
        assert case.refused in line
        assert refused.exit_code == 2
        assert isinstance(refused, duckdb.Error), "code that catches DuckDB's errors still does"
    assert files(settings.data_dir, out) == before
    if case.target:
        assert not Path(case.target.format(lake=settings.lake_dir, out=out)).exists()


def count_query(names: list[str]) -> str:
    return " union all ".join(
        f"select '{name}' as view, count(*) as n from {name}" for name in names
    )


def test_every_view_answers_through_tally_sql_in_csv_and_json(
    settings: Settings, home: Path
) -> None:
    views = [view.name for view in view_files()]
    before = files(settings.data_dir, home)

    as_csv = tally_sql(settings, home, count_query(views), "--format", "csv")
    as_json = tally_sql(settings, home, count_query(views), "--format", "json")

    assert (as_csv.returncode, as_csv.stderr) == (0, "")
    counted = {row["view"]: int(row["n"]) for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert sorted(counted) == sorted(views)
    assert counted["candles"] == len(CANDLE_CLOSES)
    assert counted["fills"] == len(FILL_IDS)
    assert (as_json.returncode, as_json.stderr) == (0, "")
    assert {row["view"]: int(row["n"]) for row in json.loads(as_json.stdout)} == counted
    assert files(settings.data_dir, home) == before


def test_tally_sql_reads_the_lake_with_read_parquet_and_describes(
    settings: Settings, home: Path
) -> None:
    glob = Lake(settings.lake_dir).glob(FILLS.dataset)
    done = tally_sql(
        settings, home, f"select fill_id from read_parquet('{glob}') order by 1", "--format", "csv"
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == ["fill_id", *FILL_IDS]

    for query in ("describe fills", "summarize candles", "show tables", "pragma version"):
        shown = tally_sql(settings, home, query, "--format", "json")
        assert (shown.returncode, shown.stderr) == (0, ""), query
        assert json.loads(shown.stdout), query

    explained = tally_sql(
        settings, home, f"explain select max(fill_id) from read_parquet('{glob}')"
    )
    assert explained.returncode == 0 and "READ_PARQUET" in explained.stdout.upper()


def test_the_notebook_helper_still_reads_every_view_and_the_lake(settings: Settings) -> None:
    glob = Lake(settings.lake_dir).glob(CANDLES.dataset)
    with Warehouse(settings.data_dir) as wh:
        views = wh.views()
        assert sorted(views) == sorted(view.name for view in view_files())
        counts = {name: wh.value(f"select count(*) from {name}") for name in views}
        closes = wh.frame(f"select close from read_parquet('{glob}') order by open_time")
    assert counts["candles"] == len(CANDLE_CLOSES)
    assert counts["fills"] == len(FILL_IDS)
    assert all(isinstance(n, int) for n in counts.values())
    assert [Decimal(str(c)) for c in closes["close"]] == [Decimal(c) for c in CANDLE_CLOSES]


def test_a_copied_catalog_still_reads_the_lake_it_was_built_over(
    settings: Settings, tmp_path: Path, home: Path
) -> None:
    copy = Settings(data_dir=tmp_path / "copy")
    copy.data_dir.mkdir()
    shutil.copy(settings.warehouse_path, copy.warehouse_path)
    write_config(tmp_path / "tally.toml", {"data_dir": str(copy.data_dir)})
    glob = Lake(settings.lake_dir).glob(FILLS.dataset)

    both = f"select count(*) from fills union all select count(*) from read_parquet('{glob}')"
    done = tally_sql(copy, home, both, "--format", "csv")
    refused = tally_sql(copy, home, "select * from read_csv('/etc/passwd')")

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split()[1:] == [str(len(FILL_IDS)), str(len(FILL_IDS))]
    assert refused.returncode == 2 and READ_ONLY in refused.stderr


SECOND_CONNECTION = """
import sys
from warehouse.notebook import Warehouse
first, second = Warehouse(sys.argv[1]), Warehouse(sys.argv[1])
print(second.value("select current_setting('TimeZone')"))
print(second.value("select current_setting('enable_external_access')"))
print(first.value("select count(*) from fills"))
"""


def test_a_second_connection_in_one_process_finds_the_guard_and_utc(
    settings: Settings, home: Path
) -> None:
    """DuckDB shares one instance per file in a process: the second connection cannot set
    anything (the first locked it) and must find UTC and the guard already there."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "TZ": "America/New_York"}
    done = subprocess.run(
        [sys.executable, "-c", SECOND_CONNECTION, str(settings.data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == ["UTC", "False", str(len(FILL_IDS))]


def test_the_connections_own_settings_refuse_what_they_can(settings: Settings, out: Path) -> None:
    """`wh.connection` (what the exports are given) is guarded by DuckDB's settings alone."""
    with Warehouse(settings.data_dir) as wh:
        connection = wh.connection
        with pytest.raises(duckdb.PermissionException):
            connection.execute(f"copy (select 1) to '{out}/x.csv'")
        with pytest.raises(duckdb.PermissionException):
            connection.execute(f"attach '{out}/other.duckdb'")
        with pytest.raises(duckdb.PermissionException):
            connection.execute("load httpfs")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            connection.execute("set enable_external_access = true")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            connection.execute(f"set allowed_directories = ['{out}/']")
        with pytest.raises(duckdb.PermissionException):
            connection.execute("select * from read_csv('/etc/passwd')")
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module", autouse=True)
def no_strays(settings: Settings) -> Iterator[None]:
    """After every test of this file the data directory holds only what the fixture made."""
    before = files(settings.data_dir)
    yield
    assert files(settings.data_dir) == before
