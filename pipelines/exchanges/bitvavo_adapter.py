"""Bitvavo, declared: the adapter the registry hands out for `exchange = "bitvavo"`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pipelines.exchanges import bitvavo_checks, bitvavo_warehouse
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS, classify_bitvavo
from pipelines.exchanges.ingestion import (
    CANDLES,
    PUBLIC_TRADES,
    Candles,
    ConfigSection,
    Connection,
    HistoryTrades,
    Ingestion,
    Ledger,
    Option,
    Stream,
    spot,
)
from pipelines.exchanges.limits import (
    ACCESS_WINDOW_BOUNDS_MS,
    ACCESS_WINDOW_MS,
    CANDLE_LIMIT,
    MAX_TRADE_SPAN,
    BitvavoOptions,
)
from pipelines.exchanges.values import BITVAVO_INTERVALS

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.exchanges.bitvavo import BitvavoClient
    from pipelines.exchanges.paging import Page
    from pipelines.exchanges.records import PublicTrade
    from pipelines.http import BudgetPlace, Limiter

_SHORTEST, _LONGEST = ACCESS_WINDOW_BOUNDS_MS


def _client(config: ExchangeSettings[BitvavoOptions], how: Connection) -> BitvavoClient:
    from pipelines.exchanges.bitvavo import BitvavoClient

    return BitvavoClient(
        config.base_url,
        how.credentials,
        classify=BITVAVO.classify,
        access_window_ms=config.options.access_window_ms,
        **how.options(),
    )


def _trades_read_after(page: Page[PublicTrade]) -> datetime | None:
    from pipelines.exchanges.bitvavo import trades_read_after

    return trades_read_after(page)


def _budget(config: ExchangeSettings, where: BudgetPlace) -> Limiter:
    """Bitvavo tells the weight left in every response: processes share what it said last."""
    from pipelines.http import SharedWeightBudget, shared_limiter

    return shared_limiter(
        config.name, str(where), lambda: SharedWeightBudget(where, headers=WEIGHT_HEADERS)
    )


_CONFIG = ConfigSection(
    base_url="https://api.bitvavo.com/v2",
    markets=("BTC-EUR", "ETH-EUR", "ADA-EUR"),
    markets_meaning="markets whose candles and public trades are synced (and fills read, "
    "besides the markets the account traded)",
    intervals=BITVAVO_INTERVALS,
    default_intervals=("1h", "1d"),
    # paced from Bitvavo's own rate-limit headers: no pacing keys
    options=(
        Option(
            "access_window_ms",
            int,
            ACCESS_WINDOW_MS,
            "how long a signed request stays valid (Bitvavo-Access-Window)",
            f"a whole number of milliseconds from {_SHORTEST} to {_LONGEST}",
            {"ge": _SHORTEST, "le": _LONGEST},
        ),
    ),
    shape=BitvavoOptions,
)

INGESTION: Ingestion[BitvavoClient] = Ingestion(
    config=_CONFIG,
    client=_client,
    budget=_budget,
    market_list="GET /v2/markets",
    symbol_kind=spot,
    candles=Candles(
        walk=lambda client, market, interval, start, end: client.candles_window(
            market, interval, start, end
        ),
        fills_empty_intervals=False,
        page_limit=CANDLE_LIMIT,
    ),
    public_trades=HistoryTrades(
        walk=lambda client, market, start, end: client.public_trades_range(market, start, end),
        read_after=_trades_read_after,
        first_span=MAX_TRADE_SPAN,
    ),
    streams=(
        CANDLES,
        PUBLIC_TRADES,
        Stream(
            "bitvavo_history",
            "bitvavo_history",
            "executed_at",
            "account",
            needs_keys=True,
        ),
        Stream(
            "bitvavo_snapshots",
            "balance_snapshots",
            None,
            "account",
            needs_keys=True,
            also=("fee_schedules",),
        ),
        Stream(
            "bitvavo_trades",
            "fills",
            "executed_at",
            "account",
            needs_keys=True,
        ),
        Stream(
            "bitvavo_deposits",
            "transfers",
            "executed_at",
            "account",
            needs_keys=True,
        ),
        Stream(
            "bitvavo_withdrawals",
            "transfers",
            "executed_at",
            "account",
            needs_keys=True,
        ),
        Stream(  # local: the landed history classified and matched to the landed fills
            "bitvavo_history_derived",
            "bitvavo_history_matches",
            None,
            "account",
            needs_keys=False,
            also=("fills", "transfers", "other_events"),
        ),
    ),
    ledger=Ledger("bitvavo_history", "history"),
)

BITVAVO: Exchange[BitvavoClient] = Exchange(
    name="bitvavo",
    title="Bitvavo",
    checks=bitvavo_checks.CHECKS,
    classify=classify_bitvavo,
    ingestion=INGESTION,
    warehouse=bitvavo_warehouse.RULES,
)
