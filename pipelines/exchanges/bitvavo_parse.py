"""Bitvavo API v2 responses → records. Pure functions; see docs/exchanges.md for the wire facts.

Every parser takes the decoded body (``json.loads(text, parse_float=Decimal)``) and raises
`RowParseError` naming ``bitvavo``, the endpoint and the row when the body has a shape it does
not know. Amounts are strings on the wire, timestamps integer milliseconds (sometimes strings),
and integers in markets/assets sometimes strings: all are accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.exchanges import columns, frames, page_text
from pipelines.exchanges.records import (
    AssetInfo,
    BalanceSnapshot,
    BitvavoHistoryItem,
    BitvavoHistoryPage,
    Candle,
    FeeSchedule,
    Fill,
    MarketInfo,
    Movement,
    OtherEvent,
    PublicTrade,
    Side,
    Transfer,
    TransferKind,
    WithdrawalFee,
    carried,
    entry_transfer,
)
from pipelines.exchanges.rows import MarketFields, Rows
from pipelines.exchanges.values import (
    RowParseError,
    RowReader,
    clean_txid,
    composite_id,
    describe,
    encode_json,
    ensure_utc,
    from_epoch_ms,
    interval_name,
    market_name,
    parse_iso_datetime,
    rows_of,
    split_market,
    to_decimal,
    to_int,
)

__all__ = [
    "HISTORY_KINDS",
    "RowParseError",
    "classify_history_item",
    "parse_account",
    "parse_account_fees",
    "parse_account_history",
    "parse_asset_withdrawal_fees",
    "parse_assets",
    "parse_balance",
    "parse_candles",
    "parse_deposit_history",
    "parse_markets",
    "parse_order_fills",
    "parse_public_trades",
    "parse_time",
    "parse_trades",
    "parse_withdrawal_history",
]

EXCHANGE = "bitvavo"
_ROWS = Rows(EXCHANGE)

# /account/history `type` → OtherEvent kind (buy/sell/deposit/withdrawal become fills/transfers).
HISTORY_KINDS: Mapping[str, str] = {
    "staking": "staking_reward",
    "fixed_staking": "staking_reward",
    "affiliate": "referral_reward",
    "distribution": "distribution",
    "rebate": "fee_rebate",
    "internal_transfer": "internal_transfer",
    "withdrawal_cancelled": "withdrawal_cancelled",
}

# Kinds for buy/sell/deposit/withdrawal items that lack what a fill or transfer needs.
_FALLBACK_KINDS: Mapping[str, str] = {
    "buy": "trade",
    "sell": "trade",
    "deposit": "deposit",
    "withdrawal": "withdrawal",
}

_SIDES = ("buy", "sell")
_SIDE_NAMES = frozenset(_SIDES)

_MARKET_FIELDS = MarketFields("status", "quantityDecimals", "notionalDecimals", "pricePrecision")


def _side(row: RowReader) -> Side:
    side = row.require("side")
    if side == "buy" or side == "sell":
        return side
    raise row.error(f"field 'side': expected buy or sell, got {describe(side)}")


def _market(row: RowReader, key: str = "market") -> tuple[str, str, str]:
    base, quote = row.convert(key, row.require(key), split_market)
    return market_name(base, quote), base, quote


# --- market data -----------------------------------------------------------------------------


def parse_candles(payload: Any, *, market: str, interval: str) -> Sequence[Candle]:
    """``GET /v2/{market}/candles`` → candles, newest first as sent. Rows are
    ``[timestamp_ms, open, high, low, close, volume]``; the timestamp may be a string. A page
    of the usual shape comes as columns (`frames.FrameRows`)."""
    interval = interval_name(interval)
    market = market_name(*split_market(market))
    table = columns.arrays(payload, 6) if isinstance(payload, list) else None
    if table is None:
        return _candle_records(payload, market, interval, table)
    return frames.candles(
        EXCHANGE,
        market,
        interval,
        frames.sent_arrays(table),
        fields=range(6),
        unit=columns.MILLISECOND,
        make=lambda: _candle_records(payload, market, interval, table),
    )


_CANDLE_BODY = page_text.compiled(
    page_text.rows_of(
        page_text.array_row(
            (page_text.time_form(page_text.MILLISECONDS_DIGITS), *[page_text.MONEY] * 5)
        )
    )
)


def read_candles(body: bytes, *, market: str, interval: str) -> Sequence[Candle] | None:
    """`parse_candles` of a compact body of the usual shape, read without decoding it
    (`page_text`): the same candles, as columns; None for any other body (decode it, then
    `parse_candles`)."""
    if _CANDLE_BODY.fullmatch(body) is None:
        return None
    interval = interval_name(interval)
    market = market_name(*split_market(market))

    def make() -> list[Candle]:
        payload = json.loads(body, parse_float=Decimal)
        return list(parse_candles(payload, market=market, interval=interval))

    rows = page_text.split(body)
    return frames.text_candles(
        EXCHANGE, market, interval, rows, keys=None, unit=columns.MILLISECOND, make=make
    )


def _candle_records(
    payload: Any, market: str, interval: str, table: list[list[Any]] | None
) -> list[Candle]:
    endpoint = "candles"
    if table is not None:
        page = columns.candles(EXCHANGE, market, interval, payload, table, columns.MILLISECOND)
        if page is not None:
            return page
    candles = []
    for index, value in enumerate(rows_of(EXCHANGE, endpoint, payload)):
        if not isinstance(value, list) or len(value) < 6:
            raise _ROWS.error(endpoint, index, f"expected a 6-element array, got {describe(value)}")
        try:
            open_time = from_epoch_ms(value[0])
            numbers = [to_decimal(item) for item in value[1:6]]
        except ValueError as exc:
            raise _ROWS.error(endpoint, index, str(exc)) from None
        candles.append(
            Candle(
                exchange=EXCHANGE,
                market=market,
                interval=interval,
                open_time=open_time,
                open=numbers[0],
                high=numbers[1],
                low=numbers[2],
                close=numbers[3],
                volume=numbers[4],
                extra={str(position): item for position, item in enumerate(value) if position > 5},
                raw=encode_json(value),
            )
        )
    return candles


def parse_public_trades(payload: Any, *, market: str) -> Sequence[PublicTrade]:
    """``GET /v2/{market}/trades`` → public trades (ids are UUIDs, unique per market); a page
    of the usual shape comes as columns (`frames.FrameRows`)."""
    market = market_name(*split_market(market))
    return frames.trade_page(
        EXCHANGE,
        market,
        payload,
        fields=_TRADE_KEYS,
        sides={side: side for side in _SIDES},
        unit=columns.MILLISECOND,
        records=lambda table: _trade_records(payload, market, table),
    )


def read_public_trades(body: bytes, *, market: str) -> Sequence[PublicTrade] | None:
    """`parse_public_trades` of a compact body of the usual shape, read without decoding it
    (`page_text`): the same trades, as columns; None for any other body (decode it, then
    `parse_public_trades`)."""
    read = _TRADE_BODY.read(body)
    if read is None:
        return None
    market = market_name(*split_market(market))

    def make() -> list[PublicTrade]:
        payload = json.loads(body, parse_float=Decimal)
        return list(parse_public_trades(payload, market=market))

    return frames.text_public_trades(
        EXCHANGE,
        market,
        read,
        keys=_TRADE_ROW,
        names=("trade_id", "traded_at", "amount", "price", "side"),
        sides={side: side for side in _SIDES},
        unit=columns.MILLISECOND,
        make=make,
    )


_TRADE_KEYS = {
    "id": "id",
    "time": "timestamp",
    "price": "price",
    "amount": "amount",
    "side": "side",
}

# the keys of a public trade in the order a recorded page lists them
_TRADE_ROW = ("id", "timestamp", "amount", "price", "side")
# the usual page of public trades, compact, in that order; ids of letters, digits and dashes
# (UUIDs)
_TRADE_BODY = page_text.RowReader(
    _TRADE_ROW,
    (
        rb'"[0-9A-Za-z-]++"',
        page_text.time_form(page_text.MILLISECONDS_DIGITS),
        page_text.MONEY,
        page_text.MONEY,
        rb'"(?:buy|sell)"',
    ),
    captured=("id", "timestamp"),
)


def _trade_records(
    payload: Any, market: str, found: dict[str, list[Any]] | None
) -> list[PublicTrade]:
    endpoint = "market/trades"
    if found is not None:
        known = found["side"] if columns.among(found["side"], _SIDE_NAMES) else None
        page = columns.public_trades(EXCHANGE, market, payload, found, known, columns.MILLISECOND)
        if page is not None:
            return page
    return [
        PublicTrade(
            exchange=EXCHANGE,
            market=market,
            trade_id=row.identifier("id"),
            traded_at=row.convert("timestamp", row.require("timestamp"), from_epoch_ms),
            price=row.decimal("price"),
            amount=row.decimal("amount"),
            side=_side(row),
            **row.kept(),
        )
        for row in _ROWS.each(endpoint, payload)
    ]


def parse_markets(payload: Any) -> list[MarketInfo]:
    """``GET /v2/markets`` → markets."""
    endpoint = "markets"
    markets = []
    for row in _ROWS.each(endpoint, payload):
        symbol = row.text("market")
        market, base, quote = _market(row)
        if row.has("base") and row.asset("base") != base:
            raise row.error(f"'base' {row.data['base']!r} does not match market {symbol!r}")
        if row.has("quote") and row.asset("quote") != quote:
            raise row.error(f"'quote' {row.data['quote']!r} does not match market {symbol!r}")
        markets.append(
            _ROWS.market(row, _MARKET_FIELDS, symbol=symbol, market=market, base=base, quote=quote)
        )
    return markets


def parse_assets(payload: Any) -> list[AssetInfo]:
    """``GET /v2/assets`` → assets with their withdrawal fee and networks."""
    endpoint = "assets"
    assets = []
    for row in _ROWS.each(endpoint, payload):
        networks = row.get("networks") or []
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise row.error(f"field 'networks': expected strings, got {describe(networks)}")
        assets.append(
            AssetInfo(
                exchange=EXCHANGE,
                asset=row.asset("symbol"),
                name=row.optional_text("name"),
                decimals=row.optional_integer("decimals"),
                deposit_fee=row.optional_decimal("depositFee"),
                withdrawal_fee=row.optional_decimal("withdrawalFee"),
                withdrawal_min_amount=row.optional_decimal("withdrawalMinAmount"),
                deposit_status=row.optional_text("depositStatus"),
                withdrawal_status=row.optional_text("withdrawalStatus"),
                networks=tuple(networks),
                **row.kept(),
            )
        )
    return assets


def parse_asset_withdrawal_fees(
    assets: Iterable[AssetInfo], *, taken_at: datetime
) -> list[WithdrawalFee]:
    """Withdrawal fees as listed by ``/v2/assets`` (the network when the asset has only one)."""
    taken_at = ensure_utc(taken_at)
    return [
        WithdrawalFee(
            exchange=EXCHANGE,
            asset=asset.asset,
            fee=asset.withdrawal_fee,
            network=asset.networks[0] if len(asset.networks) == 1 else None,
            taken_at=taken_at,
            raw=asset.raw,
        )
        for asset in assets
        if asset.withdrawal_fee is not None
    ]


def parse_time(payload: Any) -> datetime:
    """``GET /v2/time`` → the server's clock."""
    row = _ROWS.reader("time", None, payload)
    return row.convert("time", row.require("time"), from_epoch_ms)


