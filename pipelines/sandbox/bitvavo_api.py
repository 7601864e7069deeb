"""The Bitvavo API v2 emulator: public market data and the private account, over a `World`.

Paths, parameters, row shapes, weights, paging rules and error bodies follow docs/exchanges.md
("Bitvavo"). Unknown query parameters are refused with errorCode 204. Quirks (when on): a candles
request whose `start` and `end` are both aligned on the interval and exactly `limit` intervals
apart also returns the candle that opens at `end` (limit + 1 rows), and `/markets` sends its
integer fields as strings. A market the world lists late has no candle before its listing (no
empty candles); `bitvavo-candles-settle` serves the newest candles unsettled (`settle.py`).

Variants (`variants.py`): `bitvavo-trades-span=24h` makes account `/v2/trades` refuse a
`start`–`end` span over 24 h with errorCode 205, as public trades always do;
`bitvavo-trades-end=exclusive` makes public and account trades leave out the trades at exactly
`end` (default: included), `bitvavo-trades-start=exclusive` those at exactly `start`;
`bitvavo-history-amounts` shows `/account/history`'s order-book
amounts exactly, rounded or with the fee inside (`bitvavo_account.py`);
`bitvavo-error-text=documented` words every errorCode 205 as the errors page documents it
("Invalid parameter: market") instead of as real logs show it ("market parameter is invalid.").
"""

from __future__ import annotations

import calendar
import functools
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.sandbox.app import Admission, AppSetup, ExchangeApp, Outcome
from pipelines.sandbox.auth import BitvavoVerifier
from pipelines.sandbox.faults import Fault
from pipelines.sandbox.params import all_or_one, bounded_int
from pipelines.sandbox.permissions import bitvavo_refusal
from pipelines.sandbox.ratelimit import WeightLimiter
from pipelines.sandbox.reference import FIAT, asset_name
from pipelines.sandbox.routing import ApiError, Reply, Request, Route, html_page, route
from pipelines.sandbox.settle import unsettled
from pipelines.sandbox.tape import MarketLike, latest_trades_until, traded_bars, trades_until
from pipelines.sandbox.wire import Raw, number_text

EXCHANGE = "bitvavo"
INTERVALS_S = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}
CANDLES_MAX_LIMIT = 1440
TRADES_DEFAULT_LIMIT = 500
TRADES_MAX_LIMIT = 1000
TRADES_MAX_SPAN_MS = 86_400_000
SPAN_TEXT = "end parameter is invalid: end - start exceeds 24 hours."
HISTORY_MAX_ITEMS = 100
TRANSFERS_DEFAULT_LIMIT = 500
TRANSFERS_MAX_LIMIT = 1000
BAN_TEXT = (
    "Your IP or API key has been banned for not respecting the rate limit. "
    "The ban expires at {until}."
)
RATE_LIMIT_TEXT = (
    "You have been rate limited. Please observe the Bitvavo-Ratelimit-Remaining header."
)
_M = r"(?P<market>[A-Za-z0-9]+-[A-Za-z0-9]+)"
_PARAMETER_INVALID = re.compile(r"^(\w+) parameter is invalid\b")


def error(code: int, text: str, status: int = 400) -> Reply:
    return Reply(status, {"errorCode": code, "error": text})


