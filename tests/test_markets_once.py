"""A market's type comes from its listing, or from the suffix `market_suffix` gave its name.
(That the markets are checked once per run, before any task, is in test_flows.py, beside the
other tests that need the Prefect test harness.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.exchanges import bitstamp_parse, bitvavo_parse
from pipelines.flows.markets import market_problems, market_type

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
