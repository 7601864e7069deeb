"""Bitvavo API v2, read-only: signing, endpoints and paging rules.

Only the endpoints tally reads exist here; there is no code path for orders, cancels,
withdrawals or keys. Parsing lives in `bitvavo_parse`. Paging (docs/exchanges.md):

- candles are end-anchored and newest first: ask for [start, cursor), move the cursor to the
  oldest candle returned; a page shorter than `limit` reaches `start`. Gaps mean no trades.
- trades (public and account), deposits and withdrawals page backwards by `end` = the oldest
  timestamp already seen + 1 ms, deduplicated on id: right whether `end` is inclusive or
  exclusive, and trades crowded into one millisecond page on by `tradeIdTo` (`bitvavo_walk`).
  A public trades request spans at most 24 h (a longer range is one walk of 24 h windows);
  account trades shrink their span when refused with errorCode 205 and keep the accepted span
  for the rest of the run.
- account/history is page-numbered; `toDate` is pinned for the whole walk so that new items do
  not shift the pages under us.

Every request is signed, public ones too, so that the weight budget is the key's (1000/min)
rather than the IP's, and a 304 (timestamp outside the access window) resynchronises the clock
with `GET /time` and retries once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Generic, TypeVar

from pipelines.credentials import Credentials
from pipelines.exchanges import bitvavo_parse as parse
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.bitvavo_walk import (
    CandlesBackwards,
    HistoryPages,
    PageColumns,
    TradeSpan,
    is_span_refusal,
    read_after,
    walk_backwards,
)
from pipelines.exchanges.frames import micros, values
from pipelines.exchanges.limits import (
    ACCESS_WINDOW_BOUNDS_MS,
    ACCESS_WINDOW_MS,
    CANDLE_LIMIT,
    MAX_TRADE_SPAN,
)
from pipelines.exchanges.paging import Page, walk
from pipelines.exchanges.records import (
    AssetInfo,
    BalanceSnapshot,
    BitvavoHistoryItem,
    Candle,
    FeeSchedule,
    Fill,
    MarketInfo,
    PublicTrade,
    Transfer,
)
from pipelines.exchanges.values import BITVAVO_INTERVALS, INTERVAL_SECONDS
from pipelines.http import (
    DEFAULT_RETRY,
    Classifier,
    ClockSkewError,
    HttpClient,
    InvalidRequestError,
    Limiter,
    Reply,
    RetryPolicy,
    SignInput,
    WeightBudget,
    shared_limiter,
)

EXCHANGE = "bitvavo"
TRADE_LIMIT = 1000
TRANSFER_LIMIT = 1000
HISTORY_PAGE = 100
INTERVALS = BITVAVO_INTERVALS

# Weights per endpoint (docs/exchanges.md).
WEIGHTS: Mapping[str, int] = {
    "time": 1,
    "markets": 1,
    "assets": 1,
    "candles": 1,
    "public_trades": 5,
    "trades": 5,
    "account_history": 1,
    "deposit_history": 5,
    "withdrawal_history": 5,
    "balance": 5,
    "account_fees": 1,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def signature(secret: str, timestamp_ms: str, method: str, path_with_query: str, body: str) -> str:
    """hex HMAC-SHA256 of `timestamp + METHOD + path_with_query + body` (path includes `/v2`)."""
    message = f"{timestamp_ms}{method}{path_with_query}{body}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class BitvavoSigner:
    """Signs each attempt; `offset_ms` corrects our clock to the exchange's."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        access_window_ms: int = ACCESS_WINDOW_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        low, high = ACCESS_WINDOW_BOUNDS_MS
        if not low <= access_window_ms <= high:
            raise ValueError(f"Bitvavo access window must be {low}–{high} ms")
        self._credentials = credentials
        self._window = str(access_window_ms)
        self._clock = clock
        self.offset_ms = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000) + self.offset_ms

    def __call__(self, request: SignInput) -> dict[str, str]:
        timestamp = str(self.now_ms())
        return {
            "Bitvavo-Access-Key": self._credentials.key.reveal(),
            "Bitvavo-Access-Timestamp": timestamp,
            "Bitvavo-Access-Signature": signature(
                self._credentials.secret.reveal(),
                timestamp,
                request.method,
                request.path + request.query,
                request.body,
            ),
            "Bitvavo-Access-Window": self._window,
        }

    def __repr__(self) -> str:
        return "BitvavoSigner(<credentials hidden>)"