def plain(value: Decimal) -> str:
    """Bitvavo's number text: no trailing zeros, no exponent (`Decimal("10147.00")` → "10147")."""
    text = number_text(value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# `plain` of the tape's prices (candles, public trades), remembered: prices sit on the market's
# tick and repeat from row to row (amounts and volumes hardly repeat: they are written afresh,
# and do not push the prices out). Text that the value alone fixes (trailing zeros stripped);
# the tape never holds the one exception, -0, whose text its equal 0 does not fix.
_tape_text = functools.lru_cache(maxsize=1 << 16)(plain)


class BitvavoApp(ExchangeApp):
    exchange = EXCHANGE

    def __init__(self, setup: AppSetup) -> None:
        super().__init__(setup)
        self.limiter = WeightLimiter(setup.limits, setup.clock)
        self.verifier = BitvavoVerifier(setup.keys, setup.clock)
        self._history_cache: (
            tuple[Any, tuple[Any, ...], list[tuple[int, dict[str, Any]]]] | None
        ) = None
        self._history_lock = threading.Lock()
        v2 = "/v2"
        self.routes: tuple[Route, ...] = (
            route("time", "GET", rf"{v2}/time", self._time, faultable=False),
            route("markets", "GET", rf"{v2}/markets", self._markets),
            route("assets", "GET", rf"{v2}/assets", self._assets),
            route("account/history", "GET", rf"{v2}/account/history", self._history, private=True),
            route("account/fees", "GET", rf"{v2}/account/fees", self._fees, private=True),
            route("account", "GET", rf"{v2}/account", self._account, private=True),
            route("trades", "GET", rf"{v2}/trades", self._account_trades, weight=5, private=True),
            route(
                "depositHistory",
                "GET",
                rf"{v2}/depositHistory",
                self._deposits,
                weight=5,
                private=True,
            ),
            route(
                "withdrawalHistory",
                "GET",
                rf"{v2}/withdrawalHistory",
                self._withdrawals,
                weight=5,
                private=True,
            ),
            route("balance", "GET", rf"{v2}/balance", self._balance, weight=5, private=True),
            route("{market}/candles", "GET", rf"{v2}/{_M}/candles", self._candles),
            route("{market}/trades", "GET", rf"{v2}/{_M}/trades", self._public_trades, weight=5),
        )

    # --- pipeline hooks ------------------------------------------------------------------

    def handle(self, request: Request) -> Outcome:
        outcome = super().handle(request)
        if self.variants.bitvavo_error_text == "documented" and outcome.reply is not None:
            _documented_text(outcome.reply)
        return outcome

    def admit(self, request: Request, route: Route | None) -> Admission:
        key = self.verifier.presented_key(request.headers)
        authenticated = self.verifier.is_known_key(key)
        identity = "key" if authenticated else f"ip:{request.client_ip}"
        decision = self.limiter.charge(
            identity, route.weight if route else 1, authenticated=authenticated
        )
        headers = decision.headers()
        if decision.outcome == "ok":
            return Admission(None, headers)
        if decision.outcome == "exceeded":
            self.stats.rate_limited(ban_started=True)
            return Admission(error(110, RATE_LIMIT_TEXT, 429), headers)
        self.stats.banned_request()
        return Admission(error(105, BAN_TEXT.format(until=decision.ban_until_ms), 403), headers)

    def authenticate(self, request: Request, route: Route) -> Reply | None:
        failure = self.verifier.verify(
            method=request.method,
            target=request.target,
            headers=request.headers,
            body=request.body,
            required=route.private,
        )
        if failure is None and route.private:
            failure = bitvavo_refusal(self.setup.missing_permissions)
        return self.refused(failure)

    def fault_reply(self, fault: Fault) -> Reply:
        if fault.kind == "rate_limited":
            return error(110, RATE_LIMIT_TEXT, 429)
        if fault.kind == "server_error":
            pick = fault.variant % 3
            if pick == 0:
                return error(101, "Unknown error. Operation may or may not have succeeded.", 500)
            if pick == 1:
                return html_page(502, "Bad Gateway")
            return html_page(503, "Service Temporarily Unavailable")
        pick = fault.variant % 3  # error_body
        if pick == 0:
            return error(
                107, "The matching engine is overloaded. Please wait 500ms and resubmit.", 503
            )
        if pick == 1:
            return error(108, "The matching engine could not process your request in time.", 500)
        return error(
            109,
            "The matching engine did not respond in time. Operation may or may not have succeeded.",
            504,
        )

    def not_found(self, request: Request) -> Reply:
        return error(404, "Not found.", 404)

    def method_not_allowed(self, request: Request) -> Reply:
        return error(405, f"Method {request.method} is not allowed for this endpoint.", 405)

    def internal_error(self) -> Reply:
        return error(101, "Unknown error. Operation may or may not have succeeded.", 500)

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def _params(request: Request, allowed: Collection[str]) -> dict[str, str]:
        params = request.params
        for name in params:
            if name not in allowed:
                raise ApiError(error(204, f"{name} parameter is not supported."))
        return params

    @staticmethod
    def _int(
        params: Mapping[str, str], name: str, default: int | None, low: int, high: int
    ) -> int | None:
        return bounded_int(params, name, default, low, high, lambda: _invalid(name))

    def _limit_start_end(
        self, params: Mapping[str, str], default_limit: int, max_limit: int
    ) -> tuple[int, int | None, int | None]:
        """`limit` (1 to `max_limit`), `start` and `end` (epoch ms), checked in that order."""
        limit = self._int(params, "limit", default_limit, 1, max_limit)
        start = self._int(params, "start", None, 0, 2**53)
        end = self._int(params, "end", None, 0, 2**53)
        assert limit is not None
        return limit, start, end

    @staticmethod
    def _trades_span(start: int | None, end: int | None, now: int) -> tuple[int, int]:
        """The `[lower, upper]` ms a trades request covers: `end` (or now) back to `start` (or
        24 h before); an `end` before `start`, or a span over 24 h, is refused."""
        upper = now if end is None else min(end, now)
        if end is not None and start is not None and end < start:
            raise ApiError(_invalid("end"))
        lower = upper - TRADES_MAX_SPAN_MS if start is None else start
        if upper - lower > TRADES_MAX_SPAN_MS:
            raise ApiError(error(205, SPAN_TEXT))
        return lower, upper

    def _market(self, symbol: str) -> MarketLike:
        return self.listed_market(symbol, lambda: _invalid("market"))

    def _known_market(self, symbol: str) -> bool:
        """Listed here, or traded by the account (a delisted market's fills are still served)."""
        listed_here = (EXCHANGE, symbol) in self.world.markets
        return listed_here or symbol in self.world.bitvavo.markets_traded

    def _now(self) -> int:
        return int(self.world.now_ms())

    def _end_stop(self, end: int) -> int:
        """The first millisecond a trades request with this `end` leaves out."""
        return end if self.variants.bitvavo_trades_end == "exclusive" else end + 1

    def _start_from(self, start: int) -> int:
        """The first millisecond a trades request with this `start` takes in."""
        return start + 1 if self.variants.bitvavo_trades_start == "exclusive" else start

    # --- public endpoints ----------------------------------------------------------------

    def _time(self, request: Request, path: Mapping[str, str]) -> Reply:
        self._params(request, ())
        now_ns = time.time_ns() if self.clock is time.time else int(self.clock() * 1e9)
        return Reply(200, {"time": now_ns // 1_000_000, "timeNs": now_ns})

    def _markets(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(request, ("market",))
        rows = [self._market_row(m) for m in self.own_markets()]
        return all_or_one(
            rows, params.get("market"), _field_is("market"), lambda: _invalid("market")
        )

    def _market_row(self, market: MarketLike) -> dict[str, Any]:
        def integer(value: int) -> int | str:
            return str(value) if self.quirks else value

        tick = Decimal(1).scaleb(-market.price_decimals)
        return {
            "market": market.symbol,
            "status": "trading",
            "base": market.base,
            "quote": market.quote,
            "pricePrecision": integer(5),
            "minOrderInBaseAsset": "0.0001",
            "minOrderInQuoteAsset": "5",
            "maxOrderInBaseAsset": "1000000000",
            "maxOrderInQuoteAsset": "1000000000",
            "quantityDecimals": integer(market.amount_decimals),
            "notionalDecimals": integer(2),
            "tickSize": number_text(tick),
            "maxOpenOrders": 100,
            "feeCategory": "A",
            "orderTypes": [
                "market",
                "limit",
                "stopLoss",
                "stopLossLimit",
                "takeProfit",
                "takeProfitLimit",
            ],
        }

    def _assets(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(request, ("symbol",))
        symbols: set[str] = set()
        for market in self.own_markets():
            symbols.update((market.base, market.quote))
        rows = [self._asset_row(symbol) for symbol in sorted(symbols)]
        return all_or_one(
            rows, params.get("symbol"), _field_is("symbol"), lambda: _invalid("symbol")
        )

    @staticmethod
    def _asset_row(symbol: str) -> dict[str, Any]:
        fiat = symbol in FIAT
        return {
            "symbol": symbol,
            "name": asset_name(symbol),
            "decimals": 2 if fiat else 8,
            "depositFee": "0",
            "depositConfirmations": 0 if fiat else 10,
            "depositStatus": "OK",
            "withdrawalFee": "0" if fiat else "0.0001",
            "withdrawalMinAmount": "0" if fiat else "0.001",
            "withdrawalStatus": "OK",
            "networks": ["SEPA"] if fiat else ["Mainnet"],
            "message": "",
        }

    def _candles(self, request: Request, path: Mapping[str, str]) -> Reply:
        market = self._market(path["market"])
        params = self._params(request, ("interval", "limit", "start", "end"))
        interval_text = params.get("interval")
        if interval_text is None:
            raise ApiError(error(203, "interval parameter is required."))
        if interval_text not in INTERVALS_S:
            raise ApiError(_invalid("interval"))
        limit, start, end = self._limit_start_end(params, CANDLES_MAX_LIMIT, CANDLES_MAX_LIMIT)
        if start is not None and end is not None and end < start:
            raise ApiError(_invalid("end"))
        now = self._now()
        interval_ms = INTERVALS_S[interval_text] * 1000
        upper = now + 1 if end is None else min(end, now + 1)
        lower = 0 if start is None else start
        if (
            self.quirks
            and start is not None
            and end is not None
            and start % interval_ms == 0
            and end % interval_ms == 0
            and end - start == limit * interval_ms
        ):
            # the one case where the candle opening at `end` comes back too: limit + 1 rows
            upper = min(end + 1, now + 1)
            keep = limit + 1
        else:
            keep = limit
        # the newest `keep` intervals before `upper` (a gap is a missing row, not a later one)
        newest_open = (upper - 1) // interval_ms * interval_ms
        genesis_open = market.genesis_ms // interval_ms * interval_ms
        lower = max(lower, newest_open - (keep - 1) * interval_ms, genesis_open)
        bars = traded_bars(market, interval_ms, lower, upper, now)[-keep:]
        settle_minutes = self.variants.bitvavo_candles_settle
        if settle_minutes:  # the newest candles not yet settled (variants.py)
            bars = unsettled(
                market,
                interval_text,
                interval_ms,
                bars,
                now_ms=now,
                settle_ms=settle_minutes * 60_000,
                seed=getattr(self.world, "seed", 0),
            )
        text = _tape_text
        rows = ",".join(
            f'[{bar.open_ms},"{text(bar.open)}","{text(bar.high)}","{text(bar.low)}",'
            f'"{text(bar.close)}","{plain(bar.volume)}"]'
            for bar in reversed(bars)
        )
        return Reply(200, Raw(f"[{rows}]"), rows_path=())

    def _public_trades(self, request: Request, path: Mapping[str, str]) -> Reply:
        market = self._market(path["market"])
        params = self._params(request, ("limit", "start", "end", "tradeIdFrom", "tradeIdTo"))
        limit, start, end = self._limit_start_end(params, TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT)
        now = self._now()
        lower, upper = self._trades_span(start, end, now)
        lower = lower if start is None else self._start_from(start)
        stop = upper + 1 if end is None or end > now else self._end_stop(end)
        id_from, id_to = params.get("tradeIdFrom"), params.get("tradeIdTo")
        if id_from is None and id_to is None:
            newest = latest_trades_until(market, lower, stop, now, limit)
            chosen = [(t, market.trade_uuid(t)) for t in newest]
        else:
            trades = trades_until(market, lower, stop, now)
            ids = [market.trade_uuid(t) for t in trades]
            first, last = _id_bounds(ids, id_from, id_to)
            chosen = list(zip(trades[first:last], ids[first:last], strict=True))
            chosen.reverse()
        # the rows as `dumps` writes them, in one pass (no value here needs escaping)
        text = _tape_text
        rows = ",".join(
            f'{{"id":"{trade_id}","timestamp":{t.ts_ms},"amount":"{plain(t.amount)}",'
            f'"price":"{text(t.price)}","side":"{t.side}"}}'
            for t, trade_id in chosen[:limit]
        )
        return Reply(200, Raw(f"[{rows}]"), rows_path=())

    # --- private endpoints ---------------------------------------------------------------

    def _account_trades(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(
            request, ("market", "limit", "start", "end", "tradeIdFrom", "tradeIdTo")
        )
        market = params.get("market")
        if market is None:
            raise ApiError(error(203, "market parameter is required."))
        account = self.world.bitvavo
        if not self._known_market(market):
            raise ApiError(_invalid("market"))
        limit, start, end = self._limit_start_end(params, TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT)
        now = self._now()
        if self.variants.bitvavo_trades_span == "24h":  # mirrors public trades
            start, _ = self._trades_span(start, end, now)
        stop = None if end is None else self._end_stop(end)
        rows = [
            row
            for row in account.trades(market, now)
            if (start is None or int(row["timestamp"]) >= self._start_from(start))
            and (stop is None or int(row["timestamp"]) < stop)
        ]
        ascending = rows[::-1]
        ids = [str(row["id"]) for row in ascending]
        first, last = _id_bounds(ids, params.get("tradeIdFrom"), params.get("tradeIdTo"))
        page = ascending[first:last][::-1][:limit]
        return Reply(200, page, rows_path=())

    def _history(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(request, ("fromDate", "toDate", "page", "maxItems", "type"))
        page = self._int(params, "page", 1, 1, 2**31)
        max_items = self._int(params, "maxItems", HISTORY_MAX_ITEMS, 1, HISTORY_MAX_ITEMS)
        from_ms = self._int(params, "fromDate", None, 0, 2**53)
        to_ms = self._int(params, "toDate", None, 0, 2**53)
        assert page is not None and max_items is not None
        kind = params.get("type")
        timed = [
            (ms, item)
            for ms, item in self._timed_history()
            if (from_ms is None or ms >= from_ms)
            and (to_ms is None or ms <= to_ms)
            and (kind is None or item.get("type") == kind)
        ]
        total_pages = -(-len(timed) // max_items)
        chunk = timed[(page - 1) * max_items : page * max_items]
        payload = {
            "items": [item for _, item in chunk],
            "currentPage": page,
            "totalPages": total_pages,
            "maxItems": max_items,
        }
        return Reply(200, payload, rows_path=("items",))

    def _timed_history(self) -> list[tuple[int, dict[str, Any]]]:
        """(executed ms, item) for the whole history as of now, newest first (stable), kept
        while now and the variants stay the same: a client pages through it one request at a
        time, and the items are only read."""
        account = self.world.bitvavo
        now = self._now()
        ids = self.variants.bitvavo_history_ids
        gross = self.variants.bitvavo_withdrawal_amount == "gross"
        amounts = self.variants.bitvavo_history_amounts
        key = (now, ids, gross, amounts)
        with self._history_lock:
            cached = self._history_cache
            if cached is not None and cached[0] is account and cached[1] == key:
                return cached[2]
            items = account.history(now, ids=ids, fee_in_amount=gross, amounts=amounts)
            timed = [(_iso_ms(item["executedAt"]), item) for item in items]
            timed.sort(key=lambda pair: pair[0], reverse=True)  # newest first, stable
            self._history_cache = (account, key, timed)
            return timed

    def _transfers(self, request: Request, rows: list[dict[str, Any]]) -> Reply:
        params = self._params(request, ("symbol", "limit", "start", "end"))
        limit, start, end = self._limit_start_end(
            params, TRANSFERS_DEFAULT_LIMIT, TRANSFERS_MAX_LIMIT
        )
        symbol = params.get("symbol")
        chosen = [
            row
            for row in rows
            if (symbol is None or row.get("symbol") == symbol)
            and (start is None or int(row["timestamp"]) >= start)
            and (end is None or int(row["timestamp"]) <= end)
        ]
        chosen.sort(key=lambda row: int(row["timestamp"]), reverse=True)
        return Reply(200, chosen[:limit], rows_path=())

    def _deposits(self, request: Request, path: Mapping[str, str]) -> Reply:
        return self._transfers(request, list(self.world.bitvavo.deposits(self._now())))

    def _withdrawals(self, request: Request, path: Mapping[str, str]) -> Reply:
        gross = self.variants.bitvavo_withdrawal_amount in ("gross", "mixed")
        rows = self.world.bitvavo.withdrawals(self._now(), fee_in_amount=gross)
        return self._transfers(request, list(rows))

    def _balance(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(request, ("symbol",))
        rows = list(self.world.bitvavo.balance(self._now()))
        symbol = params.get("symbol")
        if symbol is not None:
            rows = [row for row in rows if row.get("symbol") == symbol]
        return Reply(200, rows, rows_path=())

    def _fees(self, request: Request, path: Mapping[str, str]) -> Reply:
        params = self._params(request, ("market", "quote"))
        account = self.world.bitvavo
        market = params.get("market")
        if market is None:
            traded = tuple(account.markets_traded) or tuple(m.symbol for m in self.own_markets())
            market = traded[0]
        elif not self._known_market(market):
            raise ApiError(_invalid("market"))
        return Reply(200, account.fees(market))

    def _account(self, request: Request, path: Mapping[str, str]) -> Reply:
        self._params(request, ())
        account = self.world.bitvavo
        traded = tuple(account.markets_traded) or tuple(m.symbol for m in self.own_markets())
        fees = dict(account.fees(traded[0]))
        return Reply(
            200,
            {
                "fees": fees,
                "capabilities": [
                    "buy",
                    "sell",
                    "depositCrypto",
                    "depositFiat",
                    "withdrawCrypto",
                    "withdrawFiat",
                ],
            },
        )


def _invalid(name: str) -> Reply:
    return error(205, f"{name} parameter is invalid.")


def _field_is(name: str) -> Callable[[dict[str, Any], str], bool]:
    def matches(row: dict[str, Any], wanted: str) -> bool:
        return bool(row[name] == wanted)

    return matches


def _documented_text(reply: Reply) -> None:
    """Word an errorCode 205 as the errors page documents it: "Invalid parameter: market"."""
    body = reply.payload
    if isinstance(body, dict) and body.get("errorCode") == 205:
        found = _PARAMETER_INVALID.match(str(body.get("error", "")))
        if found is not None:
            body["error"] = f"Invalid parameter: {found.group(1)}"


def _id_bounds(ids: list[str], id_from: str | None, id_to: str | None) -> tuple[int, int]:
    """Slice bounds of ascending `ids` from `id_from` to `id_to` (inclusive); unknown → empty."""
    first, last = 0, len(ids)
    if id_from is not None:
        first = ids.index(id_from) if id_from in ids else len(ids)
    if id_to is not None:
        last = ids.index(id_to) + 1 if id_to in ids else 0
    return first, max(first, last)


def _iso_ms(text: str) -> int:
    """`"2021-01-01T00:00:00.000Z"` → epoch ms."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000
