"""Configured markets are checked against each exchange's market list before anything is
fetched: `tally sync` with an unknown market prints one line naming it, its exchange and the
closest listed markets, exits 2, and neither lands a file nor starts Prefect. Perpetual markets
are markets of their own (`BTC-USD-PERP`): they neither stand in for their spot market nor are
synced as one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_stats import grown, requests_by_endpoint

from pipelines import config_file
from pipelines.config import load_settings
from pipelines.flows.markets import UnknownMarketError, check_markets, market_problems
from pipelines.flows.runtime import Runtime
from pipelines.http import RetryPolicy
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
FAST_RETRY = RetryPolicy(max_attempts=3, max_total_seconds=5, base_seconds=0.01)


world = world_fixture(seed=23, days=5, now_ms=NOW_MS)
sandbox = sandbox_fixture()
perps_sandbox = sandbox_fixture(variants=Variants(bitstamp_perps="on"))


def write_config(sandbox: Sandbox, directory: Path, **markets: list[str]) -> Path:
    """The sandbox's tally.toml with the given exchanges' markets replaced."""
    document = sandbox_document(sandbox)
    for exchange, names in markets.items():
        document[exchange]["markets"] = names
    return config_file.write_config(directory / "tally.toml", document)


def runtime(config: Path) -> closing[Runtime]:
    return closing(Runtime(load_settings(config), retry=FAST_RETRY))


# --- tally sync, as a user runs it ---------------------------------------------------------------


def test_tally_sync_with_an_unknown_market_fails_in_one_line_and_fetches_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, bitvavo=["BTC-EUR", "BTC-XYZ"])
    settings = load_settings(config)
    before = requests_by_endpoint(sandbox)
    command = [sys.executable, "-m", "pipelines.cli", "sync", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_HOME", None)
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert re.fullmatch(
        r"tally sync: bitvavo: configured market BTC-XYZ is not listed by GET /v2/markets "
        r"\(close matches: [A-Z0-9-, ]+\)",
        line,
    ), line
    assert "BTC-EUR" in line.split("close matches:")[1]
    assert done.stdout == ""
    # nothing landed, and Prefect never started (its home lives in the data directory); the
    # shared rate budget did record the two market-list requests
    written = list(settings.data_dir.rglob("*")) if settings.data_dir.exists() else []
    budget = settings.budget_dir
    assert all(path == budget or budget in path.parents for path in written), written
    assert not (settings.data_dir / ".prefect").exists()
    read = grown(before, requests_by_endpoint(sandbox))
    assert read == {"bitstamp markets": 1, "bitvavo markets": 1}, "only the market lists"


# --- the check ----------------------------------------------------------------------------------


def test_listed_markets_pass_and_every_unknown_one_gets_its_own_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    good = write_config(sandbox, tmp_path / "good")
    with runtime(good) as rt:
        check_markets(rt)  # the sandbox config lists exactly the world's markets
    bad = write_config(
        sandbox, tmp_path / "bad", bitstamp=["BTC-EUR", "EUR-GBP"], bitvavo=["ETH-EUR", "SOL-EUR"]
    )
    with runtime(bad) as rt, pytest.raises(UnknownMarketError) as raised:
        check_markets(rt)
    problems = {(p.exchange, p.market): p for p in raised.value.problems}
    assert set(problems) == {("bitstamp", "EUR-GBP"), ("bitvavo", "SOL-EUR")}
    assert "GBP-EUR" in problems[("bitstamp", "EUR-GBP")].close
    assert str(raised.value).splitlines() == [
        problems[("bitstamp", "EUR-GBP")].line(),
        problems[("bitvavo", "SOL-EUR")].line(),
    ]
    assert "GET /api/v2/markets/" in problems[("bitstamp", "EUR-GBP")].line()
    with runtime(bad) as rt, pytest.raises(UnknownMarketError) as only:
        check_markets(rt, ["bitvavo"])
    assert [p.exchange for p in only.value.problems] == ["bitvavo"]


def test_a_perpetual_is_a_market_of_its_own(perps_sandbox: Sandbox, tmp_path: Path) -> None:
    config = write_config(perps_sandbox, tmp_path)
    with runtime(config) as rt:
        listed = rt.client("bitstamp").markets()
        check_markets(rt)  # the spot markets are still fine with perpetuals listed
    names = {m.market for m in listed}
    assert "BTC-USD-PERP" in names and "BTC-USD" in names
    (spot,) = market_problems("bitstamp", ["BTC-USD"], [m for m in listed if m.market != "BTC-USD"])
    assert spot.listed_as is None, "a listed perpetual does not make its spot market known"
    assert "BTC-USD-PERP" in spot.close
    (perp,) = market_problems("bitstamp", ["BTC-USD-PERP"], listed)
    assert perp.listed_as == "PERPETUAL"
    assert "is a PERPETUAL market, not a spot market" in perp.line()


def test_without_the_variant_a_perpetual_is_simply_unknown(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write_config(sandbox, tmp_path, bitstamp=["BTC-USD-PERP"])
    with runtime(config) as rt, pytest.raises(UnknownMarketError) as raised:
        check_markets(rt, ["bitstamp"])
    (problem,) = raised.value.problems
    assert (problem.market, problem.listed_as) == ("BTC-USD-PERP", None)
    assert "BTC-USD" in problem.close