class BitvavoClient:
    """Read-only Bitvavo client. `base_url` is e.g. `https://api.bitvavo.com/v2`; `classify` is
    Bitvavo's error rules, as its adapter declares them (`BITVAVO.classify`)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        classify: Classifier,
        account: str = "main",
        access_window_ms: int = ACCESS_WINDOW_MS,
        limiter: Limiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self._clock = clock
        key_id = credentials.key_id if credentials else "public"
        self.limiter = limiter or shared_limiter(
            EXCHANGE, key_id, lambda: WeightBudget(headers=WEIGHT_HEADERS)
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
            BitvavoSigner(credentials, access_window_ms=access_window_ms, clock=clock)
            if credentials
            else None
        )
        self.trade_span = TradeSpan(MAX_TRADE_SPAN)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BitvavoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BitvavoClient(account={self.account!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _get(
        self,
        path: str,
        endpoint: str,
        params: Mapping[str, object] | None = None,
        *,
        read: Callable[[bytes], object | None] | None = None,
    ) -> Reply:
        try:
            return self._send(path, endpoint, params, read=read)
        except ClockSkewError:
            if self._signer is None:
                raise
            self.sync_clock()
            return self._send(path, endpoint, params, read=read)

    def _send(
        self,
        path: str,
        endpoint: str,
        params: Mapping[str, object] | None,
        *,
        signed: bool = True,
        read: Callable[[bytes], object | None] | None = None,
    ) -> Reply:
        return self.http.request(
            "GET",
            path,
            endpoint=endpoint,
            params=params,
            weight=WEIGHTS[endpoint],
            signer=self._signer if signed else None,
            read=read,
        )

    def _private(
        self, path: str, endpoint: str, params: Mapping[str, object] | None = None
    ) -> Reply:
        if self._signer is None:
            raise PermissionError(f"bitvavo {endpoint}: no API credentials configured")
        return self._get(path, endpoint, params)

    def sync_clock(self) -> int:
        """Set the signer's offset from `GET /time`; returns the offset in ms. Asked unsigned:
        with the clock outside the access window a signed request is itself refused (304)."""
        before = self._clock()
        reply = self._send("/time", "time", None, signed=False)
        after = self._clock()
        server_ms = int(parse.parse_time(reply.data).timestamp() * 1000)
        if self._signer is not None:
            self._signer.offset_ms = server_ms - int((before + after) / 2 * 1000)
            return self._signer.offset_ms
        return 0

    # -- public market data --------------------------------------------------------------------

    def time(self) -> datetime:
        return parse.parse_time(self.time_reply().data)

    def time_reply(self) -> Reply:
        """`GET /time` as it came (its body's text too: how Bitvavo writes JSON)."""
        return self._get("/time", "time")

    def markets(self) -> list[MarketInfo]:
        return parse.parse_markets(self._get("/markets", "markets").data)

    def assets(self) -> list[AssetInfo]:
        return parse.parse_assets(self._get("/assets", "assets").data)

    def candles(
        self,
        market: str,
        interval: str,
        *,
        start: datetime,
        end: datetime,
        limit: int = CANDLE_LIMIT,
    ) -> Page[Candle]:
        """One page: up to `limit` newest candles with open time in [start, end)."""
        if interval not in INTERVALS:
            raise ValueError(f"bitvavo candles: interval must be one of {INTERVALS}")
        params = {"interval": interval, "limit": limit, "start": _ms(start), "end": _ms(end)}
        reply = self._get(
            f"/{market}/candles",
            "candles",
            params,
            read=lambda body: parse.read_candles(body, market=market, interval=interval),
        )
        candles = reply.read_or(
            lambda data: parse.parse_candles(data, market=market, interval=interval)
        )
        return Page(candles, "candles", params, reply.fetched_at)

    def candles_window(
        self, market: str, interval: str, start: datetime, end: datetime
    ) -> Iterator[Page[Candle]]:
        """Every candle with open time in [start, end), newest page first (`CandlesBackwards`:
        right whether `limit` counts rows or intervals)."""
        step = timedelta(seconds=INTERVAL_SECONDS[interval])
        yield from walk(
            lambda cursor: self.candles(market, interval, start=start, end=cursor),
            CandlesBackwards(start, end, interval=step, limit=CANDLE_LIMIT),
            exchange=EXCHANGE,
            endpoint="candles",
        )

    def public_trades(
        self,
        market: str,
        *,
        start: datetime,
        end: datetime,
        limit: int = TRADE_LIMIT,
        trade_id_to: str | None = None,
    ) -> Page[PublicTrade]:
        """One page: up to `limit` newest trades from `start` to `end` (whether `end` itself is
        included is not settled), before `trade_id_to` when given."""
        params = _trade_params(start, end, limit, trade_id_to)
        reply = self._get(
            f"/{market}/trades",
            "public_trades",
            params,
            read=lambda body: parse.read_public_trades(body, market=market),
        )
        trades = reply.read_or(lambda data: parse.parse_public_trades(data, market=market))
        return Page(trades, "public_trades", params, reply.fetched_at)

    def public_trades_window(
        self, market: str, start: datetime, end: datetime, *, limit: int = TRADE_LIMIT
    ) -> Iterator[Page[PublicTrade]]:
        """Every public trade with timestamp in [start, end) (at most 24 h), each once."""
        if end - start > MAX_TRADE_SPAN:
            raise ValueError(f"bitvavo public_trades: one window spans at most {MAX_TRADE_SPAN}")
        return _PUBLIC_TRADES.walk(self.public_trades, market, start, end, limit)

    def public_trades_range(
        self, market: str, start: datetime, end: datetime, *, limit: int = TRADE_LIMIT
    ) -> Iterator[Page[PublicTrade]]:
        """Every public trade with timestamp in [start, end), of any length, each once, newest
        page first: one backwards walk whose requests span at most 24 h each, so that pages run
        on across days. `trades_read_after(page)` tells what a page leaves read."""
        return _PUBLIC_TRADES.walk(
            self.public_trades, market, start, end, limit, span=MAX_TRADE_SPAN
        )

    # -- account -------------------------------------------------------------------------------

    def trades(
        self,
        market: str,
        *,
        start: datetime,
        end: datetime,
        limit: int = TRADE_LIMIT,
        trade_id_to: str | None = None,
    ) -> Page[Fill]:
        """One page of the account's fills in `market` from `start` to `end` (`end` itself
        perhaps included), newest first, before `trade_id_to` when given."""
        params = {"market": market, **_trade_params(start, end, limit, trade_id_to)}
        reply = self._private("/trades", "trades", params)
        return Page(
            parse.parse_trades(reply.data, account=self.account), "trades", params, reply.fetched_at
        )

    def trades_window(
        self, market: str, start: datetime, end: datetime, *, limit: int = TRADE_LIMIT
    ) -> Iterator[Page[Fill]]:
        """Every fill of the account in `market` with timestamp in [start, end), once.

        Whether one request may span more than 24 h is not settled: the window is walked whole
        until a request is refused with a 205 about its span, then in pieces of the span that
        `trade_span` learns (kept for the rest of the run). Oldest piece first; each piece's
        pages are read in full before they are yielded, so a refusal yields nothing twice.
        """
        piece_start = start
        while piece_start < end:
            piece_end = self.trade_span.piece_end(piece_start, end)
            try:
                pages = list(self._fills_walk(market, piece_start, piece_end, limit))
            except InvalidRequestError as error:
                if not is_span_refusal(error):
                    raise
                self.trade_span.refused(piece_end - piece_start, error)
                continue
            yield from pages
            piece_start = piece_end

    def _fills_walk(
        self, market: str, start: datetime, end: datetime, limit: int
    ) -> Iterator[Page[Fill]]:
        return _FILLS.walk(self.trades, market, start, end, limit)

    def account_history(
        self,
        *,
        from_date: datetime,
        to_date: datetime,
        page: int = 1,
        max_items: int = HISTORY_PAGE,
        kind: str | None = None,
    ) -> tuple[Page[BitvavoHistoryItem], int]:
        """One page of /account/history and the total number of pages; `kind` asks for the
        items of one `type` only ("buy", "withdrawal", …)."""
        params: dict[str, object] = {
            "fromDate": _ms(from_date),
            "toDate": _ms(to_date),
            "page": page,
            "maxItems": max_items,
        }
        if kind is not None:
            params["type"] = kind
        reply = self._private("/account/history", "account_history", params)
        parsed = parse.parse_account_history(reply.data, account=self.account)
        return Page(parsed.items, "account_history", params, reply.fetched_at), parsed.total_pages

    def account_history_window(
        self, start: datetime, end: datetime
    ) -> Iterator[Page[BitvavoHistoryItem]]:
        """Every history item in [start, end): the walk pins `toDate` so pages cannot shift."""
        yield from walk(
            lambda number: self.account_history(from_date=start, to_date=end, page=number),
            HistoryPages(),
            exchange=EXCHANGE,
            endpoint="account_history",
        )

    def deposit_history(self, *, start: datetime, end: datetime) -> Iterator[Page[Transfer]]:
        """Every deposit with timestamp in [start, end), paging backwards by `end`."""
        return self._transfers(
            "/depositHistory", "deposit_history", parse.parse_deposit_history, start, end
        )

    def withdrawal_history(self, *, start: datetime, end: datetime) -> Iterator[Page[Transfer]]:
        """Every withdrawal with timestamp in [start, end), paging backwards by `end`."""
        return self._transfers(
            "/withdrawalHistory", "withdrawal_history", parse.parse_withdrawal_history, start, end
        )

    def _transfers(
        self,
        path: str,
        endpoint: str,
        parser: Callable[..., list[Transfer]],
        start: datetime,
        end: datetime,
    ) -> Iterator[Page[Transfer]]:
        def fetch(s: datetime, e: datetime) -> Page[Transfer]:
            params = {"limit": TRANSFER_LIMIT, "start": _ms(s), "end": _ms(e)}
            reply = self._private(path, endpoint, params)
            return Page(
                parser(reply.data, account=self.account), endpoint, params, reply.fetched_at
            )

        return walk_backwards(
            lambda s, e, _: fetch(s, e),
            start,
            end,
            key=lambda t: t.transfer_id,
            moment=lambda t: t.executed_at,
            exchange=EXCHANGE,
            endpoint=endpoint,
            limit=TRANSFER_LIMIT,
        )

    def balance(self) -> list[BalanceSnapshot]:
        reply = self._private("/balance", "balance")
        return parse.parse_balance(reply.data, account=self.account, taken_at=reply.fetched_at)

    def fees(self, market: str) -> FeeSchedule:
        reply = self._private("/account/fees", "account_fees", {"market": market})
        return parse.parse_account_fees(
            reply.data, account=self.account, market=market, taken_at=reply.fetched_at
        )


T = TypeVar("T")


@dataclass(frozen=True)
class _Trades(Generic[T]):
    """How the backwards walk reads one kind of trade: its endpoint, the field of its id (sent
    as `tradeIdTo`; the key a row is seen once by, the walk being of one market) and of its
    time."""

    endpoint: str
    id_field: str
    time_field: str

    def walk(
        self,
        page: Callable[..., Page[T]],
        market: str,
        start: datetime,
        end: datetime,
        limit: int,
        *,
        span: timedelta | None = None,
    ) -> Iterator[Page[T]]:
        """Every trade of `market` in [start, end), once, newest page first; `page(market,
        start=, end=, limit=, trade_id_to=)` asks for one page, over at most `span` when
        given."""
        trade_id = attrgetter(self.id_field)
        return walk_backwards(
            lambda s, e, id_to: page(market, start=s, end=e, limit=limit, trade_id_to=id_to),
            start,
            end,
            key=trade_id,  # (one market)
            moment=attrgetter(self.time_field),
            trade_id=trade_id,
            exchange=EXCHANGE,
            endpoint=self.endpoint,
            limit=limit,
            columns=self.columns,
            span=span,
        )

    def columns(self, rows: Sequence[T]) -> PageColumns:
        """The walk's `PageColumns` of a page, from its columns when it has them (no record
        made)."""
        ids = values(rows, self.id_field)
        keys: list[Hashable] = list(ids)
        return PageColumns(keys, micros(rows, self.time_field), ids)


_PUBLIC_TRADES: _Trades[PublicTrade] = _Trades("public_trades", "trade_id", "traded_at")


def trades_read_after(page: Page[PublicTrade]) -> datetime | None:
    """Once `page` of a public trades walk is yielded, every trade of the walk later than this
    has been yielded; None when the page does not tell (`bitvavo_walk.read_after`)."""
    return read_after(page, _PUBLIC_TRADES.time_field)


_FILLS: _Trades[Fill] = _Trades("trades", "fill_id", "executed_at")


def _trade_params(
    start: datetime, end: datetime, limit: int, trade_id_to: str | None
) -> dict[str, object]:
    params: dict[str, object] = {"limit": limit, "start": _ms(start), "end": _ms(end)}
    if trade_id_to is not None:
        params["tradeIdTo"] = trade_id_to
    return params


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware times")
    return (moment - _EPOCH) // timedelta(milliseconds=1)
