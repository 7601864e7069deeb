"""Bitstamp, as the checks ask it (`ExchangeChecks`, see `checks_facts`).

Bitstamp grants a permission per call (a missing one answers `API0003`), so each account read
is a permission of its own; it has no time endpoint, so its clock is read from the `Date` header
of the market list (whole seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.exchanges.checks_facts import ExchangeChecks, MarketList, ReadCall

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.exchanges.bitstamp import BitstampClient
    from pipelines.exchanges.limits import BitstampPacing
    from pipelines.exchanges.records import Transfer
    from pipelines.http import Limiter

TOLERANCE_S = 150.0  # X-Auth-Timestamp / nonce validity


def _tolerance(config: ExchangeSettings) -> tuple[float, str]:
    return TOLERANCE_S, f"Bitstamp accepts a timestamp within {TOLERANCE_S:g} s"


def _list_markets(client: BitstampClient) -> MarketList:
    from pipelines.exchanges import bitstamp_parse
    from pipelines.http import date_header

    reply = client.markets_reply()
    markets = bitstamp_parse.parse_markets(reply.data)
    return MarketList(markets, date_header(reply.headers))


def _recent_deposits(client: BitstampClient) -> list[Transfer]:
    """The deposits with a txid on the newest page of crypto-transactions."""
    from pipelines.exchanges.bitstamp import CRYPTO_PAGE
    from pipelines.exchanges.records import Transfer

    page = client.crypto_transactions(offset=0, limit=CRYPTO_PAGE)
    return [
        row
        for row in page.records
        if isinstance(row, Transfer) and row.kind == "deposit" and row.txid
    ]


def _probe_budget(config: ExchangeSettings[BitstampPacing]) -> Limiter:
    from pipelines.http import RequestBudget

    return RequestBudget(*config.options)


CHECKS: ExchangeChecks[BitstampClient] = ExchangeChecks(
    key_settings="Bitstamp: Settings → API access",
    list_markets=_list_markets,
    clock_tolerance=_tolerance,
    account_reads=(
        ReadCall(
            "account_balances", "POST /api/v2/account_balances/", lambda c, now, m: c.balances()
        ),
        ReadCall(
            "user_transactions",
            "POST /api/v2/user_transactions/",
            lambda c, now, m: c.user_transactions(since_id=1, limit=1),
        ),
        ReadCall(
            "crypto_transactions",
            "POST /api/v2/crypto-transactions/",
            lambda c, now, m: c.crypto_transactions(offset=0, limit=1),
        ),
        ReadCall("fees_trading", "POST /api/v2/fees/trading/", lambda c, now, m: c.trading_fees()),
        ReadCall(
            "fees_withdrawal",
            "POST /api/v2/fees/withdrawal/",
            lambda c, now, m: c.withdrawal_fees(),
        ),
    ),
    # Searched again for issue 12: Bitstamp documents no read that returns a key's rights.
    trade_withdraw=(
        "Bitstamp's API v2 has no endpoint that lists a key's permissions: a permission shows "
        "only when an endpoint that needs it is called (API0003 when it is missing)",
        "Bitstamp → Settings → API access → this key: tick only the read permissions (the "
        "permission rows above); leave every order (buy/sell, cancel) and withdrawal permission "
        "unticked",
    ),
    probe_budget=_probe_budget,
    permission_fix="tick the permission for {call} for this key ({where})",
    recent_deposits=_recent_deposits,
)
