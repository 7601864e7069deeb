"""Bitstamp, declared: the adapter the registry hands out for `exchange = "bitstamp"`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.exchanges import bitstamp_checks, bitstamp_warehouse
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitstamp_errors import classify_bitstamp
from pipelines.exchanges.ingestion import (
    CANDLES,
    PUBLIC_TRADES,
    Candles,
    ConfigSection,
    Connection,
    Ingestion,
    Ledger,
    Option,
    RollingTrades,
    Stream,
)
from pipelines.exchanges.limits import (
    BITSTAMP_PACING,
    OHLC_LIMIT,
    PUBLIC_TRADE_WINDOWS,
    BitstampPacing,
)
from pipelines.exchanges.values import BITSTAMP_INTERVALS

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.exchanges.bitstamp import BitstampClient
    from pipelines.http import BudgetPlace, Limiter


def _client(config: ExchangeSettings[BitstampPacing], how: Connection) -> BitstampClient:
    from pipelines.exchanges.bitstamp import BitstampClient

    return BitstampClient(
        config.base_url,
        how.credentials,
        classify=BITSTAMP.classify,
        pacing=config.options,
        **how.options(),
    )


def _budget(config: ExchangeSettings[BitstampPacing], where: BudgetPlace) -> Limiter:
    """Bitstamp sends no rate headers: processes count their requests in the shared file or row."""
    from pipelines.http import SharedRequestBudget, shared_limiter

    return shared_limiter(
        config.name,
        str(where),
        lambda: SharedRequestBudget(where, *config.options),
    )


def _symbol_kind(symbol: str) -> str:
    """`btcusd-perp` → "PERP": a symbol with a suffix is never a spot market."""
    from pipelines.exchanges.bitstamp_parse import market_suffix

    return market_suffix(symbol, None).removeprefix("-") or "SPOT"


_CONFIG = ConfigSection(
    base_url="https://www.bitstamp.net",
    # Every default market exists on its exchange (tests/test_sandbox_markets.py checks them
    # against the recorded market lists): Bitstamp lists GBP/EUR as `gbpeur`, not `eurgbp`.
    markets=("BTC-EUR", "BTC-USD", "ETH-EUR", "ETH-USD", "EUR-USD", "GBP-EUR"),
    markets_meaning="markets whose candles and public trades are synced (EUR-USD and GBP-EUR "
    "value USD and GBP)",
    intervals=BITSTAMP_INTERVALS,
    default_intervals=("1h", "1d"),
    options=(
        Option(
            "requests_per_window",
            int,
            BITSTAMP_PACING.requests_per_window,
            "requests at most per window (Bitstamp allows 10,000 per 10 minutes)",
            "a whole number, 1 or more",
            {"ge": 1},
        ),
        Option(
            "window_seconds",
            float,
            BITSTAMP_PACING.window_seconds,
            "the window of requests_per_window, in seconds",
            "a number greater than 0",
            {"gt": 0},
        ),
        Option(
            "max_requests_per_second",
            float,
            BITSTAMP_PACING.max_requests_per_second,
            "requests at most per second",
            "a number greater than 0",
            {"gt": 0},
        ),
    ),
    shape=BitstampPacing,
)

INGESTION: Ingestion[BitstampClient] = Ingestion(
    config=_CONFIG,
    client=_client,
    budget=_budget,
    market_list="GET /api/v2/markets/",
    symbol_kind=_symbol_kind,
    candles=Candles(
        walk=lambda client, market, interval, start, end: client.ohlc_window(
            market, interval, start, end
        ),
        fills_empty_intervals=True,
        page_limit=OHLC_LIMIT,
    ),
    public_trades=RollingTrades(
        poll=lambda client, market, window: client.public_trades(market, window=window),
        windows=PUBLIC_TRADE_WINDOWS,
        lost="Bitstamp serves public trades of the last 24 h only: the next sync fetches again "
        "only what is still inside that window",
    ),
    streams=(
        CANDLES,
        PUBLIC_TRADES,
        Stream(
            "bitstamp_ledger",
            "bitstamp_ledger",
            "entry_id",
            "account",
            needs_keys=True,
            also=("fills", "transfers", "other_events"),
        ),
        Stream(
            "bitstamp_crypto_transactions",
            "transfers",
            None,
            "account",
            needs_keys=True,
            also=("other_events",),
        ),
        Stream(
            "bitstamp_snapshots",
            "balance_snapshots",
            None,
            "account",
            needs_keys=True,
            also=("fee_schedules", "withdrawal_fees"),
        ),
    ),
    ledger=Ledger("bitstamp_ledger", "ledger"),
)

BITSTAMP: Exchange[BitstampClient] = Exchange(
    name="bitstamp",
    title="Bitstamp",
    checks=bitstamp_checks.CHECKS,
    classify=classify_bitstamp,
    ingestion=INGESTION,
    warehouse=bitstamp_warehouse.RULES,
)
