"""Configured markets checked against each exchange's market list before anything is fetched.

`check_markets` reads each exchange's market list (its adapter's `market_list`: Bitstamp's
`GET /api/v2/markets/`, Bitvavo's `GET /v2/markets`; one public request each) and raises
`UnknownMarketError` for every configured market that is not a listed spot market: one line
each, naming the market, its exchange, the list it is missing from and the closest listed names
(its inverse, e.g. `GBP-EUR` for `EUR-GBP`, then difflib's).
`tally sync` runs it before Prefect starts; a `sync` flow run started otherwise (a deployment,
the demo) runs it with its own clients before it plans a task: once per run, so that a typo
fails in a second and lands nothing.

A perpetual market (Bitstamp `btcusd-perp`, `market_type` PERPETUAL) is a market of its own,
named `BTC-USD-PERP` (never `BTC-USD`): it does not make `BTC-USD` known, and configuring it is
refused too, since tally syncs the market data of spot markets only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass

from pipelines.config import Settings
from pipelines.exchanges.records import MarketInfo
from pipelines.exchanges.registry import EXCHANGES
from pipelines.flows.runtime import Runtime

CLOSE_MATCHES = 3
CLOSE_CUTOFF = 0.5


@dataclass(frozen=True, slots=True)
class MarketProblem:
    """A configured market that cannot be synced, and the listed names closest to it."""

    exchange: str
    market: str
    listed_as: str | None  # the market type when listed but not spot (e.g. "PERPETUAL")
    close: tuple[str, ...]

    def line(self) -> str:
        if self.listed_as is None:
            adapter = EXCHANGES.get(self.exchange)
            listing = adapter.ingestion.market_list if adapter else "its market list"
            what = f"is not listed by {listing}"
        else:
            what = f"is a {self.listed_as} market, not a spot market: tally syncs spot markets only"
        matches = ", ".join(self.close) if self.close else "none"
        return f"{self.exchange}: configured market {self.market} {what} (close matches: {matches})"


class UnknownMarketError(ValueError):
    """Configured markets an exchange does not list as spot markets; one line per market."""

    def __init__(self, problems: Iterable[MarketProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.line() for problem in self.problems))


def market_type(info: MarketInfo) -> str:
    """The market's type as listed ("SPOT", "PERPETUAL"); without one, the type its symbol's
    spelling implies (the adapter's `symbol_kind`: Bitstamp's `btcusd-perp` → "PERP"): a market
    with a suffix is never spot. Only Bitstamp's symbols carry suffixes (Bitvavo's are
    BASE-QUOTE)."""
    sent = info.extra.get("market_type")
    if isinstance(sent, str) and sent:
        return sent.upper()
    adapter = EXCHANGES.get(info.exchange)
    return adapter.ingestion.symbol_kind(info.symbol) if adapter else "SPOT"


def market_problems(
    exchange: str, configured: Iterable[str], listed: Sequence[MarketInfo]
) -> list[MarketProblem]:
    """The configured markets of `exchange` that `listed` does not hold as spot markets."""
    types = {info.market: market_type(info) for info in listed}
    names = sorted(types)
    problems = []
    for market in configured:
        kind = types.get(market)
        if kind == "SPOT":
            continue
        problems.append(MarketProblem(exchange, market, kind, close_matches(market, names)))
    return problems


def close_matches(market: str, names: Sequence[str]) -> tuple[str, ...]:
    """The listed names closest to `market`: its inverse first (`EUR-GBP` → `GBP-EUR`), then
    difflib's closest spellings."""
    base, _, quote = market.partition("-")
    found = [f"{quote}-{base}"] if f"{quote}-{base}" in names else []
    spelled = difflib.get_close_matches(market, names, n=CLOSE_MATCHES, cutoff=CLOSE_CUTOFF)
    found += [name for name in spelled if name not in found]
    return tuple(found[:CLOSE_MATCHES])


def check_markets(rt: Runtime, exchanges: Sequence[str] | None = None) -> None:
    """Raise `UnknownMarketError` unless every configured market of `exchanges` (default all
    configured exchanges) is a listed spot market. Exchanges without markets ask nothing."""
    problems: list[MarketProblem] = []
    for name in exchanges or list(rt.settings.exchanges):
        configured = rt.settings.exchange(name).markets
        if configured:
            problems += market_problems(name, configured, rt.client(name).markets())
    if problems:
        raise UnknownMarketError(problems)


def check_configured_markets(settings: Settings, exchanges: Sequence[str] | None = None) -> None:
    """`check_markets` with a runtime of its own, closed afterwards."""
    with closing(Runtime(settings)) as rt:
        check_markets(rt, exchanges)
