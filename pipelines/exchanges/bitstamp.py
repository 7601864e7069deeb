"""Bitstamp API v2, read-only: signing, endpoints and paging rules.

Only the endpoints tally reads exist here; there is no code path for orders, cancels,
withdrawals, addresses or keys. Parsing lives in `bitstamp_parse`; this module decides what to
ask for and how to walk the pages (docs/exchanges.md):

- OHLC: when `end` is given `start` is ignored and the last `limit` candles with open time
  ≤ `end` come back, oldest first, sometimes one short: walk backwards by `end` only. Before a
  pair's listing [open]: nothing, the first candles after it, or zero-volume fillers.
- user_transactions: `since_id` (inclusive) ascending with limit 1000; advance past the page's
  largest id; a page with fewer than 1000 rows is the last.
- crypto-transactions: by offset, right whether `limit`/`offset` apply to each list or to the
  lists together (`all_crypto_transactions`).

Signing: a rejected nonce (`API0004`) or timestamp (`API0017`) is signed afresh and sent once
more; on `API0017` the clock offset is first measured from the response's HTTP `Date` header
and applied to every later `X-Auth-Timestamp`. A second rejection is fatal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pipelines.credentials import Credentials
from pipelines.exchanges import bitstamp_parse as parse
from pipelines.exchanges.bitstamp_walk import CryptoOffsets, LedgerSinceId, OhlcBackwards
from pipelines.exchanges.limits import (
    BITSTAMP_PACING,
    OHLC_LIMIT,
    PUBLIC_TRADE_WINDOWS,
    BitstampPacing,
)
from pipelines.exchanges.paging import Page, walk
from pipelines.exchanges.records import (
    BalanceSnapshot,
    Candle,
    FeeSchedule,
    FxRate,
    LedgerEntry,
    MarketInfo,
    OtherEvent,
    PublicTrade,
    Transfer,
    WithdrawalFee,
)
from pipelines.http import (
    DEFAULT_RETRY,
    AuthenticationError,
    Classifier,
    ClockSkewError,
    ExchangeError,
    HttpClient,
    Limiter,
    Reply,
    RequestBudget,
    RetryPolicy,
    SignInput,
    shared_limiter,
)

logger = logging.getLogger(__name__)

EXCHANGE = "bitstamp"
LEDGER_PAGE = 1000
CRYPTO_PAGE = 1000
NONCE_REJECTED = "API0004"  # invalid or reused nonce
CLOCK_REJECTED = "API0017"  # X-Auth-Timestamp outside the accepted window
STEPS: Mapping[str, int] = {interval: step for step, interval in parse.STEP_INTERVALS.items()}


def pair_symbol(market: str) -> str:
    """`BTC-EUR` → `btceur` (Bitstamp's URL spelling); `BTC-USD-PERP` → `btcusd-perp`."""
    base, quote, *suffix = market.lower().split("-")
    return "-".join([base + quote, *suffix])


def string_to_sign(key: str, request: SignInput, nonce: str, timestamp_ms: str) -> str:
    """The documented message: no separators, the query string without its `?`, the content
    type only when the body is non-empty."""
    query = request.query.removeprefix("?")
    return (
        f"BITSTAMP {key}{request.method}{request.host}{request.path}{query}"
        f"{request.content_type}{nonce}{timestamp_ms}v2{request.body}"
    )


class BitstampSigner:
    """Signs each attempt with a fresh lower-case UUID4 nonce and the current time in ms;
    `offset_ms` corrects our clock to the exchange's."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        new_nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._new_nonce = new_nonce
        self.offset_ms = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000) + self.offset_ms

    def measure_offset(self, server_time: float) -> int:
        """Set `offset_ms` from the server's clock (a `Date` header) read just now."""
        # `Date` is truncated to the second: the server's time was half a second later on average.
        self.offset_ms = round((server_time + 0.5 - self._clock()) * 1000)
        return self.offset_ms

    def __call__(self, request: SignInput) -> dict[str, str]:
        key = self._credentials.key.reveal()
        nonce = self._new_nonce()
        timestamp = str(self.now_ms())
        message = string_to_sign(key, request, nonce, timestamp)
        signature = hmac.new(
            self._credentials.secret.reveal().encode(), message.encode(), hashlib.sha256
        ).hexdigest()
        return {
            "X-Auth": f"BITSTAMP {key}",
            "X-Auth-Signature": signature,
            "X-Auth-Nonce": nonce,
            "X-Auth-Timestamp": timestamp,
            "X-Auth-Version": "v2",
        }

    def __repr__(self) -> str:
        return "BitstampSigner(<credentials hidden>)"


class BitstampClient:
    """Read-only Bitstamp client. `base_url` is e.g. `https://www.bitstamp.net`; `classify` is
    Bitstamp's error rules, as its adapter declares them (`BITSTAMP.classify`)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        classify: Classifier,
        account: str = "main",
        pacing: BitstampPacing = BITSTAMP_PACING,
        limiter: Limiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        clock: Callable[[], float] = time.time,
        new_nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.account = account
        self._credentials = credentials
        key_id = credentials.key_id if credentials else "public"
        self.limiter = limiter or shared_limiter(
            EXCHANGE,
            key_id,
            lambda: RequestBudget(*pacing),
        )
        self.http = HttpClient(
            EXCHANGE,
            base_url.rstrip("/"),
            classify=classify,
            limiter=self.limiter,
            retry=retry,
            timeout=timeout,
        )
        self._signer = (
            BitstampSigner(credentials, clock=clock, new_nonce=new_nonce) if credentials else None
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BitstampClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BitstampClient(account={self.account!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _get(
        self,
        path: str,
        endpoint: str,
        params: Mapping[str, object] | None = None,
        *,
        read: Callable[[bytes], object | None] | None = None,
    ) -> Any:
        return self.http.request("GET", path, endpoint=endpoint, params=params, read=read)

    def _post(self, path: str, endpoint: str, form: Mapping[str, object] | None = None) -> Reply:
        """A signed POST; a rejected nonce or timestamp is signed afresh and sent once more."""
        signer = self._signer
        if signer is None:
            raise PermissionError(f"bitstamp {endpoint}: no API credentials configured")
        try:
            return self.http.request("POST", path, endpoint=endpoint, form=form, signer=signer)
        except AuthenticationError as error:
            if error.code not in (NONCE_REJECTED, CLOCK_REJECTED):
                raise
            first = error
        server_time = first.server_time if isinstance(first, ClockSkewError) else None
        if server_time is not None:
            signer.measure_offset(server_time)
        logger.warning(
            "bitstamp %s: code %s; retrying once, freshly signed (clock offset %+.3f s)",
            endpoint,
            first.code,
            signer.offset_ms / 1000,
        )
        self.http.stats.record_retry(endpoint)
        try:
            return self.http.request("POST", path, endpoint=endpoint, form=form, signer=signer)
        except AuthenticationError as error:
            if error.code not in (NONCE_REJECTED, CLOCK_REJECTED):
                raise
            measured = server_time is not None
            raise _rejected_twice(error, signer.offset_ms, measured) from None

    # -- public market data --------------------------------------------------------------------

    def ohlc(
        self, market: str, interval: str, *, end: datetime, limit: int = OHLC_LIMIT
    ) -> Page[Candle]:
        """One OHLC page: the last `limit` closed candles whose open time is ≤ `end`."""
        step = _step(interval)
        params = {
            "step": step,
            "limit": limit,
            "end": int(end.timestamp()),
            "exclude_current_candle": "true",
        }
        reply = self.http.request(
            "GET",
            f"/api/v2/ohlc/{pair_symbol(market)}/",
            endpoint="ohlc",
            params=params,
            read=lambda body: parse.read_ohlc(body, step=step, market=market),
        )
        candles = reply.read_or(lambda data: parse.parse_ohlc(data, step=step, market=market))
        return Page(candles, "ohlc", params, reply.fetched_at)

    def ohlc_window(
        self, market: str, interval: str, start: datetime, end: datetime
    ) -> Iterator[Page[Candle]]:
        """Every candle with open time in [start, end), walking backwards by `end`
        (`OhlcBackwards`: newest window first, each page filtered to the window; a page of only
        candles after the asked `end` ends the walk once a probe shows it starts at the pair's
        first candle). Zero-volume fillers before a listing are rows like any other here; the
        candles flow recognises them."""
        step = _step(interval)
        yield from walk(
            lambda asked: self.ohlc(market, interval, end=asked.end, limit=asked.limit),
            OhlcBackwards(pair_symbol(market), step, start, end, OHLC_LIMIT),
            exchange=EXCHANGE,
            endpoint="ohlc",
        )

    def public_trades(self, market: str, *, window: str = "day") -> Page[PublicTrade]:
        """The rolling window of recent trades (no history exists beyond it)."""
        if window not in PUBLIC_TRADE_WINDOWS:
            raise ValueError(
                f"bitstamp transactions: window must be one of {list(PUBLIC_TRADE_WINDOWS)}"
            )
        params = {"time": window}
        reply = self._get(
            f"/api/v2/transactions/{pair_symbol(market)}/",
            "transactions",
            params,
            read=lambda body: parse.read_transactions(body, market=market),
        )
        trades = reply.read_or(lambda data: parse.parse_transactions(data, market=market))
        return Page(trades, "transactions", params, reply.fetched_at)

    def markets(self) -> list[MarketInfo]:
        return parse.parse_markets(self.markets_reply().data)

    def markets_reply(self) -> Reply:
        """The market list as received: its headers tell Bitstamp's clock (`Date`)."""
        return self._get("/api/v2/markets/", "markets")

    def eur_usd(self) -> FxRate:
        reply = self.eur_usd_reply()
        return parse.parse_eur_usd(reply.data, taken_at=reply.fetched_at)

    def eur_usd_reply(self) -> Reply:
        """`GET /api/v2/eur_usd/` as it came (its body's text too: how Bitstamp writes JSON)."""
        reply: Reply = self._get("/api/v2/eur_usd/", "eur_usd")
        return reply

    # -- account -------------------------------------------------------------------------------

    def user_transactions(self, *, since_id: int, limit: int = LEDGER_PAGE) -> Page[LedgerEntry]:
        """One ascending ledger page starting at id `since_id` (inclusive)."""
        form = {"since_id": since_id, "limit": limit, "sort": "asc"}
        reply = self._post("/api/v2/user_transactions/", "user_transactions", form)
        entries = parse.parse_user_transactions(reply.data, account=self.account)
        return Page(entries, "user_transactions", form, reply.fetched_at)

    def ledger_since(self, since_id: int = 1) -> Iterator[Page[LedgerEntry]]:
        """Every ledger row with id ≥ `since_id`, one page at a time, oldest first."""
        yield from walk(
            lambda cursor: self.user_transactions(since_id=cursor),
            LedgerSinceId(since_id, LEDGER_PAGE),
            exchange=EXCHANGE,
            endpoint="user_transactions",
        )

    def crypto_transactions(
        self, *, offset: int = 0, limit: int = CRYPTO_PAGE
    ) -> Page[Transfer | OtherEvent]:
        """One page; `received` counts the rows of all its lists together."""
        form = {"offset": offset, "limit": limit}
        reply = self._post("/api/v2/crypto-transactions/", "crypto_transactions", form)
        rows = parse.parse_crypto_transactions(reply.data, account=self.account)
        return Page(rows, "crypto_transactions", form, reply.fetched_at, _rows_in_lists(reply.data))

    def all_crypto_transactions(
        self, *, limit: int = CRYPTO_PAGE
    ) -> Iterator[Page[Transfer | OtherEvent]]:
        """Every crypto deposit, withdrawal and ripple IOU row, each once, by offset, whether
        `limit`/`offset` apply to each list or to the lists together (`CryptoOffsets`)."""
        yield from walk(
            lambda offset: self.crypto_transactions(offset=offset, limit=limit),
            CryptoOffsets(limit),
            exchange=EXCHANGE,
            endpoint="crypto_transactions",
        )

    def balances(self) -> list[BalanceSnapshot]:
        reply = self._post("/api/v2/account_balances/", "account_balances")
        return parse.parse_account_balances(
            reply.data, account=self.account, taken_at=reply.fetched_at
        )

    def trading_fees(self) -> list[FeeSchedule]:
        reply = self._post("/api/v2/fees/trading/", "fees_trading")
        return parse.parse_trading_fees(reply.data, account=self.account, taken_at=reply.fetched_at)

    def withdrawal_fees(self) -> list[WithdrawalFee]:
        reply = self._post("/api/v2/fees/withdrawal/", "fees_withdrawal")
        return parse.parse_withdrawal_fees(
            reply.data, account=self.account, taken_at=reply.fetched_at
        )


def _step(interval: str) -> int:
    try:
        return STEPS[interval]
    except KeyError:
        raise ValueError(
            f"bitstamp ohlc: no step for interval {interval!r}; one of {list(STEPS)}"
        ) from None


def _rows_in_lists(data: Any) -> int:
    if not isinstance(data, Mapping):
        return 0
    return sum(len(v) for v in data.values() if isinstance(v, list))


def _rejected_twice(error: AuthenticationError, offset_ms: int, measured: bool) -> ExchangeError:
    """The fatal error of a request whose fresh signature was rejected again."""
    if error.code == CLOCK_REJECTED:
        clock = (
            f"our clock corrected by {offset_ms / 1000:+.3f} s from the response's Date header"
            if measured
            else "no Date header to measure our clock's offset by"
        )
        advice = f"{clock}; check the system clock (NTP)"
    else:
        advice = "the exchange refused two fresh UUID4 nonces"
    message = f"{error}; rejected again after one retry with a fresh nonce and timestamp: {advice}"
    return type(error)(
        message,
        exchange=error.exchange,
        endpoint=error.endpoint,
        code=error.code,
        status=error.status,
    )
