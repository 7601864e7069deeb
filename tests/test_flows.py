"""The Prefect layer: deployments in prefect.yaml are valid, and the sync flow lands the sandbox."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pipelines.cli import sandbox_config
from pipelines.config import load_settings
from pipelines.datasets import CANDLES, FILLS, PUBLIC_TRADES
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 3, 31, tzinfo=UTC)


def _deployments() -> list[dict[str, object]]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def _load_flow(entrypoint: str) -> object:
    path, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(f"entry_{name}", ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: str(d["name"]))
def test_every_deployment_imports_and_its_parameters_validate(deployment: dict) -> None:
    from prefect import Flow

    flow = _load_flow(str(deployment["entrypoint"]))
    assert isinstance(flow, Flow)
    flow.validate_parameters(dict(deployment.get("parameters") or {}))
    assert deployment["concurrency_limit"] == 1


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
    prefect_harness: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    from pipelines.flows.sync import sync_flow

    config = tmp_path / "tally.toml"
    text = sandbox_config(sandbox).replace('data_dir = "data"', 'data_dir = "lakehouse"')
    # Two Bitstamp markets are enough here; the sandbox config lists all of them.
    narrowed, replaced = re.subn(
        r"(\[bitstamp\][^\[]*?)markets = \[[^\]]*\]", r'\1markets = ["BTC-EUR", "EUR-USD"]', text
    )
    assert replaced == 1
    config.write_text(narrowed)
    first = sync_flow(str(config))
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
