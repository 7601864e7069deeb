"""The Prefect layer: deployments in prefect.yaml are valid, and the sync flow lands the sandbox."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect_api import PrefectApi
from test_markets_check import requests_by_endpoint, write_config

from pipelines import config_file
from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.datasets import CANDLES, FILLS, PUBLIC_TRADES
from pipelines.flows.artifacts import RECONCILIATION_KEY, SUMMARY_KEY
from pipelines.flows.markets import UnknownMarketError
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 3, 31, tzinfo=UTC)
FAN_OUT_CHILD = "sync-stream"  # prefect.yaml's deployment of the fan-out's child flow


def _deployments() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def _load_flow(entrypoint: str) -> object:
    path, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(f"entry_{name}", ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as Prefect's loader does (a dataclass needs its module)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: str(d["name"]))
def test_every_deployment_imports_and_its_parameters_validate(deployment: dict) -> None:
    from prefect import Flow

    flow = _load_flow(str(deployment["entrypoint"]))
    assert isinstance(flow, Flow)
    parameters = dict(deployment.get("parameters") or {})
    if deployment["name"] == FAN_OUT_CHILD:
        # its runs are asked for by a fan-out parent, with every parameter; side by side
        parameters = {"config": None, "exchange": "bitstamp", "stream": "account"}
        assert "concurrency_limit" not in deployment
    else:
        assert deployment["concurrency_limit"] == 1
    flow.validate_parameters(parameters)
    fan_out = parameters.get("fan_out")
    if fan_out is not None:  # names the child deployment as `flow name/deployment name`
        (child,) = [d for d in _deployments() if d["name"] == FAN_OUT_CHILD]
        child_flow = _load_flow(str(child["entrypoint"]))
        assert isinstance(child_flow, Flow)
        assert fan_out == f"{child_flow.name}/{child['name']}"


def test_scheduled_deployments_poll_bitstamp_trades_inside_their_window() -> None:
    """Bitstamp public trades exist for a day at most: market data must run at least hourly."""
    crons = {str(d["name"]): d.get("schedules") for d in _deployments()}
    market = crons["market-data-hourly"]
    assert market and re.fullmatch(r"\d+ \* \* \* \*", market[0]["cron"])
    assert crons["backfill"] is None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=3, days=20, now_ms=int(NOW.timestamp() * 1000)) as running:
        yield running


def test_sync_flow_lands_both_exchanges_and_is_idempotent(
    prefect_api: PrefectApi, sandbox: Sandbox, tmp_path: Path
) -> None:
    from pipelines.flows.sync import sync_flow

    config = tmp_path / "tally.toml"
    document = sandbox_document(sandbox)
    document["data_dir"] = "lakehouse"
    # Two Bitstamp markets are enough here; the sandbox config lists all of them.
    document["bitstamp"]["markets"] = ["BTC-EUR", "EUR-USD"]
    config_file.write_config(config, document)
    state = sync_flow(str(config), return_state=True)
    first = state.result()
    assert_published(state.state_details.flow_run_id, first)
    lake = Lake(load_settings(config).lake_dir)
    counts = {
        d.name: lake.scan(d).collect().height
        for d in (CANDLES.dataset, FILLS.dataset, PUBLIC_TRADES.dataset)
    }
    assert all(counts.values()), counts
    streams = {r["stream"] for r in first}
    assert any("bitstamp" in s for s in streams) and any("bitvavo" in s for s in streams)
    again = sync_flow(str(config), what=["candles", "trades"])
    assert sum(sum(r["rows"].values()) for r in again) == 0
    assert {
        d.name: lake.scan(d).collect().height
        for d in (CANDLES.dataset, FILLS.dataset, PUBLIC_TRADES.dataset)
    } == counts


def assert_published(flow_run_id: UUID | None, results: list[dict[str, Any]]) -> None:
    """The run's artifacts: the summary table (a record per stream, then the total) and the
    reconciliation verdict of the warehouse it rebuilt, as the Prefect API serves them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    assert flow_run_id is not None
    mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=mine)}
    assert set(artifacts) == {SUMMARY_KEY, RECONCILIATION_KEY}
    summary = artifacts[SUMMARY_KEY]
    assert summary.type == "table"
    # (the API serves a table's rows as JSON text)
    assert isinstance(summary.data, str)
    table: list[dict[str, Any]] = json.loads(summary.data)
    assert [row["stream"] for row in table] == [*sorted(r["stream"] for r in results), "total"]
    landed = {r["stream"]: sum(r["rows"].values()) for r in results}
    assert {row["stream"]: row["rows"] for row in table[:-1]} == landed
    assert table[-1]["rows"] == sum(landed.values()) > 0
    verdict = artifacts[RECONCILIATION_KEY]
    assert verdict.type == "markdown" and isinstance(verdict.data, str)
    assert verdict.data.startswith("**All ") and "| exchange | account | asset |" in verdict.data
    assert "| bitstamp |" in verdict.data and "| bitvavo |" in verdict.data


# --- the configured markets: checked once per run, before any task ---------------------------
# `tally sync` checks them before Prefect starts and its flow run does not read the market lists
# again; a flow run started otherwise (a deployment, the demo) checks them itself, with its own
# clients, before any task.


@pytest.fixture(scope="module")
def markets_sandbox() -> Iterator[Sandbox]:
    now_ms = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
    with start_sandbox(seed=31, world=World(seed=31, days=3, now_ms=now_ms)) as running:
        yield running


def served_since(sandbox: Sandbox, before: dict[str, int]) -> dict[str, int]:
    """Requests served per endpoint since `before` was taken."""
    return {
        name: count - before.get(name, 0)
        for name, count in requests_by_endpoint(sandbox).items()
        if count != before.get(name, 0)
    }


def test_tally_sync_reads_each_market_list_once(
    prefect_api: PrefectApi,
    markets_sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # `tally sync` would set INFO
    config = write_config(markets_sandbox, tmp_path, bitstamp=["BTC-EUR"])
    before = requests_by_endpoint(markets_sandbox)
    code = main(["sync", "--config", str(config), "--exchange", "bitstamp", "--what", "trades"])
    assert code == 0
    # the check before Prefect starts, then the one task: nothing read twice
    assert served_since(markets_sandbox, before) == {
        "bitstamp markets": 1,
        "bitstamp transactions/{pair}": 1,
    }
    trades = Lake(load_settings(config).lake_dir).scan(PUBLIC_TRADES.dataset).collect()
    assert trades.height > 0 and set(trades["market"]) == {"BTC-EUR"}


def test_a_flow_run_started_directly_checks_the_markets_before_any_task(
    prefect_api: PrefectApi, markets_sandbox: Sandbox, tmp_path: Path
) -> None:
    from pipelines.flows.sync import sync_flow

    typo = write_config(markets_sandbox, tmp_path / "typo", bitstamp=["BTC-EUR", "BTC-XYZ"])
    before = requests_by_endpoint(markets_sandbox)
    with pytest.raises(UnknownMarketError, match="BTC-XYZ"):
        sync_flow(str(typo), ["bitstamp"], ["trades"])
    assert served_since(markets_sandbox, before) == {"bitstamp markets": 1}, "a task ran"

    good = write_config(markets_sandbox, tmp_path / "good", bitstamp=["BTC-EUR"])
    before = requests_by_endpoint(markets_sandbox)
    results = sync_flow(str(good), ["bitstamp"], ["trades"])
    assert [r["stream"] for r in results] == ["public_trades bitstamp BTC-EUR"]
    assert served_since(markets_sandbox, before) == {
        "bitstamp markets": 1,
        "bitstamp transactions/{pair}": 1,
    }