# --- account ---------------------------------------------------------------------------------


def _fill(
    row: RowReader, *, account: str, source: str, market: str, side: Side, order_id: str | None
) -> Fill:
    base, quote = split_market(market)
    amount = row.decimal("amount")
    price = row.decimal("price")
    fee = row.optional_decimal("fee")  # absent until settled; negative = rebate
    settled = row.boolean("settled")
    return Fill(
        exchange=EXCHANGE,
        account=account,
        market=market,
        base_asset=base,
        quote_asset=quote,
        fill_id=row.identifier("id"),
        order_id=order_id,
        side=side,
        base_amount=amount,
        quote_amount=amount * price,
        price=price,
        fee=fee,
        fee_asset=row.optional_asset("feeCurrency"),
        taker=row.boolean("taker"),
        settled=settled if settled is not None else fee is not None,
        executed_at=row.convert("timestamp", row.require("timestamp"), from_epoch_ms),
        source=source,
        **row.kept(),
    )


def parse_trades(payload: Any, *, account: str) -> list[Fill]:
    """``GET /v2/trades?market=…`` → the account's fills (not app trades: see
    `parse_account_history`). ``quote_amount`` is amount × price, exactly."""
    endpoint = "trades"
    return [
        _fill(
            row,
            account=account,
            source=endpoint,
            market=_market(row)[0],
            side=_side(row),
            order_id=row.optional_identifier("orderId"),
        )
        for row in _ROWS.each(endpoint, payload)
    ]


