"""The Bitstamp API v2 emulator: public market data and the private account, over a `World`.

Paths, parameters, row shapes, paging rules, quirks and error bodies follow docs/exchanges.md
("Bitstamp"). Quirks (when on): the daily OHLC series holds one day twice (first a stale noon
snapshot, then the real candle: "last wins" recovers the truth), and a `limit=1000` OHLC page
whose `end` falls on a UTC day boundary comes back with 999 rows (its oldest row left out, which
the next page by `end` still returns). A pair the world lists late (`listing.py`) shows nothing
before its listing; an OHLC `end` before it returns what `bitstamp-ohlc-before-listing` says.

Variant `bitstamp-perps=on`: `/markets/` and `/fees/trading/` also list the perpetual markets of
`catalog.PERPETUALS` (`btcusd-perp`, `market_type` PERPETUAL); they have no other endpoint here.
"""

from __future__ import annotations

import calendar
import hashlib
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.sandbox.app import Admission, AppSetup, ExchangeApp
from pipelines.sandbox.auth import BitstampVerifier
from pipelines.sandbox.catalog import PERPETUALS
from pipelines.sandbox.faults import Fault
from pipelines.sandbox.listing import first_price
from pipelines.sandbox.params import all_or_one, bounded_int, parse_int
from pipelines.sandbox.permissions import bitstamp_refusal
from pipelines.sandbox.ratelimit import RequestLimiter
from pipelines.sandbox.reference import asset_name
from pipelines.sandbox.routing import ApiError, Reply, Request, Route, html_page, route
from pipelines.sandbox.tape import Bar, MarketLike, filled_bars, trades_until
from pipelines.sandbox.wire import Raw, fixed

EXCHANGE = "bitstamp"
OHLC_STEPS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200)
OHLC_MAX_LIMIT = 1000
TRANSACTION_WINDOWS_S = {"minute": 60, "hour": 3600, "day": 86400}
LEDGER_DEFAULT_LIMIT = 100
LEDGER_MAX_LIMIT = 1000
LEDGER_MAX_OFFSET = 200_000
SINCE_TIMESTAMP_REACH_MS = 30 * 86_400_000
CRYPTO_LISTS = ("deposits", "withdrawals", "ripple_iou_transactions")
CRYPTO_COMBINED = ("deposits", "withdrawals")  # the lists `combined` pages together
DAY_MS = 86_400_000
MAINTENANCE = "Bitstamp.net is under scheduled maintenance. We'll be back soon."
RATE_LIMIT_BODY = {"status": "error", "reason": "Rate limit exceeded", "response_code": "400.002"}
_P = r"(?P<pair>[a-z0-9]+(?:-[a-z0-9]+)?)"
_C = r"(?P<currency>[a-z0-9]+)"


def error(reason: str, response_code: str, status: int = 400) -> Reply:
    return Reply(status, {"status": "error", "reason": reason, "response_code": response_code})


