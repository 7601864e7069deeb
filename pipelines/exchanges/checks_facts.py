"""What the checks ask of an exchange, declared once per exchange (`ExchangeChecks`).

`pipelines.checks` (the checks before a sync, `tally doctor`, the behaviour probes) is written
once for every exchange; what differs between exchanges is declared here, as data and small
callables, and filled in by `bitstamp_checks` and `bitvavo_checks`: where a key's permissions
are changed, how the market list is read (the request is the ingestion's `market_list`) and
which request tells the time, how the clock is read
and how far off it may be, whether public requests are signed, whether the rate budget is a
weight, the signed reads an account sync makes (each with the cheapest request that proves the
key may make it), why a key's trade and withdraw rights cannot be read, and how a refused read
permission is put right.

Generic in the exchange's client class (`ClientT`): the checks hand the client its adapter made
back to the callables declared with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic

from pipelines.exchanges.client import ClientT

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.exchanges.records import MarketInfo, Transfer
    from pipelines.http import Limiter

PROBE_SPAN = timedelta(hours=1)  # the time window of a probing read: small, any answer will do
READ_PERMISSION_FIX = (
    "give the key the read permission for {call} ({where}), or contact the exchange"
)


@dataclass(frozen=True, slots=True)
class ReadCall(Generic[ClientT]):
    """One signed endpoint: its label (the client's endpoint name), the request a person
    recognises, and how to make it cheaply with a client, given the present and a market."""

    endpoint: str
    request: str
    call: Callable[[ClientT, datetime, str | None], object]
    needs_market: bool = False


@dataclass(frozen=True, slots=True)
class MarketList:
    """What the market list answered: the markets, and its HTTP `Date` header (epoch seconds,
    truncated to the second) when the exchange's clock is read from it."""

    markets: list[MarketInfo]
    date: float | None = None


@dataclass(frozen=True, slots=True)
class TimeEndpoint(Generic[ClientT]):
    """A request that tells the exchange's exact time, and how a public client makes it."""

    request: str  # "GET /v2/time"
    read: Callable[[ClientT], datetime]


ProbeBudget = Callable[["ExchangeSettings"], "Limiter"]
"""The checks' own limiter for a client made by the adapter's client factory: a check paces
itself in its process and leaves the syncs' shared budget file alone."""


@dataclass(frozen=True)
class ExchangeChecks(Generic[ClientT]):
    """Everything `pipelines.checks` needs to know of one exchange."""

    key_settings: str  # where a person changes a key's permissions: "Bitvavo: Settings → API"
    # make the request that lists the markets (`Ingestion.market_list`) with a public client
    list_markets: Callable[[ClientT], MarketList]
    # How far off the local clock may be for these settings, and the rule it comes from.
    clock_tolerance: Callable[[ExchangeSettings], tuple[float, str]]
    # Every signed read of the account sync; the first is the cheap one made before a sync.
    account_reads: tuple[ReadCall[ClientT], ...]
    # Why a key's trade/withdraw rights cannot be read, and how to check them by hand.
    trade_withdraw: tuple[str, str]
    probe_budget: ProbeBudget  # the limiter of the checks' clients (`ProbeBudget`)
    # None: the clock is read from the market list's `Date` header.
    time_endpoint: TimeEndpoint[ClientT] | None = None
    # Whether the client signs public requests when a key is configured (so that a key's
    # budget is used, not the IP's): its key matters for market data too.
    signs_public_requests: bool = False
    weighed: bool = False  # whether the budget is a weight, not a count of requests
    permission_fix: str = READ_PERMISSION_FIX  # formatted with `call` and `where`
    # The newest crypto deposits with their txids, in one cheap signed read: where a probe of
    # another exchange looks for the withdrawals that arrived here. None: not read.
    recent_deposits: Callable[[ClientT], list[Transfer]] | None = None