def parse_order_fills(payload: Any, *, account: str) -> list[Fill]:
    """``GET /v2/orders`` (orders with their ``fills``) → the fills, market and side taken from
    their order. For reconciling fills against orders; the rest of each order is not kept."""
    endpoint = "orders"
    fills = []
    for order in _ROWS.each(endpoint, payload):
        market, _, _ = _market(order)
        side = _side(order)
        order_id = order.identifier("orderId")
        order_fills = order.require("fills")
        if not isinstance(order_fills, list):
            raise order.error(f"field 'fills': expected an array, got {describe(order_fills)}")
        for row in _ROWS.each(f"{endpoint} fills of order {order_id}", order_fills):
            fills.append(
                _fill(
                    row,
                    account=account,
                    source=endpoint,
                    market=market,
                    side=side,
                    order_id=order_id,
                )
            )
    return fills


def _transfer_id(row: RowReader, txid: str | None) -> str:
    if txid:
        return txid
    return composite_id(
        row.data.get("symbol"),
        row.data.get("timestamp"),
        row.data.get("amount"),
        row.data.get("address"),
    )


def _transfers(payload: Any, *, account: str, endpoint: str, kind: TransferKind) -> list[Transfer]:
    transfers = []
    for row in _ROWS.each(endpoint, payload):
        asset = row.asset("symbol")
        txid = clean_txid(row.optional_text("txId"))
        executed_at = row.convert("timestamp", row.require("timestamp"), from_epoch_ms)
        amount = row.decimal("amount")
        transfers.append(
            _ROWS.transfer(
                row,
                asset,
                row.optional_decimal("fee"),
                account=account,
                transfer_id=_transfer_id(row, txid),
                kind=kind,
                amount=amount,
                address=row.optional_text("address"),
                txid=txid,
                executed_at=executed_at,
                source=endpoint,
            )
        )
    return transfers


