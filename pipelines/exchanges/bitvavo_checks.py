"""Bitvavo, as the checks ask it (`ExchangeChecks`, see `checks_facts`).

Bitvavo grants one View permission for every read (a missing one answers errorCode 311); it
tells its time at `GET /v2/time` (milliseconds) and accepts a signed request within its access
window; its budget is a weight, and its client signs public requests too when a key is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipelines.exchanges.checks_facts import (
    PROBE_SPAN,
    ExchangeChecks,
    MarketList,
    ReadCall,
    TimeEndpoint,
)

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.exchanges.bitvavo import BitvavoClient
    from pipelines.exchanges.limits import BitvavoOptions
    from pipelines.http import Limiter


def _tolerance(config: ExchangeSettings[BitvavoOptions]) -> tuple[float, str]:
    window = config.options.access_window_ms / 1000
    return window, f"Bitvavo accepts a request within its {window:g} s access window"


def _list_markets(client: BitvavoClient) -> MarketList:
    return MarketList(client.markets())


def _probe_budget(config: ExchangeSettings) -> Limiter:
    from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
    from pipelines.http import WeightBudget

    return WeightBudget(headers=WEIGHT_HEADERS)


def _first(pages: Iterator[object]) -> object:
    return next(pages, None)


def _given(market: str | None) -> str:
    """The market of a read declared `needs_market` (the checks always give one)."""
    assert market is not None, "a read that needs a market was given none"
    return market


CHECKS: ExchangeChecks[BitvavoClient] = ExchangeChecks(
    key_settings="Bitvavo: Settings → API",
    list_markets=_list_markets,
    clock_tolerance=_tolerance,
    account_reads=(
        ReadCall("balance", "GET /v2/balance", lambda c, now, m: c.balance()),
        ReadCall(
            "account_history",
            "GET /v2/account/history",
            lambda c, now, m: c.account_history(
                from_date=now - PROBE_SPAN, to_date=now, page=1, max_items=1
            ),
        ),
        ReadCall(
            "trades",
            "GET /v2/trades",
            lambda c, now, m: c.trades(_given(m), start=now - PROBE_SPAN, end=now, limit=1),
            needs_market=True,
        ),
        ReadCall(
            "deposit_history",
            "GET /v2/depositHistory",
            lambda c, now, m: _first(iter(c.deposit_history(start=now - PROBE_SPAN, end=now))),
        ),
        ReadCall(
            "withdrawal_history",
            "GET /v2/withdrawalHistory",
            lambda c, now, m: _first(iter(c.withdrawal_history(start=now - PROBE_SPAN, end=now))),
        ),
        ReadCall(
            "account_fees",
            "GET /v2/account/fees",
            lambda c, now, m: c.fees(_given(m)),
            needs_market=True,
        ),
    ),
    # Searched again for issue 12: Bitvavo documents no read that returns a key's rights.
    trade_withdraw=(
        "Bitvavo's API has no endpoint that lists a key's rights (View, Trade, Withdraw): a "
        "right shows only when an endpoint that needs it is called (errorCode 311 without "
        "View); GET /v2/account lists `capabilities` (buy, sell, withdrawCrypto, …), but no "
        "document says they are this key's rights rather than the account's",
        "Bitvavo → Settings → API → this key: View on, Trade and Withdraw off",
    ),
    probe_budget=_probe_budget,
    time_endpoint=TimeEndpoint("GET /v2/time", lambda c: c.time()),
    signs_public_requests=True,
    weighed=True,
)
