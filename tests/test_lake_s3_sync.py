"""A sync of the sandbox into a lake on S3 (`lake_url`, the loopback server of
`tests/s3_server.py`) builds the same warehouse as a sync of the same world into a local lake;
the `duckdb` shell opens that warehouse with the init file `tally warehouse` writes and the
standard `AWS_*` variables, and reads the lake."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_server import S3Server, s3_fixture
from sandbox_runtime import FAST_RETRY, frozen_at, write_sandbox_config
from synced_lake import Accounts, Candles, LakeSpec
from warehouse_build import build

from pipelines.config import Settings, load_settings
from pipelines.config_file import read_config, write_config
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, WeightBudget
from pipelines.lake import Lake
from pipelines.lake_duckdb import SHELL_INIT_FILE, open_object_store
from pipelines.lake_store import ObjectPath
from warehouse.build import BuildResult
from warehouse.connect import connect
from warehouse.readonly import ReadOnlyError, read
from warehouse.sources import DATASETS, STAGING
from warehouse.staging import (
    RACY_MARGIN_SECONDS,
    SERVER_CLOCK_BEHIND_SECONDS,
    pending,
    stage,
)

s3 = s3_fixture(bucket="tally-sync")
# test_warehouse_checks.py's world and lake (the session syncs it once for several modules)
SEED, DAYS, NOW = 7, 60, datetime(2024, 6, 1, tzinfo=UTC)
WHAT = (Accounts(), Candles())
DUCKDB_SHELL = Path(sys.executable).parent / "duckdb"


def s3_settings(config: Path, server: S3Server, lake_url: str) -> Settings:
    document = read_config(config)
    document["lake_url"] = lake_url
    write_config(config, document)
    return load_settings(config, environ={**os.environ, **server.environment()})


@pytest.fixture(scope="module")
def local(synced_lake: Any) -> Settings:
    return synced_lake(seed=SEED, days=DAYS, now=NOW, what=WHAT).settings


@pytest.fixture(scope="module")
def on_s3(
    s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, BuildResult]]:
    spec = LakeSpec(SEED, DAYS, NOW, WHAT)
    directory = tmp_path_factory.mktemp("s3-sync")
    with spec.sandbox(spec.world()) as sandbox:
        config = write_sandbox_config(sandbox, directory)
        settings = s3_settings(config, s3, s3.url("synced", "lake"))
        rt = Runtime(
            settings,
            retry=FAST_RETRY,
            clock=frozen_at(NOW),
            limiters={
                "bitstamp": RequestBudget(*BITSTAMP_PACING),
                "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
            },
        )
        try:
            assert isinstance(rt.lake.root, ObjectPath)
            for step in WHAT:
                step.run(rt, spec.world())
        finally:
            rt.close()
    yield settings, build(settings)


def test_the_lake_is_in_the_bucket_and_not_in_the_data_dir(
    on_s3: tuple[Settings, BuildResult], s3: S3Server
) -> None:
    settings, _ = on_s3
    assert settings.lake_url == s3.url("synced", "lake")
    assert not settings.lake_dir.exists()
    lake = Lake.of(settings)
    assert lake.location == s3.url("synced", "lake")
    landed = sorted(str(f) for f in lake.root.rglob("*.parquet"))
    assert len(landed) > 10 and all(f.startswith(f"{lake.location}/") for f in landed)
    assert not any(".tmp" in f for f in landed)


def test_the_warehouse_over_s3_equals_the_local_one(
    on_s3: tuple[Settings, BuildResult], local: Settings
) -> None:
    settings, result = on_s3
    assert result.views
    location = Lake.of(settings).location
    with (
        connect(settings.data_dir, lake=location, s3=settings.s3) as remote,
        connect(local.data_dir) as here,
    ):
        for name in result.views:
            query = f'select * from "{name}"'
            theirs = here.execute(query).fetchall()
            ours = remote.execute(query).fetchall()
            assert _lake_free(ours, location) == _lake_free(theirs, str(local.lake_dir)), name
        compared = here.execute("select count(*) from reconcile_balances").fetchone()
        assert compared is not None and compared[0] > 0


def _lake_free(rows: list[tuple[Any, ...]], location: str) -> list[tuple[Any, ...]]:
    """The rows, sorted, with the lake's location cut out of any text (a file name in a model)
    and every time after the world's frozen now masked: those are the wall clock's (when a
    sync fetched a page, took a balance snapshot), which two syncs cannot share."""
    masked = [
        tuple(
            v.replace(location, "<lake>")
            if isinstance(v, str)
            else "<wall clock>"
            if isinstance(v, datetime) and v > NOW
            else v
            for v in row
        )
        for row in rows
    ]
    return sorted(masked, key=repr)


def test_the_duckdb_shell_reads_the_s3_warehouse_and_lake(
    on_s3: tuple[Settings, BuildResult], s3: S3Server
) -> None:
    settings, _ = on_s3
    init = settings.data_dir / SHELL_INIT_FILE
    text = init.read_text()
    assert s3.secret not in text and s3.key_id not in text
    location = Lake.of(settings).location
    query = (
        "select count(*) from coverage;"
        f"select count(*) from read_parquet('{location}/candles/*/*/*/*.parquet');"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [
            str(DUCKDB_SHELL),
            "-readonly",
            "-init",
            str(init),
            "-csv",
            "-noheader",
            "-c",
            query,
            str(settings.warehouse_path),
        ],
        env={**environment, **s3.environment()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    coverage, candles = (int(line) for line in done.stdout.split())  # nothing else shown
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as catalog:
        expected = catalog.execute("select count(*) from coverage").fetchone()
        staged = catalog.execute("select count(*) from staging.candles_landed").fetchone()
    assert expected is not None and staged is not None
    assert (coverage, candles) == (expected[0], staged[0]) and candles > 0


def test_the_guarded_connection_reads_the_lake_url_and_nothing_else(
    on_s3: tuple[Settings, BuildResult], s3: S3Server
) -> None:
    settings, _ = on_s3
    location = Lake.of(settings).location
    outside = s3.url("elsewhere", "x.parquet")
    s3.filesystem().open_output_stream(f"{s3.bucket}/elsewhere/x.parquet").close()
    with connect(settings.data_dir, lake=location, s3=settings.s3) as connection:
        inside = connection.execute(f"select count(*) from glob('{location}/candles/*/*/*/*')")
        assert (inside.fetchone() or (0,))[0] > 0
        with pytest.raises(duckdb.PermissionException):
            connection.execute(f"select * from read_parquet('{outside}')")
        with pytest.raises(duckdb.Error):
            connection.execute("set s3_endpoint = 'elsewhere:1'")


def newest_seconds(lake: Lake, dataset: Any) -> int:
    return max(f.mtime_ns for f in lake.listed(dataset)) // 10**9


def staged_then_pending(lake: Lake, clock: float) -> set[str]:
    """A staging from nothing at `clock` (this machine's time), then what the next build would
    read again."""
    assert lake.s3 is not None
    with duckdb.connect() as connection:
        open_object_store(connection, lake.location, lake.s3)
        connection.execute(f"create schema {STAGING}")
        stage(connection, lake, incremental=False, clock=lambda: clock)
        return set(pending(connection, lake))


def test_objects_of_the_staging_second_are_read_again_by_the_next_build(
    on_s3: tuple[Settings, BuildResult],
) -> None:
    """The listing's times are whole seconds: an object from the seconds before a staging began
    (or later) might be replaced unseen within its second, so it is recorded to match nothing."""
    settings, _ = on_s3
    lake = Lake.of(settings)
    assert lake.s3 is not None
    held = [d for d in DATASETS.values() if lake.listed(d)]
    newest = max(newest_seconds(lake, d) for d in held)
    # the newest object of a dataset is racy while its time is within the server's clock's
    # allowance of the start
    racy = {d.name for d in held if newest_seconds(lake, d) >= newest - SERVER_CLOCK_BEHIND_SECONDS}
    with duckdb.connect() as connection:
        open_object_store(connection, lake.location, lake.s3)
        connection.execute(f"create schema {STAGING}")
        assert set(stage(connection, lake, incremental=False, clock=lambda: newest)) >= {
            d.name for d in held
        }
        assert set(pending(connection, lake)) == racy != set()
        later = newest + SERVER_CLOCK_BEHIND_SECONDS + RACY_MARGIN_SECONDS + 1
        assert set(stage(connection, lake, incremental=True, clock=lambda: later)) == racy
        assert pending(connection, lake) == []
        assert stage(connection, lake, incremental=True, clock=lambda: later) == []


@pytest.mark.parametrize("ahead", [1, RACY_MARGIN_SECONDS, 30, SERVER_CLOCK_BEHIND_SECONDS])
def test_an_object_of_the_newest_second_is_racy_when_this_clock_is_ahead_of_the_servers(
    on_s3: tuple[Settings, BuildResult], ahead: int
) -> None:
    """This machine's clock `ahead` seconds past the newest listed time (the server's clock
    behind, or the object written just before the staging): the newest objects are racy."""
    settings, _ = on_s3
    lake = Lake.of(settings)
    held = [d for d in DATASETS.values() if lake.listed(d)]
    newest = max(newest_seconds(lake, d) for d in held)
    newest_dataset = next(d.name for d in held if newest_seconds(lake, d) == newest)
    assert newest_dataset in staged_then_pending(lake, newest + ahead)


def test_objects_older_than_every_allowance_are_not_read_again(
    on_s3: tuple[Settings, BuildResult],
) -> None:
    settings, _ = on_s3
    lake = Lake.of(settings)
    newest = max(newest_seconds(lake, d) for d in DATASETS.values() if lake.listed(d))
    later = newest + SERVER_CLOCK_BEHIND_SECONDS + RACY_MARGIN_SECONDS + 1
    assert staged_then_pending(lake, later) == set()


def test_the_read_only_guard_refuses_a_path_that_climbs_out_of_the_lake(
    on_s3: tuple[Settings, BuildResult], s3: S3Server
) -> None:
    """`allowed_directories` compares an object URL as text: `<lake>/../x` starts with the lake
    and may name an object outside it. The read-only check refuses `..` and computed paths."""
    settings, _ = on_s3
    location = Lake.of(settings).location
    inside = f"{location}/candles/*/*/*/*.parquet"
    climbing = f"{location}/../../elsewhere/x.parquet"
    with s3.filesystem().open_output_stream(f"{s3.bucket}/elsewhere/x.parquet") as out:
        pq.write_table(pa.table({"stolen": [1]}), out)
    queries: list[tuple[str, list[object] | None]] = [
        (f"select * from read_parquet('{climbing}')", None),
        (f"select * from '{climbing}'", None),
        (f"select * from read_parquet(['{inside}', '{climbing}'])", None),
        (f"select * from parquet_schema('{climbing}')", None),
        ("select * from read_parquet(?)", [climbing]),
        ("select * from read_parquet(?)", [[inside, climbing]]),
        (f"select * from read_parquet('{location}/..' || '/../elsewhere/x.parquet')", None),
    ]
    with connect(settings.data_dir, lake=location, s3=settings.s3) as connection:
        for sql, params in queries:
            with pytest.raises(ReadOnlyError) as refused:
                read(connection, sql, params)
            assert "refused" in str(refused.value)
        # the lake's own files still read, by a path or a parameter
        row = read(connection, f"select count(*) from read_parquet('{inside}')").fetchone()
        assert row is not None and row[0] > 0
        row = read(connection, "select count(*) from read_parquet(?)", [inside]).fetchone()
        assert row is not None and row[0] > 0
