"""The read calls tally's account sync makes, one cheap request each, and what a key may do.

`ExchangeChecks.account_reads` (declared by the exchange's adapter) lists every signed endpoint
the account sync of that exchange uses, with the smallest request that proves the key may make
it; the first is the cheap signed read `tally sync` makes before work (the balances, which every
account sync reads). Bitstamp grants
a permission per call (a missing one answers `API0003`), Bitvavo one View permission for every
read (a missing one answers errorCode 311), so each call gets its own row.

Whether a key can also trade or withdraw cannot be read without risk: neither exchange documents
an endpoint that lists a key's permissions (Bitstamp's API v2 and Bitvavo's API v2 references,
checked for this; Bitvavo's `GET /v2/account` tells fees, not the key's rights), and the only
other way to find out, calling a trading or withdrawal endpoint, is what tally never does (its
clients hold no such code path). So `trade_withdraw_row` is a warning with the fix, always
(why, and how to check by hand, per exchange: `ExchangeChecks.trade_withdraw`).
"""

from __future__ import annotations

from pipelines.checks import CheckRow
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.registry import EXCHANGES, get


def public_reads(adapter: Exchange) -> dict[str, str]:
    """Endpoint label → request, of the public reads the checks make: the market list, and the
    time when the exchange tells it."""
    reads = {"markets": adapter.ingestion.market_list}
    if adapter.checks.time_endpoint is not None:
        reads["time"] = adapter.checks.time_endpoint.request
    return reads


def requests_by_endpoint(exchange: str) -> dict[str, str]:
    """Endpoint label → the request a person recognises, for error messages (none for an
    exchange no adapter declares)."""
    adapter = EXCHANGES.get(exchange)
    if adapter is None:
        return {}
    private = {read.endpoint: read.request for read in adapter.checks.account_reads}
    return {**public_reads(adapter), **private}


def trade_withdraw_row(exchange: str) -> CheckRow:
    """The warning that a key's trade and withdraw rights cannot be read without risk: why, per
    exchange, and how to check them by hand."""
    why, by_hand = get(exchange).checks.trade_withdraw
    return CheckRow(
        "trade/withdraw",
        exchange,
        "warn",
        f"cannot tell whether this key may trade or withdraw: there is no read-only way to "
        f"ask. {why}; the only other test is to call a trading or withdrawal endpoint, which "
        "tally never does",
        f"check by hand: {by_hand}. tally needs read permissions only, never trade or withdraw",
    )
