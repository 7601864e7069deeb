"""`tally doctor`: one row per check with its fix, exit 0 only when no row failed, else the code
of the worst failure (3 exchange, credentials or network; 2 configuration; 1 data).

Against the sandbox, over real HTTP, as a subprocess in a directory of its own with no exchange
keys in its environment: a sandbox config passes everything but the documented warning (a key's
trade and withdraw rights cannot be read without risk); a config whose Bitvavo secret differs
from the sandbox's fails the credentials row of Bitvavo only; keys that lack a read permission
fail that permission's row, named. The warehouse row compares real files' times.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli_runner import tally
from sandbox_fixtures import sandbox_fixture, world_fixture

from pipelines import config_file
from pipelines.checks.warehouse import warehouse_rows
from pipelines.config import load_settings
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
BITSTAMP_READS = (
    "account_balances",
    "user_transactions",
    "crypto_transactions",
    "fees_trading",
    "fees_withdrawal",
)
BITVAVO_READS = (
    "balance",
    "account_history",
    "trades",
    "deposit_history",
    "withdrawal_history",
    "account_fees",
)


world = world_fixture(seed=43, days=5, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def doctor(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tally("doctor", *args, cwd=directory)


def rows_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    report = json.loads(done.stdout)
    assert report["exit_code"] == done.returncode
    assert report["ok"] == (done.returncode == 0)
    return list(report["checks"])


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["check"], row["subject"])
        assert key not in found, f"two rows for {key}"
        found[key] = row
    return found


def write_config(sandbox: Sandbox, directory: Path, **changes: dict[str, str | None]) -> None:
    """The sandbox's tally.toml in `directory`, with each section's keys in `changes` set to
    their value (None: left out)."""
    document = sandbox_document(sandbox)
    for section, values in changes.items():
        for key, value in values.items():
            assert key in document[section]
            document[section][key] = value
        document[section] = {k: v for k, v in document[section].items() if v is not None}
    config_file.write_config(directory / "tally.toml", document)


def test_a_sandbox_config_passes_every_check_but_the_documented_warning(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    write_config(sandbox, tmp_path)
    done = doctor(tmp_path, "--json")
    assert done.returncode == 0, done
    rows = rows_of(done)
    statuses = {(row["check"], row["subject"]): row["status"] for row in rows}
    assert {key: status for key, status in statuses.items() if status != "ok"} == {
        ("trade/withdraw", "bitstamp"): "warn",
        ("trade/withdraw", "bitvavo"): "warn",
        ("warehouse", str(tmp_path / "data" / "warehouse.duckdb")): "skip",  # nothing synced
        # one read cannot bound how long a candle keeps changing (pipelines/checks/behaviours)
        ("probe: bitvavo-candles-settle", "bitvavo"): "skip",
    }
    probed = {key[0].removeprefix("probe: ") for key in statuses if key[0].startswith("probe: ")}
    assert probed == {field.name.replace("_", "-") for field in dataclasses.fields(Variants)}
    for exchange in ("bitstamp", "bitvavo"):
        for check in ("reachable", "clock", "credentials", "markets"):
            assert statuses[(check, exchange)] == "ok"
    reads = {key[1] for key in statuses if key[0] == "permission"}
    assert reads == {f"bitstamp {r}" for r in BITSTAMP_READS} | {
        f"bitvavo {r}" for r in BITVAVO_READS
    }
    # the config freezes now at 2024-03-31: the clock rows still compare the wall clock
    clock = by_key(rows)[("clock", "bitvavo")]
    assert "now is frozen" in clock["detail"] and "GET /v2/time" in clock["detail"]
    warning = by_key(rows)[("trade/withdraw", "bitvavo")]
    assert "no read-only way" in warning["detail"] and "withdraw" in warning["fix"]
    assert sandbox.bitstamp.secret not in done.stdout and sandbox.bitvavo.key not in done.stdout


def test_a_different_bitvavo_secret_fails_its_credentials_row_only(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    write_config(sandbox, tmp_path, bitvavo={"api_secret": "f" * 128})
    done = doctor(tmp_path, "--json")
    assert done.returncode == 3, done
    rows = rows_of(done)
    failed = [row for row in rows if row["status"] == "fail"]
    assert [(row["check"], row["subject"]) for row in failed] == [("credentials", "bitvavo")]
    (row,) = failed
    assert "code 309" in row["detail"] and "BITVAVO_API_SECRET" in row["fix"]
    keyed = by_key(rows)
    assert keyed[("credentials", "bitstamp")]["status"] == "ok"
    assert keyed[("reachable", "bitvavo")]["status"] == "ok", "public reads are not signed"
    assert not any(key[1].startswith("bitvavo ") for key in keyed if key[0] == "permission")

    table = doctor(tmp_path)  # the same as a table: the failed row, then its fix below it
    assert table.returncode == 3
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["check", "subject", "status", "detail"]
    index = next(
        i for i, line in enumerate(lines) if line.split()[:2] == ["credentials", "bitvavo"]
    )
    assert lines[index].split()[2] == "FAIL"
    assert lines[index + 1].strip().startswith("fix: check BITVAVO_API_SECRET")
    assert lines[-1].endswith("1 fail, 2 skip: exit 3"), lines[-1]
    assert keyed[("behaviours", "bitvavo")]["detail"].startswith("not probed: its key was not")


def test_a_key_without_a_read_permission_fails_that_permissions_row(
    world: World, tmp_path: Path
) -> None:
    with start_sandbox(
        seed=43,
        world=world,
        missing_permissions={"bitstamp": {"crypto-transactions"}, "bitvavo": {"view"}},
    ) as lacking:
        write_config(lacking, tmp_path)
        done = doctor(tmp_path, "--json")
    assert done.returncode == 3, done
    keyed = by_key(rows_of(done))
    failed = {key for key, row in keyed.items() if row["status"] == "fail"}
    assert failed == {("permission", "bitstamp crypto_transactions")} | {
        ("permission", f"bitvavo {read}") for read in BITVAVO_READS
    }
    bitstamp = keyed[("permission", "bitstamp crypto_transactions")]
    assert bitstamp["detail"].startswith("POST /api/v2/crypto-transactions/: permission denied")
    assert "API0003" in bitstamp["detail"]
    assert bitstamp["fix"].startswith("tick the permission for POST /api/v2/crypto-transactions/")
    bitvavo = keyed[("permission", "bitvavo trades")]
    assert "code 311" in bitvavo["detail"] and "View permission" in bitvavo["fix"]
    # the keys themselves are accepted: only what they may read is missing
    assert keyed[("credentials", "bitstamp")]["status"] == "ok"
    assert keyed[("credentials", "bitvavo")]["status"] == "ok"
    assert keyed[("permission", "bitstamp user_transactions")]["status"] == "ok"


def test_one_exchange_only_and_no_keys(sandbox: Sandbox, tmp_path: Path) -> None:
    write_config(sandbox, tmp_path, bitstamp={"api_key": None, "api_secret": None})
    done = doctor(tmp_path, "--json", "--exchange", "bitstamp")
    assert done.returncode == 3, done
    rows = rows_of(done)
    assert not [row for row in rows if "bitvavo" in row["subject"]]
    keyed = by_key(rows)
    missing = keyed[("credentials", "bitstamp")]
    assert missing["status"] == "fail"
    assert "BITSTAMP_API_KEY and BITSTAMP_API_SECRET" in missing["fix"]
    assert keyed[("reachable", "bitstamp")]["status"] == "ok"
    assert keyed[("markets", "bitstamp")]["status"] == "ok"


def test_a_broken_configuration_is_one_failed_row_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text("data_dir = \n", encoding="utf-8")
    done = doctor(tmp_path, "--json")
    assert done.returncode == 2, done
    (row,) = rows_of(done)
    assert (row["check"], row["status"]) == ("configuration", "fail")
    assert "tally.toml" in row["detail"] and "Traceback" not in done.stderr


def test_the_warehouse_is_fresh_only_when_built_after_the_newest_lake_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "tally.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    settings = load_settings(tmp_path / "tally.toml")

    def status() -> tuple[str, str]:
        (row,) = warehouse_rows(settings)
        return row.status, row.fix

    assert status() == ("skip", "")  # nothing synced yet
    landed = settings.lake_dir / "fills" / "exchange=bitstamp" / "part.parquet"
    landed.parent.mkdir(parents=True)
    landed.write_bytes(b"PAR1")
    os.utime(landed, (1_700_000_000, 1_700_000_000))
    assert status() == ("fail", "run tally warehouse")  # never built
    settings.warehouse_path.write_bytes(b"")
    os.utime(settings.warehouse_path, (1_700_000_100, 1_700_000_100))
    assert status() == ("ok", "")
    os.utime(landed, (1_700_000_200, 1_700_000_200))  # a sync landed a file since
    assert status() == ("fail", "run tally warehouse")