def parse_deposit_history(payload: Any, *, account: str) -> list[Transfer]:
    """``GET /v2/depositHistory`` → deposits. There is no id field: ``transfer_id`` is the
    ``txId`` with whitespace removed, else ``symbol|timestamp|amount|address`` as sent."""
    return _transfers(payload, account=account, endpoint="depositHistory", kind="deposit")


def parse_withdrawal_history(payload: Any, *, account: str) -> list[Transfer]:
    """``GET /v2/withdrawalHistory`` → withdrawals, keyed like `parse_deposit_history`. The
    ``status`` changes over time: the same ``transfer_id`` comes back with a newer status."""
    return _transfers(payload, account=account, endpoint="withdrawalHistory", kind="withdrawal")


def parse_balance(payload: Any, *, account: str, taken_at: datetime) -> list[BalanceSnapshot]:
    """``GET /v2/balance`` → snapshots; total = available + inOrder."""
    endpoint = "balance"
    taken_at = ensure_utc(taken_at)
    snapshots = []
    for row in _ROWS.each(endpoint, payload):
        available = row.decimal("available")
        in_order = row.decimal("inOrder")
        snapshots.append(
            BalanceSnapshot(
                exchange=EXCHANGE,
                account=account,
                asset=row.asset("symbol"),
                total=available + in_order,
                available=available,
                reserved=in_order,
                taken_at=taken_at,
                **row.kept(),
            )
        )
    return snapshots


def _fee_schedule(
    row: RowReader, *, account: str, market: str | None, taken_at: datetime
) -> FeeSchedule:
    tier = row.get("tier")
    if tier is not None and (isinstance(tier, bool) or not isinstance(tier, int | str)):
        raise row.error(f"field 'tier': expected a string or integer, got {describe(tier)}")
    return FeeSchedule(
        exchange=EXCHANGE,
        account=account,
        market=None if market is None else market_name(*split_market(market)),
        maker=row.decimal("maker"),
        taker=row.decimal("taker"),
        taken_at=ensure_utc(taken_at),
        tier=None if tier is None else str(tier),
        volume=row.optional_decimal("volume"),
        **row.kept(),
    )


def parse_account_fees(
    payload: Any, *, account: str, market: str, taken_at: datetime
) -> FeeSchedule:
    """``GET /v2/account/fees?market=…`` → that market's fees (fractions, as sent)."""
    row = _ROWS.reader("account/fees", None, payload)
    return _fee_schedule(row, account=account, market=market, taken_at=taken_at)


def parse_account(payload: Any, *, account: str, taken_at: datetime) -> FeeSchedule:
    """``GET /v2/account`` → the account-wide fee rates (``market`` None)."""
    envelope = _ROWS.reader("account", None, payload)
    row = _ROWS.reader("account", None, envelope.require("fees"))
    schedule = _fee_schedule(row, account=account, market=None, taken_at=taken_at)
    rest = envelope.extra()
    return replace(schedule, extra={**schedule.extra, **rest}) if rest else schedule


# --- /account/history ------------------------------------------------------------------------


