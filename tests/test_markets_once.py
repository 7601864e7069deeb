"""The configured markets are checked once per run, before any task: `tally sync` checks them
before Prefect starts and its flow run does not read the market lists again; a flow run started
otherwise (a deployment, the demo) checks them itself, with its own clients, before any task.
And a market's type comes from its listing, or from the suffix `market_suffix` gave its name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_markets_check import requests_by_endpoint, write_config

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.datasets import PUBLIC_TRADES
from pipelines.exchanges import bitstamp_parse, bitvavo_parse
from pipelines.flows.markets import UnknownMarketError, market_problems, market_type
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=31, world=World(seed=31, days=3, now_ms=NOW_MS)) as running:
        yield running


def served_since(sandbox: Sandbox, before: dict[str, int]) -> dict[str, int]:
    """Requests served per endpoint since `before` was taken."""
    return {
        name: count - before.get(name, 0)
        for name, count in requests_by_endpoint(sandbox).items()
        if count != before.get(name, 0)
    }


# --- once per run ---------------------------------------------------------------------------


def test_tally_sync_reads_each_market_list_once(
    prefect_harness: None, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")  # `tally sync` would set INFO
    config = write_config(sandbox, tmp_path, bitstamp=["BTC-EUR"])
    before = requests_by_endpoint(sandbox)
    code = main(["sync", "--config", str(config), "--exchange", "bitstamp", "--what", "trades"])
    assert code == 0
    # the check before Prefect starts, then the one task: nothing read twice
    assert served_since(sandbox, before) == {
        "bitstamp markets": 1,
        "bitstamp transactions/{pair}": 1,
    }
    trades = Lake(load_settings(config).lake_dir).scan(PUBLIC_TRADES.dataset).collect()
    assert trades.height > 0 and set(trades["market"]) == {"BTC-EUR"}


def test_a_flow_run_started_directly_checks_the_markets_before_any_task(
    prefect_harness: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    from pipelines.flows.sync import sync_flow

    typo = write_config(sandbox, tmp_path / "typo", bitstamp=["BTC-EUR", "BTC-XYZ"])
    before = requests_by_endpoint(sandbox)
    with pytest.raises(UnknownMarketError, match="BTC-XYZ"):
        sync_flow(str(typo), ["bitstamp"], ["trades"])
    assert served_since(sandbox, before) == {"bitstamp markets": 1}, "a task ran"

    good = write_config(sandbox, tmp_path / "good", bitstamp=["BTC-EUR"])
    before = requests_by_endpoint(sandbox)
    results = sync_flow(str(good), ["bitstamp"], ["trades"])
    assert [r["stream"] for r in results] == ["public_trades bitstamp BTC-EUR"]
    assert served_since(sandbox, before) == {
        "bitstamp markets": 1,
        "bitstamp transactions/{pair}": 1,
    }


# --- a market's type ------------------------------------------------------------------------


def recorded(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / "recorded" / name).read_text(encoding="utf-8"))


def test_the_recorded_market_lists_are_spot(samples_dir: Path) -> None:
    listed = [
        *bitstamp_parse.parse_markets(recorded(samples_dir, "bitstamp_markets__ccxt_comment.json")),
        *bitstamp_parse.parse_markets(
            recorded(samples_dir, "bitstamp_trading_pairs_info_legacy.json")
        ),
        *bitvavo_parse.parse_markets(recorded(samples_dir, "bitvavo_markets.json")),
    ]
    assert len(listed) > 3 and {info.exchange for info in listed} == {"bitstamp", "bitvavo"}
    assert {market_type(info) for info in listed} == {"SPOT"}


def test_a_suffixed_market_is_never_spot(samples_dir: Path) -> None:
    """A perpetual in the older list shape (no `market_type`) is typed by its name's suffix; in
    the newer shape, by the type it was listed with."""
    legacy = recorded(samples_dir, "bitstamp_trading_pairs_info_legacy.json")[0]
    (old,) = bitstamp_parse.parse_markets([{**legacy, "url_symbol": "btcusd-perp"}])
    assert (old.market, market_type(old)) == ("BTC-USD-PERP", "PERP")
    (problem,) = market_problems("bitstamp", ["BTC-USD-PERP"], [old])
    assert problem.listed_as == "PERP"

    current = recorded(samples_dir, "bitstamp_markets__ccxt_comment.json")[0]
    perp = {**current, "market_symbol": "btcusd-perp", "market_type": "PERPETUAL"}
    (new,) = bitstamp_parse.parse_markets([perp])
    assert (new.market, market_type(new)) == ("BTC-USD-PERP", "PERPETUAL")
    assert market_problems("bitstamp", ["BTC-USD"], [new])[0].listed_as is None
