"""A lake that heals: unreadable files are moved to the quarantine with a note, the warehouse
builds from the rest and `coverage` shows the holes, `tally status` lists them, and the next
sync fetches what they held again, leaving a lake equal to one that was never damaged.

A small sandbox world is synced once (both accounts, 1h candles across a year end, three days of
Bitvavo public trades); each stage works on its own copy of that lake. The sync here is what
`sync_flow` runs, without Prefect: `quarantine_lake`, the streams, `quarantine_lake` again.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from cli_runner import tally
from prefect_api import PrefectApi
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import sandbox_runtime
from synced_lake import Accounts, Candles, Quarantine, SyncedLakeFactory, Trades
from warehouse_build import build

from pipelines.checks.lake import check_rows
from pipelines.cli import main
from pipelines.config import Settings, load_settings
from pipelines.config_file import read_config, write_config
from pipelines.datasets import ALL, BITSTAMP_LEDGER, CANDLES, FILLS, GAPS, PUBLIC_TRADES
from pipelines.exit_codes import ExitCode
from pipelines.flows.bitstamp_account import bitstamp_ledger
from pipelines.flows.plan import Window
from pipelines.flows.runtime import Runtime
from pipelines.lake import Lake, UnreadableFileError
from pipelines.lake_check import CACHE_NAME, check_lake
from pipelines.quarantine import CHECKED, NOTHING_MISSING, held_notes, quarantine_lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 1, 6, tzinfo=UTC)
CANDLE_SPAN = Window(datetime(2023, 12, 25, tzinfo=UTC), NOW)
TRADES_BACK = timedelta(hours=54)  # three UTC days of Bitvavo public trades
FETCH_TIME = ("fetched_at", "taken_at")  # when a response came: differs between two syncs

# the damaged files (relative to the lake)
BV = "exchange=bitvavo/account=main"
BS = "exchange=bitstamp/account=main"
TRUNCATED = f"fills/{BV}/trades-BTC-EUR.parquet"
GARBAGE = (
    "candles/exchange=bitstamp/market=BTC-EUR/interval=1h/20231225T000000-20240101T000000.parquet"
)
PAGE = "public_trades/exchange=bitvavo/market=BTC-EUR/20240104T000000-20240105T000000.parquet"
# and the Bitstamp fills derived from the (one) ledger page get a file of other columns


# What `sync_flow` runs, without Prefect.
SYNC = (
    Quarantine(),
    Accounts(),
    Candles(markets=("BTC-EUR",), span=CANDLE_SPAN),
    Trades(TRADES_BACK, exchanges=("bitvavo",), markets=("BTC-EUR",)),
    Quarantine(),
)


def run_sync(rt: Runtime, world: World) -> None:
    for step in SYNC:
        step.run(rt, world)


def rows_of(lake: Lake, name: str) -> pl.DataFrame:
    """Every row of a dataset but the fetch times, in one order (duplicates kept)."""
    dataset = ALL[name].dataset if name in ALL else GAPS
    frame = lake.scan(dataset).collect()
    frame = frame.drop([c for c in FETCH_TIME if c in frame.columns])
    sortable = [c for c, t in frame.schema.items() if not isinstance(t, pl.List)]
    return frame.sort(sortable, nulls_last=True)


def query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        result = connection.execute(sql)
        columns = [d[0] for d in result.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the synced lake and its damaged copies ------------------------------------------------------


world = world_fixture(seed=5, days=12, now_ms=int(NOW.timestamp() * 1000))
sandbox = sandbox_fixture()


@pytest.fixture(scope="module")
def synced(
    synced_lake: SyncedLakeFactory, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A directory with a tally.toml on the sandbox and its synced data (no warehouse)."""
    lake = synced_lake(seed=5, days=12, now=NOW, what=SYNC, warehouse=False)
    return lake.copy(tmp_path_factory.mktemp("synced") / "synced", sandbox=sandbox).directory


@dataclass(frozen=True)
class Damaged:
    directory: Path
    settings: Settings
    original: dict[str, bytes]  # relative path → the bytes before the damage
    damaged: dict[str, bytes]  # relative path → the bytes after
    wrong_columns: str  # the relative path given a valid Parquet file of other columns

    @property
    def lake(self) -> Lake:
        return Lake(self.settings.lake_dir)