class BitstampApp(ExchangeApp):
    exchange = EXCHANGE

    def __init__(self, setup: AppSetup) -> None:
        super().__init__(setup)
        self.limiter = RequestLimiter(setup.limits, setup.clock)
        self.verifier = BitstampVerifier(setup.keys, setup.clock)
        self._ledger_cache: tuple[int, int, list[tuple[int, dict[str, Any]]]] | None = None
        self._ledger_lock = threading.Lock()
        api = "/api/v2"
        self.routes: tuple[Route, ...] = (
            route("ohlc/{pair}", "GET", rf"{api}/ohlc/{_P}/", self._ohlc),
            route("transactions/{pair}", "GET", rf"{api}/transactions/{_P}/", self._transactions),
            route("markets", "GET", rf"{api}/markets/", self._markets),
            route("trading-pairs-info", "GET", rf"{api}/trading-pairs-info/", self._pairs_info),
            route("eur_usd", "GET", rf"{api}/eur_usd/", self._eur_usd),
            route(
                "user_transactions",
                "POST",
                rf"{api}/user_transactions/",
                self._user_transactions,
                private=True,
            ),
            route(
                "user_transactions/{pair}",
                "POST",
                rf"{api}/user_transactions/{_P}/",
                self._user_transactions,
                private=True,
            ),
            route(
                "crypto-transactions",
                "POST",
                rf"{api}/crypto-transactions/",
                self._crypto_transactions,
                private=True,
            ),
            route(
                "account_balances",
                "POST",
                rf"{api}/account_balances/",
                self._balances,
                private=True,
            ),
            route(
                "account_balances/{currency}",
                "POST",
                rf"{api}/account_balances/{_C}/",
                self._balances,
                private=True,
            ),
            route(
                "fees/trading", "POST", rf"{api}/fees/trading/", self._trading_fees, private=True
            ),
            route(
                "fees/trading/{pair}",
                "POST",
                rf"{api}/fees/trading/{_P}/",
                self._trading_fees,
                private=True,
            ),
            route(
                "fees/withdrawal",
                "POST",
                rf"{api}/fees/withdrawal/",
                self._withdrawal_fees,
                private=True,
            ),
            route(
                "fees/withdrawal/{currency}",
                "POST",
                rf"{api}/fees/withdrawal/{_C}/",
                self._withdrawal_fees,
                private=True,
            ),
        )

    # --- pipeline hooks ------------------------------------------------------------------

    def admit(self, request: Request, route: Route | None) -> Admission:
        if self.limiter.charge(self._identity(request, route)):
            return Admission(None, {})
        self.stats.rate_limited(ban_started=False)
        return Admission(Reply(429, dict(RATE_LIMIT_BODY)), {})

    def _identity(self, request: Request, route: Route | None) -> str:
        x_auth = request.headers.get("X-Auth") or ""
        if route is not None and route.private and x_auth == f"BITSTAMP {self.setup.keys.key}":
            return "key"
        return f"ip:{request.client_ip}"

    def authenticate(self, request: Request, route: Route) -> Reply | None:
        if not route.private:
            return None
        failure = self.verifier.verify(
            method=request.method,
            host=request.host,
            path=request.path,
            query=request.target.partition("?")[2],  # signed without its `?`
            headers=request.headers,
            body=request.body,
        )
        if failure is None:
            failure = bitstamp_refusal(route.name, self.setup.missing_permissions)
        return self.refused(failure)

    def fault_reply(self, fault: Fault) -> Reply:
        if fault.kind == "rate_limited":
            return Reply(429, dict(RATE_LIMIT_BODY))
        if fault.kind == "server_error":
            pick = fault.variant % 3
            if pick == 0:
                return Reply(503, {"error": MAINTENANCE})
            if pick == 1:
                return html_page(502, "Bad Gateway")
            return error("Internal server error", "500.000", 500)
        # error_body: an error with HTTP 200, as Bitstamp sometimes sends
        if fault.variant % 2 == 0:
            return Reply(200, {"error": MAINTENANCE})
        return Reply(200, dict(RATE_LIMIT_BODY))

    def not_found(self, request: Request) -> Reply:
        return error("Not found", "404.001", 404)

    def method_not_allowed(self, request: Request) -> Reply:
        return error(f"Method {request.method} not allowed", "405.001", 405)

    def internal_error(self) -> Reply:
        return error("Internal server error", "500.000", 500)

    # --- helpers -------------------------------------------------------------------------

    def _market(self, pair: str) -> MarketLike:
        return self.listed_market(pair, _unknown_pair)

    @staticmethod
    def _int(
        fields: Mapping[str, str],
        name: str,
        *,
        default: int | None,
        low: int,
        high: int,
        code: str,
        reason: str,
    ) -> int | None:
        return bounded_int(fields, name, default, low, high, lambda: error(reason, code))

    # --- public endpoints ----------------------------------------------------------------

    def _ohlc(self, request: Request, path: Mapping[str, str]) -> Reply:
        market = self._market(path["pair"])
        params = request.params
        if "step" not in params:
            raise ApiError(error("Missing step parameter", "400.001"))
        step = parse_int(params["step"])
        if step not in OHLC_STEPS:
            raise ApiError(error("Invalid step parameter", "400.001"))
        if "limit" not in params:
            raise ApiError(error("Missing limit parameter", "400.011"))
        limit = self._int(
            params,
            "limit",
            default=None,
            low=1,
            high=OHLC_MAX_LIMIT,
            code="400.011",
            reason="Invalid limit",
        )
        assert limit is not None and step is not None
        big = 2**40
        start = self._int(
            params, "start", default=None, low=0, high=big, code="400.001", reason="Invalid start"
        )
        end = self._int(
            params, "end", default=None, low=0, high=big, code="400.001", reason="Invalid end"
        )
        exclude_text = params.get("exclude_current_candle", "false").lower()
        if exclude_text not in ("true", "false"):
            raise ApiError(error("Invalid exclude_current_candle parameter", "400.001"))

        now = self.world.now_ms()
        step_ms = step * 1000
        current_open = now // step_ms * step_ms
        last_open = current_open - step_ms if exclude_text == "true" else current_open
        if end is not None:  # end wins over start, and is inclusive on the open time
            anchor = min(end * 1000 // step_ms * step_ms, last_open)
            first = anchor - (limit - 1) * step_ms
        elif start is not None:
            first = -(-start * 1000 // step_ms) * step_ms
            anchor = min(first + (limit - 1) * step_ms, last_open)
        else:
            anchor = last_open
            first = anchor - (limit - 1) * step_ms
        listed_open = market.genesis_ms // step_ms * step_ms
        before_listing = self.variants.bitstamp_ohlc_before_listing
        if before_listing == "first" and end is not None and anchor < listed_open:
            # the first `limit` candles after the listing, though they open after `end`
            first, anchor = listed_open, min(listed_open + (limit - 1) * step_ms, last_open)
        bars = filled_bars(market, step_ms, max(first, listed_open), anchor, now)
        if before_listing == "zero" and first < listed_open:
            bars = [*self._fillers_before_listing(market, bars, first, anchor, step_ms, now), *bars]
        if self.quirks:
            if step == 86400:
                bars = self._with_duplicate_day(market, bars, now)[-limit:]
            day_aligned_end = end is not None and end % 86400 == 0
            if limit == OHLC_MAX_LIMIT and day_aligned_end and len(bars) == OHLC_MAX_LIMIT:
                bars = bars[1:]  # the short page: its OLDEST row is left for the next page
        pair = f"{market.base}/{market.quote}"
        payload = {"data": {"pair": pair, "ohlc": _ohlc_rows(market, bars)}}
        return Reply(200, payload, rows_path=("data", "ohlc"))

    @staticmethod
    def _fillers_before_listing(
        market: MarketLike,
        bars: Sequence[Bar],
        first_open: int,
        anchor: int,
        step_ms: int,
        now: int,
    ) -> list[Bar]:
        """`bitstamp-ohlc-before-listing=zero`: a zero-volume candle for every interval before
        the first served one, flat at the market's first traded price (there is no earlier close
        to carry; a filler priced at the first trade looks like a real quiet interval)."""
        stop = min(bars[0].open_ms if bars else anchor + step_ms, anchor + step_ms)
        if stop <= first_open:
            return []
        price = bars[0].open if bars else first_price(market, now)
        if price is None:
            return []
        return [Bar.flat(t, price) for t in range(max(first_open, 0), stop, step_ms)]

    def duplicate_day_ms(self, market: MarketLike, now_ms: int) -> int | None:
        """The day (open ms) the daily series serves twice, or None if the market is too young."""
        last_day = now_ms // DAY_MS * DAY_MS - 2 * DAY_MS
        # A recent day, so that a sync of the account window meets the quirk.
        first_day = max(market.genesis_ms // DAY_MS * DAY_MS + DAY_MS, last_day - 59 * DAY_MS)
        days = (last_day - first_day) // DAY_MS + 1
        if days < 1:
            return None
        label = f"{self.setup.seed}/{market.symbol}/duplicate-day"
        digest = hashlib.sha256(label.encode()).digest()
        return first_day + int.from_bytes(digest[:8], "big") % days * DAY_MS

    def _with_duplicate_day(self, market: MarketLike, bars: list[Bar], now: int) -> list[Bar]:
        day = self.duplicate_day_ms(market, now)
        index = next((i for i, bar in enumerate(bars) if bar.open_ms == day), None)
        if day is None or index is None:
            return bars
        real = bars[index]
        halves = market.candles(43200, day, day + 43200)
        stale = halves[0] if halves else Bar.flat(day, real.open)
        stale = Bar(day, stale.open, stale.high, stale.low, stale.close, stale.volume, 0)
        if (stale.open, stale.high, stale.low, stale.close, stale.volume) == (
            real.open,
            real.high,
            real.low,
            real.close,
            real.volume,
        ):
            stale = Bar(day, real.open, real.high, real.low, real.open, Decimal(0), 0)
        return [*bars[:index], stale, *bars[index:]]

    def _transactions(self, request: Request, path: Mapping[str, str]) -> Reply:
        market = self._market(path["pair"])
        window = request.params.get("time", "hour")
        if window not in TRANSACTION_WINDOWS_S:
            raise ApiError(error("Invalid time parameter", "400.001"))
        now = self.world.now_ms()
        start = now - TRANSACTION_WINDOWS_S[window] * 1000
        trades = trades_until(market, start, now + 1, now)
        trades.sort(key=lambda t: t.seq, reverse=True)
        p, a = market.price_decimals, market.amount_decimals
        # the rows as `dumps` writes them, in one pass (every value a plain string)
        rows = ",".join(
            f'{{"date":"{t.ts_ms // 1000}","tid":"{t.seq}","price":"{fixed(t.price, p)}",'
            f'"type":"{"0" if t.side == "buy" else "1"}","amount":"{fixed(t.amount, a)}"}}'
            for t in trades
        )
        return Reply(200, Raw(f"[{rows}]"), rows_path=())

    def _markets(self, request: Request, path: Mapping[str, str]) -> Reply:
        rows = [
            {
                "name": f"{m.base}/{m.quote}",
                "market_symbol": m.symbol,
                "base_currency": m.base,
                "base_decimals": m.amount_decimals,
                "counter_currency": m.quote,
                "counter_decimals": m.price_decimals,
                "minimum_order_value": "10",
                "trading": "Enabled",
                "instant_order_counter_decimals": 2,
                "instant_and_market_orders": "Enabled",
                "description": f"{asset_name(m.base)} / {asset_name(m.quote)}",
                "market_type": "SPOT",
            }
            for m in self.own_markets()
        ]
        rows += [dict(row) for row in self._perpetuals()]
        return Reply(200, rows, rows_path=())

    def _perpetuals(self) -> tuple[Mapping[str, Any], ...]:
        return PERPETUALS if self.variants.bitstamp_perps == "on" else ()

    def _pairs_info(self, request: Request, path: Mapping[str, str]) -> Reply:
        rows = [
            {
                "base_decimals": m.amount_decimals,
                "counter_decimals": m.price_decimals,
                "description": f"{asset_name(m.base)} / {asset_name(m.quote)}",
                "minimum_order": f"20.0 {m.quote}",
                "name": f"{m.base}/{m.quote}",
                "trading": "Enabled",
                "url_symbol": m.symbol,
            }
            for m in self.own_markets()
        ]
        return Reply(200, rows, rows_path=())

    def _eur_usd(self, request: Request, path: Mapping[str, str]) -> Reply:
        mid = Decimal("1.0850")
        market = self.world.markets.get((EXCHANGE, "eurusd"))
        if market is not None:
            now = self.world.now_ms()
            recent = trades_until(market, max(market.genesis_ms, now - 7 * DAY_MS), now + 1, now)
            if recent:
                mid = recent[-1].price
        q = Decimal("0.0001")
        buy = (mid * Decimal("1.0015")).quantize(q)
        sell = (mid * Decimal("0.9985")).quantize(q)
        return Reply(200, {"buy": fixed(buy, 4), "sell": fixed(sell, 4)})

    # --- private endpoints ---------------------------------------------------------------

    def _ledger(self) -> list[tuple[int, dict[str, Any]]]:
        """(executed ms, row) for every user_transactions row, ascending id (cached)."""
        rows = self.world.bitstamp.user_transactions
        with self._ledger_lock:
            cached = self._ledger_cache
            if cached is not None and cached[0] == id(rows) and cached[1] == len(rows):
                return cached[2]
            timed = [(_ledger_ms(row["datetime"]), row) for row in rows]
            self._ledger_cache = (id(rows), len(rows), timed)
            return timed

    def _offset_limit(self, form: Mapping[str, str]) -> tuple[int, int]:
        """The ledger endpoints' `offset` (≤ 200,000) and `limit` (≤ 1000, default 100)."""
        offset = self._int(
            form,
            "offset",
            default=0,
            low=0,
            high=LEDGER_MAX_OFFSET,
            code="400.010",
            reason="Invalid offset",
        )
        limit = self._int(
            form,
            "limit",
            default=LEDGER_DEFAULT_LIMIT,
            low=1,
            high=LEDGER_MAX_LIMIT,
            code="400.011",
            reason="Invalid limit",
        )
        assert offset is not None and limit is not None  # both have a default
        return offset, limit

    def _user_transactions(self, request: Request, path: Mapping[str, str]) -> Reply:
        form = request.form
        offset, limit = self._offset_limit(form)
        sort = form.get("sort", "desc")
        if sort not in ("asc", "desc"):
            raise ApiError(error("Invalid sort parameter", "400.012"))
        since_ts, until_ts = (
            self._int(
                form,
                name,
                default=None,
                low=0,
                high=2**40,
                code="400.013",
                reason=f"Invalid {name}",
            )
            for name in ("since_timestamp", "until_timestamp")
        )
        since_id = self._int(
            form,
            "since_id",
            default=None,
            low=0,
            high=2**63,
            code="400.001",
            reason="Invalid since_id",
        )
        assert offset is not None and limit is not None

        now = self.world.now_ms()
        rows = [(ms, row) for ms, row in self._ledger() if ms <= now]
        pair = path.get("pair")
        if pair is not None:
            market = self._market(pair)
            price_key = f"{market.base}_{market.quote}".lower()
            rows = [(ms, r) for ms, r in rows if str(r.get("type")) == "2" and price_key in r]
        if since_id is not None:
            rows = [(ms, r) for ms, r in rows if int(r["id"]) >= since_id]
            limit = LEDGER_MAX_LIMIT  # since_id forces the page size
        if since_ts is not None:
            lower = max(since_ts * 1000, now - SINCE_TIMESTAMP_REACH_MS)
            rows = [(ms, r) for ms, r in rows if ms >= lower]
        if until_ts is not None:
            rows = [(ms, r) for ms, r in rows if ms <= until_ts * 1000]
        if sort == "desc":
            rows = rows[::-1]
        page = [row for _, row in rows[offset : offset + limit]]
        return Reply(200, page, rows_path=())

    def _crypto_transactions(self, request: Request, path: Mapping[str, str]) -> Reply:
        """Each list newest first; `limit`/`offset` (same bounds as the ledger's) slice each
        list on its own (`per-list`), or deposits + withdrawals as one sequence, newest first,
        split back into its two lists (`combined`, variant `bitstamp-crypto-limit`)."""
        form = request.form
        offset, limit = self._offset_limit(form)
        assert offset is not None and limit is not None
        now_s = self.world.now_ms() // 1000
        source = self.world.bitstamp.crypto_transactions
        visible: dict[str, list[dict[str, Any]]] = {}
        for key in CRYPTO_LISTS:
            items: Sequence[dict[str, Any]] = source.get(key, [])
            shown = [item for item in items if int(item["datetime"]) <= now_s]
            shown.sort(key=lambda item: int(item["datetime"]), reverse=True)
            visible[key] = shown
        payload = {key: rows[offset : offset + limit] for key, rows in visible.items()}
        if self.variants.bitstamp_crypto_limit == "combined":
            merged = [(key, row) for key in CRYPTO_COMBINED for row in visible[key]]
            merged.sort(key=lambda item: int(item[1]["datetime"]), reverse=True)  # stable
            page = merged[offset : offset + limit]
            for key in CRYPTO_COMBINED:
                payload[key] = [row for owner, row in page if owner == key]
        return Reply(200, payload, rows_path=("deposits",))

    def _balances(self, request: Request, path: Mapping[str, str]) -> Reply:
        rows = list(self.world.bitstamp.balances(self.world.now_ms()))
        return all_or_one(rows, path.get("currency"), _is_currency, _unknown_currency)

    def _trading_fees(self, request: Request, path: Mapping[str, str]) -> Reply:
        rows = list(self.world.bitstamp.trading_fees)
        for perp in self._perpetuals():
            symbol = perp["market_symbol"]
            fees = {"maker": "0.00000", "taker": "0.05000"}
            rows.append({"currency_pair": symbol, "market": symbol, "fees": fees})
        return all_or_one(rows, path.get("pair"), _is_pair, _unknown_pair)

    def _withdrawal_fees(self, request: Request, path: Mapping[str, str]) -> Reply:
        rows = list(self.world.bitstamp.withdrawal_fees)
        return all_or_one(rows, path.get("currency"), _is_currency, _unknown_currency)


def _unknown_pair() -> Reply:
    return error("Currency pair not found", "404.002", 404)


def _unknown_currency() -> Reply:
    return error("Currency not found", "404.003", 404)


def _is_pair(row: Mapping[str, Any], pair: str) -> bool:
    return pair in (row.get("market"), row.get("currency_pair"))


def _is_currency(row: Mapping[str, Any], currency: str) -> bool:
    return str(row.get("currency", "")).lower() == currency


def _ohlc_rows(market: MarketLike, bars: list[Bar]) -> Raw:
    """The `ohlc` rows, every value a string, encoded in one pass (the hot path of a page)."""
    p, a = market.price_decimals, market.amount_decimals
    rows = ",".join(
        f'{{"timestamp":"{bar.open_ms // 1000}","open":"{fixed(bar.open, p)}",'
        f'"high":"{fixed(bar.high, p)}","low":"{fixed(bar.low, p)}",'
        f'"close":"{fixed(bar.close, p)}","volume":"{fixed(bar.volume, a)}"}}'
        for bar in bars
    )
    return Raw(f"[{rows}]")


def _ledger_ms(text: str) -> int:
    """`"YYYY-MM-DD HH:MM:SS[.ffffff]"` (naive UTC) → epoch ms."""
    moment = datetime.fromisoformat(text)
    return calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000