def parse_account_history(payload: Any, *, account: str) -> BitvavoHistoryPage:
    """``GET /v2/account/history`` → one page of items with its paging fields."""
    endpoint = "account/history"
    envelope = _ROWS.reader(endpoint, None, payload)
    values = envelope.require("items")
    if not isinstance(values, list):
        raise envelope.error(f"field 'items': expected an array, got {describe(values)}")
    items = [
        BitvavoHistoryItem(
            account=account,
            transaction_id=row.identifier("transactionId"),
            type=row.text("type"),
            executed_at=row.convert("executedAt", row.require("executedAt"), _history_time),
            price_currency=row.optional_asset("priceCurrency"),
            price_amount=row.optional_decimal("priceAmount"),
            sent_currency=row.optional_asset("sentCurrency"),
            sent_amount=row.optional_decimal("sentAmount"),
            received_currency=row.optional_asset("receivedCurrency"),
            received_amount=row.optional_decimal("receivedAmount"),
            fees_currency=row.optional_asset("feesCurrency"),
            fees_amount=row.optional_decimal("feesAmount"),
            address=row.optional_text("address"),
            source=endpoint,
            **row.kept(),
        )
        for row in _ROWS.each(endpoint, values)
    ]
    return BitvavoHistoryPage(
        items=tuple(items),
        current_page=envelope.integer("currentPage"),
        total_pages=envelope.integer("totalPages"),
        max_items=envelope.integer("maxItems"),
        extra=envelope.extra(),
    )


def _history_time(value: object) -> datetime:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return from_epoch_ms(to_int(value))
    return parse_iso_datetime(value)


def _history_fill(item: BitvavoHistoryItem) -> Fill | None:
    """An app trade as a fill, or None when the item lacks what a fill needs.

    The quote is ``priceCurrency``; the side follows the balance flows (base received = buy),
    because the documented example labels an EUR → BTC exchange "sell".
    """
    sent, received = item.sent_currency, item.received_currency
    sent_amount, received_amount, price = item.sent_amount, item.received_amount, item.price_amount
    if sent is None or received is None or sent == received:
        return None
    if sent_amount is None or received_amount is None or price is None:
        return None
    quote = item.price_currency or (sent if item.type == "buy" else received)
    side: Side
    if quote == received:
        side, base, base_amount, quote_amount = "sell", sent, sent_amount, received_amount
    elif quote == sent:
        side, base, base_amount, quote_amount = "buy", received, received_amount, sent_amount
    else:
        return None
    return Fill(
        **carried(EXCHANGE, item, extra={"type": item.type, **item.extra}),
        market=market_name(base, quote),
        base_asset=base,
        quote_asset=quote,
        fill_id=item.transaction_id,
        order_id=None,
        side=side,
        base_amount=abs(base_amount),
        quote_amount=abs(quote_amount),
        price=price,
        fee=item.fees_amount,
        fee_asset=item.fees_currency,
        taker=None,
        settled=True,
    )


def _history_transfer(item: BitvavoHistoryItem) -> Transfer | None:
    kind: TransferKind
    if item.type == "deposit":
        kind, asset, amount = "deposit", item.received_currency, item.received_amount
    else:
        kind, asset, amount = "withdrawal", item.sent_currency, item.sent_amount
    if asset is None or amount is None:
        return None
    return entry_transfer(
        EXCHANGE,
        item,
        kind,
        Movement(asset, amount),
        transfer_id=item.transaction_id,
        fee=(item.fees_amount, item.fees_currency),
        address=item.address,
        extra=dict(item.extra),
    )


def classify_history_item(item: BitvavoHistoryItem) -> Fill | Transfer | OtherEvent:
    """buy/sell → `Fill` (app trades), deposit/withdrawal → `Transfer`, anything else →
    `OtherEvent` with a normalised kind (unknown types: ``"unknown"``, kept)."""
    classified: Fill | Transfer | None = None
    if item.type in _SIDES:
        classified = _history_fill(item)
    elif item.type in ("deposit", "withdrawal"):
        classified = _history_transfer(item)
    if classified is not None:
        return classified
    movements = []
    if item.sent_currency is not None and item.sent_amount:
        movements.append(Movement(item.sent_currency, -abs(item.sent_amount)))
    if item.received_currency is not None and item.received_amount:
        movements.append(Movement(item.received_currency, abs(item.received_amount)))
    return OtherEvent(
        **carried(EXCHANGE, item, extra=dict(item.extra)),
        event_id=item.transaction_id,
        event_type=item.type,
        kind=HISTORY_KINDS.get(item.type) or _FALLBACK_KINDS.get(item.type, "unknown"),
        movements=tuple(movements),
        fee=item.fees_amount,
        fee_asset=item.fees_currency,
    )
