"""One writer per data directory (`pipelines/datadir_lock.py`), readers never blocked.

The lock is held by real processes (a small holder script, or `tally sync` itself against a
sandbox served by this test process); the lock file, the messages, the lake and Prefect's
database are read back as a user would find them.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fakeclock import FakeClock
from polars.testing import assert_frame_equal
from prefect_api import PrefectApi
from warehouse_build import build

from pipelines import config_file
from pipelines.cli import build_parser
from pipelines.config import Settings
from pipelines.datadir_lock import DataDirLockedError, data_dir_lock, lock_path, read_holder
from pipelines.datasets import ALL
from pipelines.exit_codes import ExitCode
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document
from warehouse.connect import connect

REPO = Path(__file__).resolve().parents[1]
DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"
NOW = datetime(2024, 3, 31, tzinfo=UTC)
SEED = 21
# Environment that must not reach the `tally` subprocesses: another Prefect server or profile,
# real exchange keys.
FOREIGN = ("PREFECT_", "BITSTAMP_", "BITVAVO_")
HOLD = """
import sys
from pathlib import Path
from pipelines.datadir_lock import data_dir_lock
with data_dir_lock(Path(sys.argv[1]), command=sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""
MARKETS = {"markets": ["BTC-EUR"], "intervals": ["1d"]}
SINCE = r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def refusal(data_dir: Path, pid: int, command: str) -> str:
    """The pattern of the line that refuses a writer because `pid` (`tally COMMAND`) holds
    `data_dir`."""
    return (
        rf"data directory {re.escape(str(data_dir))} is in use by pid {pid} "
        rf"\(tally {command}, {SINCE}\); pass --wait to wait for it"
    )


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env["PYTHONPATH"] = str(REPO)
    return env


@contextmanager
def holder(data_dir: Path, command: str = "sync") -> Iterator[subprocess.Popen[str]]:
    """Another process holding `data_dir`'s lock until the block ends (or it is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir), command],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        release(process)


def release(process: subprocess.Popen[str]) -> None:
    if process.poll() is None and process.stdin is not None:
        process.stdin.close()
    process.wait(timeout=30)


def tally(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the lock itself --------------------------------------------------------------------------


def take(data_dir: Path, **options: Any) -> None:
    with data_dir_lock(data_dir, **options):
        pytest.fail("the lock was taken twice")


def test_the_holder_is_written_while_held_and_the_file_removed_after(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # created by the lock
    with data_dir_lock(data_dir, command="warehouse") as me:
        assert read_holder(data_dir) == me
        assert (me.pid, me.command) == (os.getpid(), "tally warehouse")
        assert me.since.tzinfo is not None
    assert not lock_path(data_dir).exists()
    with data_dir_lock(data_dir, command="sync"):  # free again
        assert read_holder(data_dir) is not None


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with holder(tmp_path, "sync") as other, pytest.raises(DataDirLockedError) as raised:
        take(tmp_path, command="warehouse")
    (line,) = raised.value.lines
    assert re.fullmatch(refusal(tmp_path, other.pid, "sync"), line), line
    assert raised.value.exit_code == ExitCode.USAGE == 2


def test_waiting_says_on_whom_once_and_gives_up_after_its_time(tmp_path: Path) -> None:
    clock = FakeClock()
    notices: list[str] = []
    with holder(tmp_path, "demo") as other, pytest.raises(DataDirLockedError) as raised:
        take(
            tmp_path,
            command="sync",
            wait=5,
            notice=notices.append,
            clock=clock.monotonic,
            sleep=clock.sleep,
        )
    (notice,) = notices
    assert re.fullmatch(
        rf"waiting for data directory {re.escape(str(tmp_path))} \(at most 5 s\): "
        rf"in use by pid {other.pid} \(tally demo, {SINCE}\)",
        notice,
    ), notice
    assert re.fullmatch(
        rf"data directory .* is still in use by pid {other.pid} \(tally demo, {SINCE}\) "
        r"after waiting 5 s",
        raised.value.lines[0],
    )
    # polled, not one long sleep
    assert sum(clock.sleeps) == pytest.approx(5) and len(clock.sleeps) > 1


def test_waiting_takes_the_lock_once_the_holder_is_done(tmp_path: Path) -> None:
    notices: list[str] = []
    with holder(tmp_path, "sync") as other:

        def sleep(seconds: float) -> None:  # the holder finishes while we wait
            release(other)

        with data_dir_lock(
            tmp_path, command="warehouse", wait=math.inf, notice=notices.append, sleep=sleep
        ) as me:
            assert other.returncode == 0
            assert read_holder(tmp_path) == me
    assert len(notices) == 1 and "(at most" not in notices[0]
    assert f"in use by pid {other.pid} (tally sync" in notices[0]


def test_a_killed_holder_leaves_the_directory_free(tmp_path: Path) -> None:
    with holder(tmp_path, "sync") as other:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
        dead = read_holder(tmp_path)
        assert dead is not None and dead.pid == other.pid  # its line stays, its lock does not
        with data_dir_lock(tmp_path, command="sync") as me:
            assert read_holder(tmp_path) == me != dead


def test_taking_the_lock_sweeps_stale_temp_files_and_leaves_the_rest(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    partition = settings.lake_dir / "fills" / "exchange=bitvavo"
    partition.mkdir(parents=True)
    landed = partition / "w1.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(landed)
    stale = [
        partition / ".w2.0123abcd.tmp",
        settings.lake_dir / "candles" / ".x.tmp",
        tmp_path / ".warehouse.duckdb.0123abcd.tmp",
        tmp_path / ".warehouse.duckdb.0123abcd.tmp.wal",
    ]
    # an export being written by `tally export`, which does not take the lock
    exporting = settings.exports_dir / ".ledger.csv.tmp"
    for path in [*stale, exporting]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    settings.warehouse_path.write_bytes(b"catalog")
    notices: list[str] = []
    with data_dir_lock(tmp_path, command="sync", notice=notices.append):
        assert [p for p in stale if p.exists()] == []
    assert notices == ["removed 4 stale temp file(s) left by an interrupted run"]
    assert landed.exists() and exporting.exists()
    assert settings.warehouse_path.read_bytes() == b"catalog"


# --- the commands -------------------------------------------------------------------------------


def test_wait_is_an_option_of_every_writer() -> None:
    parser = build_parser()
    for command in ("sync", "warehouse", "demo"):
        assert parser.parse_args([command]).wait is None
        assert parser.parse_args([command, "--wait"]).wait == math.inf
        assert parser.parse_args([command, "--wait", "2.5"]).wait == 2.5
        with pytest.raises(SystemExit) as refused:
            parser.parse_args([command, "--wait", "-1"])
        assert refused.value.code == 2


@pytest.fixture()
def built(tmp_path: Path) -> Settings:
    """A data directory with a warehouse (over an empty lake) and its tally.toml."""
    data_dir = tmp_path / "data"
    (tmp_path / "tally.toml").write_text('data_dir = "data"\n')
    settings = Settings(data_dir=data_dir)
    build(settings)
    return settings


def test_readers_run_while_a_writer_holds_the_directory_and_writers_do_not(
    built: Settings, tmp_path: Path
) -> None:
    with holder(built.data_dir, "sync") as other:
        sql = tally("sql", "select count(*) as n from fills", "--format", "csv", cwd=tmp_path)
        assert (sql.returncode, sql.stdout.split()) == (0, ["n", "0"]), sql.stderr
        status = tally("status", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        before = built.warehouse_path.stat().st_ino
        warehouse = tally("warehouse", cwd=tmp_path)
        assert warehouse.returncode == 2
        assert warehouse.stdout == ""
        assert re.fullmatch(
            rf"tally warehouse: {refusal(built.data_dir, other.pid, 'sync')}\n", warehouse.stderr
        ), warehouse.stderr
        waited = tally("warehouse", "--wait", "0.5", cwd=tmp_path)
        assert waited.returncode == 2
        assert waited.stderr.splitlines()[0].startswith(
            f"waiting for data directory {built.data_dir} (at most 0.5 s): in use by pid "
            f"{other.pid}"
        )
        assert waited.stderr.splitlines()[1].endswith("after waiting 0.5 s")
        assert built.warehouse_path.stat().st_ino == before  # not rebuilt
    after = tally("warehouse", "--full", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert built.warehouse_path.stat().st_ino != before


class Shell:
    """The `duckdb` command-line shell on a catalog, asked one query at a time."""

    def __init__(self, path: Path, *options: str) -> None:
        self.process = subprocess.Popen(
            [str(DUCKDB_SHELL), *options, "-csv", "-noheader", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def version(self) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("select n from version;\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0, self.process.stderr.read()


def version(settings: Settings) -> int:
    with connect(settings.data_dir) as reader:
        (row,) = reader.execute("select n from version").fetchall()
    return int(row[0])


def test_a_reader_keeps_the_catalog_it_opened_and_a_new_reader_sees_the_new_one(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sql_dirs = []
    for n in (1, 2, 3):
        sql_dirs.append(tmp_path / f"v{n}")
        sql_dirs[-1].mkdir()
        (sql_dirs[-1] / "001_version.sql").write_text(f"select {n} as n\n")
        (sql_dirs[-1] / "models.toml").write_text('[version]\nmaterialized = "table"\n')

    def rebuild(n: int) -> None:
        with data_dir_lock(settings.data_dir, command="warehouse"):
            build(settings, sql_dir=sql_dirs[n - 1])

    rebuild(1)
    # a shell opened for writing (the shell's default) locks its file against every other
    # process, readers included: a rebuild is not blocked, and readers get the new file
    writable = Shell(settings.warehouse_path)
    shells = [writable]
    try:
        assert writable.version() == "1"
        rebuild(2)
        assert version(settings) == 2
        readonly = Shell(settings.warehouse_path, "-readonly")
        shells.append(readonly)
        assert readonly.version() == "2"
        with connect(settings.data_dir) as old:
            rebuild(3)
            assert old.execute("select n from version").fetchall() == [(2,)]
            assert readonly.version() == "2"
            # a new reader in another process (within this one, DuckDB hands out the database
            # it still has open at that path until its last connection closes)
            shells.append(Shell(settings.warehouse_path, "-readonly"))
            assert shells[-1].version() == "3"
        assert version(settings) == 3
        assert writable.version() == "1"
    finally:
        for shell in shells:
            shell.close()
    assert [p.name for p in settings.data_dir.iterdir() if p.name.endswith(".tmp")] == []


# --- two `tally sync` runs on one data directory --------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    world = World(seed=SEED, days=10, now_ms=int(NOW.timestamp() * 1000))
    with start_sandbox(seed=SEED, world=world) as served:
        yield served


def write_config(sandbox: Sandbox, path: Path, data_dir: str) -> Path:
    """The sandbox's config with `data_dir`, one market per exchange and daily candles."""
    document = sandbox_document(sandbox)
    document["data_dir"] = data_dir
    for section in ("bitstamp", "bitvavo"):
        document[section].update(MARKETS)
    return config_file.write_config(path, document)


def start_tally(*args: str, cwd: Path, api: PrefectApi | None = None) -> subprocess.Popen[str]:
    """`tally ARGS` started in `cwd`: with its own temporary Prefect server, or `api`'s."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        env=clean_env() if api is None else api.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_holder(data_dir: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while (held := read_holder(data_dir)) is None or held.pid != process.pid:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first sync never took the lock"
        time.sleep(0.05)


def lake_frames(data_dir: Path) -> dict[str, pl.DataFrame]:
    """Every dataset's rows, sorted, without the times of the run (when fetched or taken)."""
    lake = Lake(Settings(data_dir=data_dir).lake_dir)
    frames = {}
    for name, source in ALL.items():
        frame = lake.scan(source.dataset).collect().drop("fetched_at", "taken_at", strict=False)
        frames[name] = frame.sort(frame.columns)
    return frames


def flow_runs(data_dir: Path) -> list[tuple[str, str, str, str]]:
    """(name, state, start, end) of every flow run in the data directory's Prefect database."""
    database = Settings(data_dir=data_dir).prefect_home / "prefect.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        query = "select name, state_type, start_time, end_time from flow_run order by start_time"
        return connection.execute(query).fetchall()


@pytest.mark.slow
def test_two_syncs_on_one_data_directory_one_waits_one_is_refused(
    sandbox: Sandbox, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path / "tally.toml", "data")
    alone = write_config(sandbox, tmp_path / "alone.toml", "alone")
    data_dir, alone_dir = tmp_path / "data", tmp_path / "alone"
    # not a first run (its migrations are not what this is about): its server starts sooner
    prefect_api.seed(Settings(data_dir=data_dir).prefect_home)

    first = start_tally("sync", "--config", str(config), cwd=tmp_path)
    # another data directory has a lock of its own: this run is the single-run reference (on the
    # session's Prefect server: the two on `data_dir` start their own, whose database is read)
    reference = start_tally("sync", "--config", str(alone), cwd=tmp_path, api=prefect_api)
    wait_for_holder(data_dir, first)

    began = time.monotonic()
    refused = tally("sync", "--config", str(config), cwd=tmp_path)
    seconds = time.monotonic() - began  # "at once": within the 10 s for any refusal
    assert seconds <= 10.0, f"the second sync was refused after {seconds:.1f} s"
    assert first.poll() is None, "the second sync did not fail while the first one ran"
    assert refused.returncode == 2
    assert refused.stdout == ""
    line = rf"tally sync: {refusal(data_dir, first.pid, 'sync')}\n"
    assert re.fullmatch(line, refused.stderr), refused.stderr

    # candles only: a second full sync would add a second balance snapshot to the lake
    waiting = start_tally(
        "sync", "--config", str(config), "--wait", "--what", "candles", cwd=tmp_path
    )
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    _, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0, err
    assert err.splitlines()[0].startswith(
        f"waiting for data directory {data_dir}: in use by pid {first.pid} (tally sync, since "
    ), err
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err

    runs = flow_runs(data_dir)
    assert [state for _, state, _, _ in runs] == ["COMPLETED", "COMPLETED"]  # none refused
    (_, _, _, first_end), (_, _, waited_start, _) = runs
    assert waited_start >= first_end  # the waiting sync ran after the first, not beside it
    assert not lock_path(data_dir).exists()

    expected = lake_frames(alone_dir)
    got = lake_frames(data_dir)
    assert got.keys() == expected.keys()
    assert sum(frame.height for frame in got.values()) > 0
    for name, frame in got.items():
        assert_frame_equal(frame, expected[name])