def damaged_copy(synced: Path, directory: Path) -> Damaged:
    """A copy of the synced directory with four files damaged, each in its own way."""
    shutil.copytree(synced, directory)
    settings = load_settings(directory / "tally.toml")
    root = settings.lake_dir
    (derived,) = [p for p in (root / "fills" / BS).iterdir() if p.name.startswith("user_trans")]
    wrong = derived.relative_to(root).as_posix()
    original = {r: (root / r).read_bytes() for r in (TRUNCATED, GARBAGE, PAGE, wrong)}

    truncated = original[TRUNCATED][: len(original[TRUNCATED]) // 2]
    garbage = b"this is not a parquet file. " * 40
    page = bytearray(original[PAGE])
    # the header of the `raw` column's first data page: the footer at the end stays intact
    chunk = pq.ParquetFile(io.BytesIO(original[PAGE])).metadata.row_group(0)
    (raw,) = [
        chunk.column(i) for i in range(chunk.num_columns) if chunk.column(i).path_in_schema == "raw"
    ]
    page[raw.data_page_offset : raw.data_page_offset + 16] = b"\xff" * 16
    (root / TRUNCATED).write_bytes(truncated)
    (root / GARBAGE).write_bytes(garbage)
    (root / PAGE).write_bytes(bytes(page))
    pl.DataFrame({"fill": ["a", "b"], "price": [1, 2]}).write_parquet(root / wrong)

    # each damage is what it claims to be
    pq.read_schema(root / PAGE)  # the footer reads…
    with pytest.raises(OSError, match="deserialize thrift"):
        pq.read_table(root / PAGE)  # …a page does not
    for broken in (TRUNCATED, GARBAGE):
        with pytest.raises(pl.exceptions.ComputeError):
            pl.read_parquet_schema(root / broken)
    assert pl.read_parquet(root / wrong).height == 2
    damaged = {r: (root / r).read_bytes() for r in original}
    return Damaged(directory, settings, original, damaged, wrong)


@pytest.fixture(scope="module")
def quarantined(
    synced: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Damaged, subprocess.CompletedProcess[str]]:
    """A damaged copy after `tally warehouse`."""
    damage = damaged_copy(synced, tmp_path_factory.mktemp("quarantined") / "d")
    return damage, tally("warehouse", cwd=damage.directory)


@pytest.fixture(scope="module")
def healed(
    sandbox: Sandbox,
    synced: Path,
    quarantined: tuple[Damaged, subprocess.CompletedProcess[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Runtime, Runtime]:
    """(the quarantined copy after the next sync, a never damaged copy after the same sync)."""
    base = tmp_path_factory.mktemp("healed")
    shutil.copytree(quarantined[0].directory, base / "healed")
    shutil.copytree(synced, base / "never")
    runtimes = tuple(sandbox_runtime(sandbox, base / name, now=NOW) for name in ("healed", "never"))
    for rt in runtimes:
        run_sync(rt, sandbox.world)
    return runtimes  # type: ignore[return-value]


# --- before anything moves ------------------------------------------------------------------------


def test_tally_status_lists_unreadable_files_and_moves_nothing(
    synced: Path, tmp_path: Path
) -> None:
    damage = damaged_copy(synced, tmp_path / "d")
    status = tally("status", cwd=damage.directory)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stdout + status.stderr
    for relative in damage.original:
        (line,) = [line for line in status.stdout.splitlines() if relative in line]
        assert "the next `tally sync` or `tally warehouse` moves it" in line
    # the streams of the readable files are still shown, with their rows
    assert "candles bitvavo BTC-EUR 1h" in status.stdout
    assert not (damage.directory / "data" / "quarantine").exists()
    for relative, data in damage.damaged.items():
        assert (damage.lake.root / relative).read_bytes() == data


def test_doctor_rows_report_the_lake_without_moving_anything(synced: Path, tmp_path: Path) -> None:
    damage = damaged_copy(synced, tmp_path / "d")
    files, held, _ = check_rows(damage.settings)
    assert (files.check, files.status, held.check, held.status) == (
        "lake files",
        "fail",
        "quarantine",
        "ok",
    )
    assert files.detail.startswith("4 of ")
    assert "tally sync" in files.fix
    assert not (damage.directory / "data" / "quarantine").exists()

    quarantine_lake(damage.settings)
    files, held, _ = check_rows(damage.settings)
    assert (files.status, held.status) == ("ok", "warn")
    assert "4 file(s) held: 4 waiting for the next sync" in held.detail
    assert "tally sync" in held.fix


# --- tally warehouse: quarantine, then build from the rest ---------------------------------------


def test_tally_warehouse_moves_each_unreadable_file_and_says_so(
    quarantined: tuple[Damaged, subprocess.CompletedProcess[str]],
) -> None:
    damage, run = quarantined
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 4, lines
    reasons = {
        TRUNCATED: "not a readable Parquet file",
        GARBAGE: "not a readable Parquet file",
        PAGE: "a data page cannot be decoded",
        damage.wrong_columns: "wrong columns for dataset fills: no key column",
    }
    for relative, reason in reasons.items():
        (line,) = [line for line in lines if relative in line]
        assert line.startswith(f"tally warehouse: quarantined lake/{relative}: {reason}")
        assert line.endswith(
            f"(moved to quarantine/{relative}; the next `tally sync` fetches it again)"
        )
        assert not (damage.lake.root / relative).exists()
    assert "coverage" in run.stdout  # the views were built and counted


def test_each_quarantined_file_is_held_with_its_note(
    quarantined: tuple[Damaged, subprocess.CompletedProcess[str]],
) -> None:
    damage, _ = quarantined
    data_dir = damage.settings.data_dir
    notes = {note.path: (path, note) for path, note in held_notes(damage.settings)}
    assert set(notes) == set(damage.original)
    for relative, data in damage.damaged.items():
        path, note = notes[relative]
        held = data_dir / "quarantine" / relative
        assert path == held.with_name(held.name + ".json")
        assert held.read_bytes() == data
        assert (note.size, note.sha256) == (len(data), sha256(data))
        assert note.held_at == f"quarantine/{relative}"
        assert json.loads(path.read_text())["original"] == str(damage.lake.root / relative)
        assert note.refetchable and note.restored_at is None

    _, candles = notes[GARBAGE]
    assert (candles.dataset, candles.exchange, candles.market, candles.interval) == (
        "candles",
        "bitstamp",
        "BTC-EUR",
        "1h",
    )
    assert (candles.window_start, candles.window_end) == (
        datetime(2023, 12, 25, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    # what it held before it broke, as the file verified after the sync said
    before = pl.read_parquet(io.BytesIO(damage.original[GARBAGE]))
    assert candles.rows == before.height
    assert candles.first_at == before["open_time"].min()

    _, fills = notes[TRUNCATED]
    assert (fills.exchange, fills.market, fills.window_start) == ("bitvavo", "BTC-EUR", None)
    held_fills = pl.read_parquet(io.BytesIO(damage.original[TRUNCATED]))
    assert (fills.first_at, fills.last_at) == (
        held_fills["executed_at"].min(),
        held_fills["executed_at"].max(),
    )
    _, derived = notes[damage.wrong_columns]
    ids = derived.stem.removeprefix("user_transactions-ids-").split("-")
    assert (derived.first_id, derived.last_id) == (int(ids[0]), int(ids[1]))


def test_coverage_shows_each_hole_with_its_reason(
    quarantined: tuple[Damaged, subprocess.CompletedProcess[str]],
) -> None:
    damage, _ = quarantined
    holes = {
        row["file"]: row
        for row in query(damage.settings, "select * from coverage where gap_status = 'quarantined'")
    }
    assert set(holes) == set(damage.original)
    candles = holes[GARBAGE]
    assert (candles["stream"], candles["gap_start"], candles["gap_end"]) == (
        "candles bitstamp BTC-EUR 1h",
        datetime(2023, 12, 25, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert candles["gap_reason"].startswith("quarantined: not a readable Parquet file")
    assert candles["gap_reason"].endswith("the next `tally sync` fetches it again")
    page = holes[PAGE]
    assert (page["dataset"], page["exchange"], page["market"]) == (
        "public_trades",
        "bitvavo",
        "BTC-EUR",
    )
    assert (page["gap_start"], page["gap_end"]) == (
        datetime(2024, 1, 4, tzinfo=UTC),
        datetime(2024, 1, 5, tzinfo=UTC),
    )
    assert "data page cannot be decoded" in page["gap_reason"]
    assert holes[TRUNCATED]["stream"] == "fills bitvavo BTC-EUR"
    assert holes[damage.wrong_columns]["stream"] == "fills bitstamp"
    # the day between two landed days is listed once, as quarantined, not also as a window hole
    listed = query(
        damage.settings,
        "select gap_status from coverage where dataset = 'public_trades' "
        "and gap_start = '2024-01-04 00:00:00+00'",
    )
    assert listed == [{"gap_status": "quarantined"}]
    # and the warehouse holds the rest
    (count,) = query(
        damage.settings, "select count(*) as n from candles where exchange = 'bitvavo'"
    )
    assert count["n"] > 0


def test_tally_status_lists_the_quarantined_files(
    quarantined: tuple[Damaged, subprocess.CompletedProcess[str]],
) -> None:
    damage, _ = quarantined
    status = tally("status", cwd=damage.directory)
    assert status.returncode == 0, status.stderr
    assert "Quarantine (quarantine/): 4 file(s) held" in status.stdout
    for relative in damage.original:
        (line,) = [line for line in status.stdout.splitlines() if relative in line]
        assert "the next `tally sync` fetches it again" in line
    assert "Unreadable, not moved yet" not in status.stdout


# --- the next sync --------------------------------------------------------------------------------


def test_the_next_sync_restores_a_lake_equal_to_one_never_damaged(
    healed: tuple[Runtime, Runtime],
) -> None:
    fixed, never = healed
    for name in (*ALL, GAPS.name):
        assert rows_of(fixed.lake, name).equals(rows_of(never.lake, name)), name
    # the files are back where they were (the same windows, the same ledger page)
    for relative in (TRUNCATED, GARBAGE, PAGE):
        assert (fixed.lake.root / relative).is_file()


def test_after_the_sync_the_notes_say_restored_and_coverage_has_no_hole(
    healed: tuple[Runtime, Runtime],
) -> None:
    fixed, _ = healed
    notes = [note for _, note in held_notes(fixed.settings)]
    assert len(notes) == 4 and all(n.restored_at is not None for n in notes)
    build(fixed.settings)
    assert query(fixed.settings, "select * from coverage where gap_status = 'quarantined'") == []
    files, held, _ = check_rows(fixed.settings)
    assert (files.status, held.status) == ("ok", "ok")
    assert "4 restored" in held.detail


def test_tally_sync_moves_broken_files_and_fetches_a_day_older_than_it_asks_for(
    prefect_api: PrefectApi,
    synced: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tally sync --what trades` asks Bitvavo for the last day of public trades only; the
    quarantined day before it is fetched again all the same, and marked restored at the end."""
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # `tally sync` would set INFO
    damage = damaged_copy(synced, tmp_path / "d")
    config = damage.directory / "tally.toml"
    document = read_config(config)
    document["bitvavo"]["markets"] = ["BTC-EUR"]
    write_config(config, document)

    code = main(["sync", "--config", str(config), "--exchange", "bitvavo", "--what", "trades"])
    assert code == 0
    stderr = capsys.readouterr().err
    moved = [line for line in stderr.splitlines() if line.startswith("tally sync: quarantined")]
    assert len(moved) == 4, stderr
    never = Lake(load_settings(synced / "tally.toml").lake_dir)
    assert rows_of(damage.lake, "public_trades").equals(rows_of(never, "public_trades"))
    restored = {note.path for _, note in held_notes(damage.settings) if note.restored_at}
    assert restored == {PAGE}  # the others wait for a sync of their streams


# --- a hole in the middle of a cursor stream: the Bitstamp ledger ---------------------------------


def test_a_ledger_page_in_the_middle_is_fetched_again(tmp_path: Path) -> None:
    """Two ledger pages; the first (full) one breaks. The walk resumes after the newest page, so
    only the quarantine tells it to start at the hole's first id again."""
    now = datetime(2024, 3, 31, tzinfo=UTC)
    world = World(seed=7, days=280, now_ms=int(now.timestamp() * 1000))
    assert len(world.bitstamp.user_transactions) > 1000  # two pages
    with start_sandbox(seed=7, world=world) as sandbox:
        rt = sandbox_runtime(sandbox, tmp_path / "ledger", now=now)
        bitstamp_ledger(rt)
        lake = rt.lake
        pages = sorted(lake.files(BITSTAMP_LEDGER.dataset))
        assert len(pages) == 2
        before = {name: rows_of(lake, name) for name in ("bitstamp_ledger", "fills", "transfers")}
        first = pages[0]
        first.write_bytes(first.read_bytes()[:-100])  # its footer is gone

        report = quarantine_lake(rt.settings)
        assert [note.path for note in report.moved] == [first.relative_to(lake.root).as_posix()]
        (note,) = report.moved
        assert (note.first_id, note.last_id) == tuple(int(x) for x in first.stem.split("-")[1:])
        result = bitstamp_ledger(rt)
        assert result.requests == 2  # the hole's page, then the newest page again
        assert result.rows["bitstamp_ledger"] == 1000  # the hole's rows, landed again
        for name, frame in before.items():
            assert rows_of(lake, name).equals(frame), name
        assert quarantine_lake(rt.settings).restored[0].path == note.path


# --- readers meeting a broken file mid-run ------------------------------------------------------


def test_a_reader_meeting_a_broken_file_names_it(synced: Path, tmp_path: Path) -> None:
    damage = damaged_copy(synced, tmp_path / "d")
    lake = damage.lake
    with pytest.raises(UnreadableFileError) as caught:
        lake.scan(CANDLES.dataset, exchange="bitstamp").collect()
    error = caught.value
    assert error.exit_code == ExitCode.DATA == 1
    assert error.path == lake.root / GARBAGE
    assert error.lines[0].startswith(f"lake file {lake.root / GARBAGE} cannot be read: ")
    assert "tally sync" in error.lines[1]
    with pytest.raises(UnreadableFileError, match="trades-BTC-EUR"):
        Lake.notes(lake.root / TRUNCATED)


# --- the scan itself ----------------------------------------------------------------------------


def test_a_file_verified_once_is_not_read_again_until_it_changes(
    synced: Path, tmp_path: Path
) -> None:
    shutil.copytree(synced, tmp_path / "d")
    settings = load_settings(tmp_path / "d" / "tally.toml")
    lake, cache = Lake(settings.lake_dir), settings.data_dir / CACHE_NAME
    cache.unlink()
    first = check_lake(lake, CHECKED, cache, save=True)
    assert first.files == first.read_fully > 20 and first.bad == ()
    again = check_lake(lake, CHECKED, cache, save=True)
    assert (again.files, again.read_fully) == (first.files, 0)

    # a file rewritten is read again; one put where its dataset keeps no files is refused
    candles = next(iter(lake.files(FILLS.dataset)))
    candles.write_bytes(candles.read_bytes())
    stray = lake.dataset_dir(PUBLIC_TRADES.dataset) / "stray.parquet"
    shutil.copy(lake.files(PUBLIC_TRADES.dataset)[0], stray)
    third = check_lake(lake, CHECKED, cache, save=True)
    assert third.read_fully == 2
    (bad,) = third.bad
    assert bad.path == stray
    assert bad.reason.startswith("not where dataset public_trades keeps its files")
    # moved, but not a hole: tally never read it as part of the dataset
    (moved,) = quarantine_lake(settings).moved
    assert (moved.path, moved.refetch) == ("public_trades/stray.parquet", NOTHING_MISSING)
    assert moved.restored_at is not None


def test_a_column_of_another_type_is_refused(synced: Path, tmp_path: Path) -> None:
    shutil.copytree(synced, tmp_path / "d")
    settings = load_settings(tmp_path / "d" / "tally.toml")
    lake = Lake(settings.lake_dir)
    path = lake.root / TRUNCATED
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("price").cast(pl.Float64)).write_parquet(path)
    (bad,) = check_lake(lake, CHECKED, None, save=False).bad
    assert bad.reason == (
        "wrong columns for dataset fills: price is Float64, the dataset declares "
        "Decimal(precision=38, scale=18)"
    )
    # a file without columns added to its record later is not refused
    frame.drop("extra").write_parquet(path)
    assert check_lake(lake, CHECKED, None, save=False).bad == ()


def test_nothing_to_check_writes_nothing(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path / "empty")
    report = quarantine_lake(settings)
    assert (report.check.files, report.moved, report.notes) == (0, (), ())
    assert not (tmp_path / "empty").exists()
