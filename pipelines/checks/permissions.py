"""The read calls tally's account sync makes, one cheap request each, and what a key may do.

`ACCOUNT_READS[exchange]` lists every signed endpoint the account sync of that exchange uses,
with the smallest request that proves the key may make it; the first is the cheap signed read
`tally sync` makes before work (the balances, which every account sync reads). Bitstamp grants
a permission per call (a missing one answers `API0003`), Bitvavo one View permission for every
read (a missing one answers errorCode 311), so each call gets its own row.

Whether a key can also trade or withdraw cannot be read without risk: neither exchange documents
an endpoint that lists a key's permissions (Bitstamp's API v2 and Bitvavo's API v2 references,
checked for this; Bitvavo's `GET /v2/account` tells fees, not the key's rights), and the only
other way to find out, calling a trading or withdrawal endpoint, is what tally never does (its
clients hold no such code path). So `trade_withdraw_row` is a warning with the fix, always.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipelines.checks import CheckRow

PROBE_SPAN = timedelta(hours=1)  # the time window of a probing read: small, any answer will do
# Where a person changes a key's permissions.
KEY_SETTINGS = {
    "bitstamp": "Bitstamp: Settings → API access",
    "bitvavo": "Bitvavo: Settings → API",
}
PUBLIC_READS = {
    "bitstamp": {"markets": "GET /api/v2/markets/"},
    "bitvavo": {"markets": "GET /v2/markets", "time": "GET /v2/time"},
}


@dataclass(frozen=True, slots=True)
class ReadCall:
    """One signed endpoint: its label (the client's endpoint name), the request a person
    recognises, and how to make it cheaply with a client, given the present and a market."""

    endpoint: str
    request: str
    call: Callable[[Any, datetime, str | None], object]
    needs_market: bool = False


def _first(pages: Iterator[object]) -> object:
    return next(pages, None)


ACCOUNT_READS: dict[str, tuple[ReadCall, ...]] = {
    "bitstamp": (
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
    "bitvavo": (
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
            lambda c, now, m: c.trades(m, start=now - PROBE_SPAN, end=now, limit=1),
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
            "account_fees", "GET /v2/account/fees", lambda c, now, m: c.fees(m), needs_market=True
        ),
    ),
}


def requests_by_endpoint(exchange: str) -> dict[str, str]:
    """Endpoint label → the request a person recognises, for error messages."""
    private = {read.endpoint: read.request for read in ACCOUNT_READS.get(exchange, ())}
    return {**PUBLIC_READS.get(exchange, {}), **private}


# Why a key's trade and withdraw rights cannot be told, per exchange (searched again for
# issue 12: neither exchange documents a read that returns a key's rights), and how to check.
TRADE_WITHDRAW = {
    "bitstamp": (
        "Bitstamp's API v2 has no endpoint that lists a key's permissions: a permission shows "
        "only when an endpoint that needs it is called (API0003 when it is missing)",
        "Bitstamp → Settings → API access → this key: tick only the read permissions (the "
        "permission rows above); leave every order (buy/sell, cancel) and withdrawal permission "
        "unticked",
    ),
    "bitvavo": (
        "Bitvavo's API has no endpoint that lists a key's rights (View, Trade, Withdraw): a "
        "right shows only when an endpoint that needs it is called (errorCode 311 without "
        "View); GET /v2/account lists `capabilities` (buy, sell, withdrawCrypto, …), but no "
        "document says they are this key's rights rather than the account's",
        "Bitvavo → Settings → API → this key: View on, Trade and Withdraw off",
    ),
}


def trade_withdraw_row(exchange: str) -> CheckRow:
    """The warning that a key's trade and withdraw rights cannot be read without risk: why, per
    exchange, and how to check them by hand."""
    why, by_hand = TRADE_WITHDRAW[exchange]
    return CheckRow(
        "trade/withdraw",
        exchange,
        "warn",
        f"cannot tell whether this key may trade or withdraw: there is no read-only way to "
        f"ask. {why}; the only other test is to call a trading or withdrawal endpoint, which "
        "tally never does",
        f"check by hand: {by_hand}. tally needs read permissions only, never trade or withdraw",
    )
