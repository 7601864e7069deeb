"""Bitstamp API v2 responses → records. Pure functions; see docs/exchanges.md for the wire facts.

Every parser takes the decoded body (``json.loads(text, parse_float=Decimal)``) and raises
`RowParseError` naming ``bitstamp``, the endpoint and the row when the body has a shape it does
not know. Error bodies are http.py's business, not these parsers'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pipelines.exchanges import columns, frames, page_text
from pipelines.exchanges.records import (
    BalanceSnapshot,
    Candle,
    FeeSchedule,
    Fill,
    FxRate,
    LedgerEntry,
    MarketInfo,
    Movement,
    OtherEvent,
    PublicTrade,
    Side,
    Transfer,
    TransferKind,
    WithdrawalFee,
    carried,
    dedupe_candles,
    entry_transfer,
)
from pipelines.exchanges.rows import MarketFields, Rows
from pipelines.exchanges.values import (
    BITSTAMP_INTERVALS,
    INTERVAL_SECONDS,
    RowParseError,
    RowReader,
    clean_txid,
    composite_id,
    describe,
    ensure_utc,
    from_epoch_seconds,
    from_epoch_us,
    market_name,
    normalize_asset,
    parse_bitstamp_datetime,
    percent_to_fraction,
    to_decimal,
)

__all__ = [
    "BITSTAMP_QUOTES",
    "LEDGER_KINDS",
    "STEP_INTERVALS",
    "RowParseError",
    "balance_changes",
    "bitstamp_market",
    "classify_entries",
    "classify_entry",
    "dedupe_candles",
    "market_suffix",
    "parse_account_balances",
    "parse_balance_legacy",
    "parse_crypto_transactions",
    "parse_eur_usd",
    "parse_markets",
    "parse_ohlc",
    "parse_trading_fees",
    "parse_transactions",
    "parse_user_transactions",
    "parse_withdrawal_fees",
    "parse_withdrawal_requests",
    "replay_balances",
]

EXCHANGE = "bitstamp"
_ROWS = Rows(EXCHANGE)

# OHLC `step` (seconds) → interval. Bitstamp has no 8h step.
STEP_INTERVALS: Mapping[int, str] = {INTERVAL_SECONDS[name]: name for name in BITSTAMP_INTERVALS}

# Quote currencies of Bitstamp's markets, used only to split a bare symbol ("btcusdt") when no
# symbol map from the markets endpoint is at hand. Longest first, so "usdt" wins over "usd".
BITSTAMP_QUOTES: tuple[str, ...] = ("usdt", "usdc", "usd", "eur", "gbp", "btc", "eth", "pax")

# user_transactions `type` codes → normalised kind. Anything else is kept as "unknown".
LEDGER_KINDS: Mapping[str, str] = {
    "0": "deposit",
    "1": "withdrawal",
    "2": "trade",
    "14": "internal_transfer",  # sub-account transfer
    "25": "staking_credit",  # credited with staked assets
    "26": "staking_debit",  # sent to staking
    "27": "staking_reward",
    "32": "referral_reward",
    "33": "settlement",  # settlement transfer
    "35": "internal_transfer",  # inter-account transfer
    "53": "conversion",  # small-balance conversion
    "55": "dust_writeoff",  # small balance to nothing
    "58": "derivatives",
    "59": "derivatives",
    "60": "derivatives",
    "61": "derivatives",
}

_MARKET_FIELDS = MarketFields("trading", "base_decimals", "counter_decimals")

_LEDGER_FIXED_KEYS = frozenset({"id", "datetime", "type", "fee", "order_id"})
_PAIR_KEY = re.compile(r"([a-z0-9]+)_([a-z0-9]+)\Z")

# Legacy /withdrawal-requests/ (rows without a `currency` field): type and status codes.
_LEGACY_WITHDRAWAL_ASSETS: Mapping[int, str] = {0: "EUR", 1: "BTC", 14: "XRP", 15: "LTC", 16: "ETH"}
_LEGACY_WITHDRAWAL_STATUS: Mapping[str, str] = {
    "0": "open",
    "1": "in_process",
    "2": "finished",
    "3": "cancelled",
    "4": "failed",
}


def bitstamp_market(symbol: str, symbols: Mapping[str, str] | None = None) -> str:
    """``"btceur"`` → ``"BTC-EUR"``; ``"btcusd-perp"`` → ``"BTC-USD-PERP"``.

    With ``symbols`` (url symbol → market, from `parse_markets`) the map decides; without it the
    symbol is split at the longest known quote currency suffix, and a ``-suffix`` (a perpetual's
    ``-perp``) stays a suffix of the name, so that a perpetual is never named like its spot
    market. ValueError when neither works.
    """
    if symbols is not None and symbol in symbols:
        return symbols[symbol]
    head, dash, tail = symbol.lower().partition("-")
    for quote in BITSTAMP_QUOTES:
        if head.endswith(quote) and len(head) > len(quote):
            spot = market_name(head[: -len(quote)], quote)
            if not dash:
                return spot
            if tail and tail.isalnum():
                return f"{spot}-{tail.upper()}"
    raise ValueError(f"cannot split Bitstamp symbol {symbol!r} into base and quote")


def market_suffix(symbol: str, market_type: str | None) -> str:
    """The part of a tally market name after BASE-QUOTE: "" for a spot market, "-PERP" for
    ``btcusd-perp``; a non-spot market whose symbol has no suffix gets its ``market_type``."""
    _, dash, tail = symbol.partition("-")
    if dash and tail:
        return f"-{tail.upper()}"
    if market_type is None or market_type.upper() == "SPOT":
        return ""
    return f"-{market_type.upper()}"


def _market_from_name(name: object) -> str:
    """``"BTC/USD"`` → ``"BTC-USD"``."""
    if not isinstance(name, str) or name.count("/") != 1:
        raise ValueError(f"not a BASE/QUOTE pair name: {describe(name)}")
    base, quote = name.split("/")
    return market_name(base, quote)


# --- market data -----------------------------------------------------------------------------


_OHLC_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def parse_ohlc(payload: Any, *, step: int, market: str | None = None) -> Sequence[Candle]:
    """``GET /api/v2/ohlc/{pair}/`` → candles, oldest first, duplicates kept (see
    `dedupe_candles`). The market comes from ``data.pair``; ``market`` is used when the body
    has none and must agree when it has one. A page of the usual shape comes as columns
    (`frames.FrameRows`)."""
    endpoint = "ohlc"
    if step not in STEP_INTERVALS:
        raise ValueError(f"unknown Bitstamp OHLC step {step!r}")
    interval = STEP_INTERVALS[step]
    envelope = _ROWS.reader(endpoint, None, payload)
    data = _ROWS.reader(endpoint, None, envelope.require("data"))
    pair = data.get("pair")
    if pair is not None:
        found = data.convert("pair", pair, _market_from_name)
        if market is not None and market != found:
            raise data.error(f"pair {found} does not match requested {market}")
        market = found
    if market is None:
        raise data.error("no pair in the body and no market given")
    rows = data.require("ohlc")
    if not isinstance(rows, list):
        raise data.error(f"'ohlc' is {describe(rows)}, expected a JSON array")
    table = columns.objects(rows, _OHLC_FIELDS)
    if table is None:
        return _ohlc_records(market, interval, rows, table)
    named = market  # a name bound once: mypy keeps `market` narrowed to str inside the lambda
    return frames.candles(
        EXCHANGE,
        named,
        interval,
        frames.sent_objects(rows, table),
        fields=_OHLC_FIELDS,
        unit=columns.SECOND,
        make=lambda: _ohlc_records(named, interval, rows, table),
    )


_OHLC_ROW = page_text.object_row(
    _OHLC_FIELDS, (page_text.time_form(page_text.SECONDS_DIGITS), *[page_text.MONEY] * 5)
)
_OHLC_BODY = page_text.compiled(
    rb'\{"data":\{"pair":"([A-Za-z0-9]+/[A-Za-z0-9]+)","ohlc":('
    + page_text.rows_of(_OHLC_ROW)
    + rb")\}\}"
)


def read_ohlc(body: bytes, *, step: int, market: str) -> Sequence[Candle] | None:
    """`parse_ohlc` of a compact body of the usual shape, read without decoding it
    (`page_text`): the same candles, as columns; None for any other body (decode it, then
    `parse_ohlc`), and for a pair other than `market`'s (`parse_ohlc` names it)."""
    interval = STEP_INTERVALS.get(step)
    found = _OHLC_BODY.fullmatch(body)
    if interval is None or found is None:
        return None
    base, quote = found.group(1).decode().split("/")
    if market_name(base, quote) != market:
        return None

    def make() -> list[Candle]:
        return list(parse_ohlc(json.loads(body, parse_float=Decimal), step=step, market=market))

    rows = page_text.split(found.group(2))
    return frames.text_candles(
        EXCHANGE, market, interval, rows, keys=_OHLC_FIELDS, unit=columns.SECOND, make=make
    )


def _ohlc_records(
    market: str, interval: str, rows: list[Any], table: dict[str, list[Any]] | None
) -> list[Candle]:
    if table is not None:
        fields = [table[name] for name in _OHLC_FIELDS]
        page = columns.candles(EXCHANGE, market, interval, rows, fields, columns.SECOND)
        if page is not None:
            return page
    return [
        Candle(
            exchange=EXCHANGE,
            market=market,
            interval=interval,
            open_time=row.convert("timestamp", row.require("timestamp"), from_epoch_seconds),
            open=row.decimal("open"),
            high=row.decimal("high"),
            low=row.decimal("low"),
            close=row.decimal("close"),
            volume=row.decimal("volume"),
            **row.kept(),
        )
        for row in _ROWS.each("ohlc", rows)
    ]


_TAKER_SIDES: Mapping[str, Side] = {"0": "buy", "1": "sell"}
_TYPE_CODES = frozenset(_TAKER_SIDES)


def parse_transactions(payload: Any, *, market: str) -> Sequence[PublicTrade]:
    """``GET /api/v2/transactions/{pair}/`` → public trades (newest first, as sent); a page of
    the usual shape comes as columns (`frames.FrameRows`)."""
    return frames.trade_page(
        EXCHANGE,
        market,
        payload,
        fields=_TRADE_KEYS,
        sides=_TAKER_SIDES,
        unit=columns.SECOND,
        records=lambda table: _transaction_records(payload, market, table),
    )


def read_transactions(body: bytes, *, market: str) -> Sequence[PublicTrade] | None:
    """`parse_transactions` of a compact body of the usual shape, read without decoding it
    (`page_text`): the same trades, as columns; None for any other body (decode it, then
    `parse_transactions`)."""
    read = _TRANSACTIONS_BODY.read(body)
    if read is None:
        return None

    def make() -> list[PublicTrade]:
        return list(parse_transactions(json.loads(body, parse_float=Decimal), market=market))

    return frames.text_public_trades(
        EXCHANGE,
        market,
        read,
        keys=_TRANSACTION_ROW,
        names=("traded_at", "trade_id", "price", "side", "amount"),
        sides=_TAKER_SIDES,
        unit=columns.SECOND,
        make=make,
    )


# the keys of a public trade in the order a recorded page lists them
_TRANSACTION_ROW = ("date", "tid", "price", "type", "amount")
# the usual page of public trades, compact, in that order (ids and taker codes as strings)
_TRANSACTIONS_BODY = page_text.RowReader(
    _TRANSACTION_ROW,
    (
        page_text.time_form(page_text.SECONDS_DIGITS),
        rb'"[0-9A-Za-z-]++"',
        page_text.MONEY,
        rb'"[01]"',
        page_text.MONEY,
    ),
    captured=("date", "tid"),
)
_TRADE_KEYS = {"id": "tid", "time": "date", "price": "price", "amount": "amount", "side": "type"}


def _transaction_records(
    payload: Any, market: str, found: dict[str, list[Any]] | None
) -> list[PublicTrade]:
    endpoint = "transactions"
    if found is not None:
        codes = found["side"]
        sides = [_TAKER_SIDES[t] for t in codes] if columns.among(codes, _TYPE_CODES) else None
        page = columns.public_trades(EXCHANGE, market, payload, found, sides, columns.SECOND)
        if page is not None:
            return page
    trades = []
    for row in _ROWS.each(endpoint, payload):
        side = _TAKER_SIDES.get(str(row.require("type")))
        if side is None:
            raise row.error(f"field 'type': expected 0 or 1, got {describe(row.data['type'])}")
        if row.get("microtimestamp") is not None:
            traded_at = row.convert("microtimestamp", row.data["microtimestamp"], from_epoch_us)
            row.mark("date")
        else:
            traded_at = row.convert("date", row.require("date"), from_epoch_seconds)
        trades.append(
            PublicTrade(
                exchange=EXCHANGE,
                market=market,
                trade_id=row.identifier("tid"),
                traded_at=traded_at,
                price=row.decimal("price"),
                amount=row.decimal("amount"),
                side=side,
                **row.kept(),
            )
        )
    return trades


def parse_markets(payload: Any) -> list[MarketInfo]:
    """``/api/v2/markets/`` (``market_symbol``, ``base_currency``…) or the older
    ``/api/v2/trading-pairs-info/`` (``url_symbol``, ``name``) → markets.

    A market that is not spot keeps its own name: ``btcusd-perp`` (``market_type``
    PERPETUAL) is ``BTC-USD-PERP``, never ``BTC-USD`` (see `market_suffix`)."""
    endpoint = "markets"
    markets = []
    for row in _ROWS.each(endpoint, payload):
        symbol_key = "market_symbol" if row.has("market_symbol") else "url_symbol"
        symbol = row.text(symbol_key)
        name = row.text("name")
        if row.has("base_currency") or row.has("counter_currency"):
            base, quote = row.asset("base_currency"), row.asset("counter_currency")
        else:
            base, quote = row.convert("name", name, _market_from_name).split("-")[:2]
        market = market_name(base, quote) + market_suffix(symbol, _market_type(row))
        markets.append(
            _ROWS.market(row, _MARKET_FIELDS, symbol=symbol, market=market, base=base, quote=quote)
        )
    return markets


def _market_type(row: RowReader) -> str | None:
    """``market_type`` as sent (kept in ``extra`` too: it is read, not consumed)."""
    value = row.data.get("market_type")
    return value if isinstance(value, str) else None


def parse_eur_usd(payload: Any, *, taken_at: datetime) -> FxRate:
    """``GET /api/v2/eur_usd/`` → the current EUR/USD conversion rate."""
    row = _ROWS.reader("eur_usd", None, payload)
    return FxRate(
        exchange=EXCHANGE,
        base="EUR",
        quote="USD",
        buy=row.decimal("buy"),
        sell=row.decimal("sell"),
        taken_at=ensure_utc(taken_at),
        **row.kept(),
    )


# --- the account ledger ----------------------------------------------------------------------


def _type_code(row: RowReader) -> str:
    value = row.require("type")
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise row.error(f"field 'type': expected an integer or string, got {describe(value)}")
    return str(value)


def _ledger_fee(row: RowReader) -> Decimal | None:
    value = row.require("fee")  # always sent; a row without it is malformed
    if value == "None":  # Bitstamp writes an absent fee as the string "None"
        return None
    return row.convert("fee", value, to_decimal)


def _pair_key(row: RowReader, currencies: set[str]) -> str | None:
    candidates = [key for key in row.data if key not in _LEDGER_FIXED_KEYS and _PAIR_KEY.match(key)]
    if len(candidates) > 1:
        # Prefer the key whose halves are both currency keys of this row.
        candidates = [
            key for key in candidates if all(part in currencies for part in key.split("_"))
        ]
    if len(candidates) > 1:
        raise row.error(f"more than one <base>_<quote> price key: {sorted(candidates)}")
    return candidates[0] if candidates else None


def _ledger_entry(row: RowReader, account: str, source: str) -> LedgerEntry:
    entry_id = row.integer("id")
    executed_at = row.convert("datetime", row.require("datetime"), parse_bitstamp_datetime)
    type_code = _type_code(row)
    kind = LEDGER_KINDS.get(type_code, "unknown")
    fee = _ledger_fee(row)
    # Every market trade belongs to an order; a trade row without one is malformed.
    order_id = (
        row.identifier("order_id") if kind == "trade" else row.optional_identifier("order_id")
    )

    currency_keys = [k for k in row.data if k not in _LEDGER_FIXED_KEYS and "_" not in k]
    movements = []
    for key in currency_keys:
        amount = row.convert(key, row.require(key), to_decimal)
        if amount != 0:
            movements.append(Movement(row.convert(key, key, normalize_asset), amount))
    priced = _priced_pair(row, set(currency_keys))
    side, fee_asset = _side_and_fee_asset(row, kind, movements, priced)
    return LedgerEntry(
        account=account,
        entry_id=entry_id,
        type_code=type_code,
        kind=kind,
        executed_at=executed_at,
        movements=tuple(movements),
        fee=fee,
        fee_asset=fee_asset,
        pair=None if priced is None else market_name(priced.base, priced.quote),
        price=None if priced is None else priced.price,
        order_id=order_id,
        side=side,
        source=source,
        **row.kept(),
    )


class _Priced(NamedTuple):
    base: str
    quote: str
    price: Decimal


def _priced_pair(row: RowReader, currencies: set[str]) -> _Priced | None:
    """The row's non-zero ``<base>_<quote>`` price, if it has one."""
    pair_key = _pair_key(row, currencies)
    if pair_key is None:
        return None
    value = row.convert(pair_key, row.require(pair_key), to_decimal)
    if value == 0:
        return None
    base, quote = (part.upper() for part in pair_key.split("_"))
    return _Priced(base, quote, value)


def _side_and_fee_asset(
    row: RowReader, kind: str, movements: list[Movement], priced: _Priced | None
) -> tuple[Side | None, str | None]:
    """A trade's side and fee asset (its quote), checked against its movements; another row's
    fee is in the one currency it moves, if it moves one."""
    if kind != "trade":
        return None, movements[0].asset if len(movements) == 1 else None
    if priced is None:
        raise row.error("trade row without a non-zero <base>_<quote> price")
    base, quote = priced.base, priced.quote
    amounts = {m.asset: m.amount for m in movements}
    stray = sorted(set(amounts) - {base, quote})
    if stray:
        raise row.error(f"trade row moves currencies outside its pair: {stray}")
    base_amount = amounts.get(base, Decimal(0))
    quote_amount = amounts.get(quote, Decimal(0))
    if base_amount == 0:
        raise row.error(f"trade row with a zero {base.lower()} amount")
    if quote_amount != 0 and (quote_amount > 0) == (base_amount > 0):
        raise row.error("trade row whose base and quote amounts have the same sign")
    return ("buy" if base_amount > 0 else "sell"), quote


def parse_user_transactions(
    payload: Any, *, account: str, source: str = "user_transactions"
) -> list[LedgerEntry]:
    """``POST /api/v2/user_transactions/`` (or ``/{pair}/``: pass ``source``) → ledger entries.

    A key is a currency when it is not one of ``id, datetime, type, fee, order_id`` and has no
    underscore; the ``<base>_<quote>`` key holds the price. Currencies are never hard-coded.
    """
    return [_ledger_entry(row, account, source) for row in _ROWS.each(source, payload)]


def classify_entry(entry: LedgerEntry) -> Fill | Transfer | OtherEvent:
    """A trade → `Fill`; a deposit or withdrawal of one currency → `Transfer`; anything else
    (including unknown type codes) → `OtherEvent`, never dropped."""
    if entry.kind == "trade" and entry.pair is not None and entry.price is not None:
        base, quote = entry.pair.split("-")
        return Fill(
            **carried(EXCHANGE, entry),
            market=entry.pair,
            base_asset=base,
            quote_asset=quote,
            fill_id=str(entry.entry_id),
            order_id=entry.order_id,
            side=entry.side or ("buy" if entry.amount_of(base) > 0 else "sell"),
            base_amount=abs(entry.amount_of(base)),
            quote_amount=abs(entry.amount_of(quote)),
            price=entry.price,
            fee=entry.fee,
            fee_asset=entry.fee_asset,
            taker=None,
            settled=True,
        )
    if entry.kind in ("deposit", "withdrawal") and len(entry.movements) == 1:
        movement = entry.movements[0]
        if (movement.amount > 0) == (entry.kind == "deposit"):
            return entry_transfer(
                EXCHANGE,
                entry,
                "deposit" if entry.kind == "deposit" else "withdrawal",
                movement,
                transfer_id=str(entry.entry_id),
                fee=(entry.fee, entry.fee_asset),
            )
    return OtherEvent(
        **carried(EXCHANGE, entry),
        event_id=str(entry.entry_id),
        event_type=entry.type_code,
        kind=entry.kind,
        movements=entry.movements,
        fee=entry.fee,
        fee_asset=entry.fee_asset,
    )


def classify_entries(entries: Iterable[LedgerEntry]) -> list[Fill | Transfer | OtherEvent]:
    return [classify_entry(entry) for entry in entries]


def balance_changes(entry: LedgerEntry) -> dict[str, Decimal]:
    """How one ledger row changes the balances (docs/exchanges.md, "Bitstamp: ledger identity").

    Every movement counts; the fee is subtracted in its asset, except on withdrawals, whose
    (negative) amount already is the whole debit. ValueError if a non-zero fee has no asset.
    """
    changes: dict[str, Decimal] = {}
    for movement in entry.movements:
        changes[movement.asset] = changes.get(movement.asset, Decimal(0)) + movement.amount
    if entry.kind != "withdrawal" and entry.fee:
        if entry.fee_asset is None:
            raise ValueError(f"ledger row {entry.entry_id}: fee {entry.fee} in an unknown asset")
        changes[entry.fee_asset] = changes.get(entry.fee_asset, Decimal(0)) - entry.fee
    return changes


def replay_balances(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    """The balances that replaying the ledger in ascending ``id`` leaves, per asset, exactly."""
    balances: dict[str, Decimal] = {}
    for entry in sorted(entries, key=lambda e: e.entry_id):
        for asset, change in balance_changes(entry).items():
            balances[asset] = balances.get(asset, Decimal(0)) + change
    return balances


# --- transfers -------------------------------------------------------------------------------


def _crypto_transfer(row: RowReader, kind: TransferKind, account: str) -> Transfer:
    asset = row.asset("currency")
    amount = row.decimal("amount")
    moment = row.require("datetime")
    executed_at = row.convert("datetime", moment, _any_datetime)
    txid = clean_txid(row.optional_text("txid"))
    address = row.optional_text("destinationAddress")
    if row.get("id") is not None:
        ident = row.identifier("id")
    elif txid:
        ident = txid
    else:
        ident = composite_id(asset, moment, row.data["amount"], address)
    return _ROWS.transfer(
        row,
        asset,
        row.optional_decimal("fee"),
        account=account,
        transfer_id=f"{kind}:{ident}",
        kind=kind,
        amount=abs(amount),
        address=address,
        txid=txid,
        executed_at=executed_at,
        source="crypto-transactions",
    )


def parse_crypto_transactions(payload: Any, *, account: str) -> list[Transfer | OtherEvent]:
    """``POST /api/v2/crypto-transactions/`` → transfers with address and txid.

    ``transfer_id`` is ``"deposit:<id>"`` / ``"withdrawal:<txid>"`` (a composite when neither
    exists), so that it never collides with a ledger row id. Ripple IOU rows, whose direction
    the API does not state, are kept as `OtherEvent` kind ``"ripple_iou"`` without movements.
    """
    endpoint = "crypto-transactions"
    envelope = _ROWS.reader(endpoint, None, payload)
    results: list[Transfer | OtherEvent] = []
    sections: dict[str, TransferKind | None] = {
        "deposits": "deposit",
        "withdrawals": "withdrawal",
        "ripple_iou_transactions": None,
    }
    unknown = sorted(set(envelope.data) - set(sections))
    if unknown:
        raise envelope.error(f"unknown sections {unknown}")
    for section, kind in sections.items():
        rows = envelope.data.get(section) or []
        if not isinstance(rows, list):
            raise envelope.error(f"{section!r} is {describe(rows)}, expected a JSON array")
        for row in _ROWS.each(f"{endpoint} {section}", rows):
            if kind is not None:
                results.append(_crypto_transfer(row, kind, account))
                continue
            moment = row.require("datetime")
            executed_at = row.convert("datetime", moment, from_epoch_seconds)
            ident = row.get("txid") or composite_id(
                row.get("currency"), moment, row.get("amount"), row.get("destinationAddress")
            )
            row.mark(*row.data)
            results.append(
                OtherEvent(
                    exchange=EXCHANGE,
                    account=account,
                    event_id=f"ripple_iou:{ident}",
                    event_type="ripple_iou",
                    kind="ripple_iou",
                    movements=(),
                    executed_at=executed_at,
                    source=endpoint,
                    extra=dict(row.data),
                    raw=row.raw(),
                )
            )
    return results


def parse_withdrawal_requests(payload: Any, *, account: str) -> list[Transfer]:
    """``POST /api/v2/withdrawal-requests/`` → withdrawals (old rows: asset from the type code,
    status codes 0–4 spelled out, unknown codes kept as sent)."""
    endpoint = "withdrawal-requests"
    transfers = []
    for row in _ROWS.each(endpoint, payload):
        type_code = row.optional_integer("type")
        if row.has("currency"):
            asset = row.asset("currency")
        elif type_code is not None and type_code in _LEGACY_WITHDRAWAL_ASSETS:
            asset = _LEGACY_WITHDRAWAL_ASSETS[type_code]
        else:
            raise row.error(f"no currency and unknown withdrawal type {type_code!r}")
        status = row.get("status")
        status_text = None if status is None else str(status)
        txid_value = row.get("transaction_id") if row.has("transaction_id") else row.get("txid")
        row.mark("transaction_id", "txid")
        txid = None if txid_value is None else clean_txid(str(txid_value))
        transfers.append(
            Transfer(
                exchange=EXCHANGE,
                account=account,
                transfer_id=row.identifier("id"),
                kind="withdrawal",
                asset=asset,
                amount=abs(row.decimal("amount")),
                fee=row.optional_decimal("fee"),
                fee_asset=asset if row.get("fee") is not None else None,
                address=row.optional_text("address"),
                txid=txid,
                network=row.optional_text("network"),
                status=_LEGACY_WITHDRAWAL_STATUS.get(status_text or "", status_text),
                executed_at=row.convert("datetime", row.require("datetime"), _any_datetime),
                source=endpoint,
                **row.kept(),
            )
        )
    return transfers


def _any_datetime(value: object) -> datetime:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return from_epoch_seconds(value)
    return parse_bitstamp_datetime(value)


# --- balances and fees -----------------------------------------------------------------------


def parse_account_balances(
    payload: Any, *, account: str, taken_at: datetime
) -> list[BalanceSnapshot]:
    """``POST /api/v2/account_balances/`` → one snapshot per currency."""
    endpoint = "account_balances"
    taken_at = ensure_utc(taken_at)
    return [
        BalanceSnapshot(
            exchange=EXCHANGE,
            account=account,
            asset=row.asset("currency"),
            total=row.decimal("total"),
            available=row.decimal("available"),
            reserved=row.decimal("reserved"),
            taken_at=taken_at,
            **row.kept(),
        )
        for row in _ROWS.each(endpoint, payload)
    ]


def parse_balance_legacy(
    payload: Any, *, account: str, taken_at: datetime
) -> list[BalanceSnapshot]:
    """The deprecated flat ``POST /api/v2/balance/`` dict (``btc_balance``, ``btc_available``,
    ``btc_reserved``, ``btc_withdrawal_fee``, ``btcusd_fee``…) → one snapshot per currency
    that has a ``<ccy>_balance`` key.

    A currency's other ``<ccy>_*`` keys (``btc_withdrawal_fee``) go to its ``extra``; keys of no
    currency (the pair fees) go to every snapshot's ``extra``; ``raw`` is the whole dict.
    """
    endpoint = "balance"
    taken_at = ensure_utc(taken_at)
    envelope = _ROWS.reader(endpoint, None, payload)
    currencies = [key.removesuffix("_balance") for key in envelope.data if key.endswith("_balance")]
    claimed = {key for key in envelope.data for c in currencies if key.startswith(f"{c}_")}
    leftovers = {key: value for key, value in envelope.data.items() if key not in claimed}
    raw = envelope.raw()
    snapshots = []
    for index, currency in enumerate(currencies):
        fields = {k: v for k, v in envelope.data.items() if k.startswith(f"{currency}_")}
        row = _ROWS.reader(endpoint, index, fields)
        snapshots.append(
            BalanceSnapshot(
                exchange=EXCHANGE,
                account=account,
                asset=row.convert("currency", currency, normalize_asset),
                total=row.decimal(f"{currency}_balance"),
                available=row.decimal(f"{currency}_available"),
                reserved=row.decimal(f"{currency}_reserved"),
                taken_at=taken_at,
                extra={**row.extra(), **leftovers},
                raw=raw,
            )
        )
    return snapshots


def parse_trading_fees(
    payload: Any,
    *,
    account: str,
    taken_at: datetime,
    symbols: Mapping[str, str] | None = None,
) -> list[FeeSchedule]:
    """``POST /api/v2/fees/trading/`` → fee schedules; Bitstamp's percent becomes a fraction.

    The row's ``market`` (else ``currency_pair``) names it, through ``symbols`` (url symbol →
    market, from `parse_markets`) when given: a perpetual keeps its own name (``btcusd-perp`` →
    ``BTC-USD-PERP``). A ``currency_pair`` that differs from ``market`` is kept in ``extra``, and
    a symbol that can be neither looked up nor split keeps Bitstamp's spelling as its market
    name: one unknown row never stops a snapshot."""
    endpoint = "fees/trading"
    taken_at = ensure_utc(taken_at)
    schedules = []
    for row in _ROWS.each(endpoint, payload):
        key = "market" if row.has("market") else "currency_pair"
        symbol = row.text(key)
        row.mark(key)
        if row.data.get("currency_pair", symbol) == symbol:
            row.mark("currency_pair")
        try:
            market = bitstamp_market(symbol, symbols)
        except ValueError:
            market = symbol
        fees = _ROWS.reader(endpoint, row.index, row.require("fees"))
        maker = percent_to_fraction(fees.decimal("maker"))
        taker = percent_to_fraction(fees.decimal("taker"))
        extra = row.extra()
        if fees.extra():
            extra["fees"] = fees.extra()
        schedules.append(
            FeeSchedule(
                exchange=EXCHANGE,
                account=account,
                market=market,
                maker=maker,
                taker=taker,
                taken_at=taken_at,
                extra=extra,
                raw=row.raw(),
            )
        )
    return schedules


def parse_withdrawal_fees(payload: Any, *, account: str, taken_at: datetime) -> list[WithdrawalFee]:
    """``POST /api/v2/fees/withdrawal/`` → one fee per (currency, network)."""
    endpoint = "fees/withdrawal"
    taken_at = ensure_utc(taken_at)
    return [
        WithdrawalFee(
            exchange=EXCHANGE,
            asset=row.asset("currency"),
            fee=row.decimal("fee"),
            network=row.optional_text("network"),
            taken_at=taken_at,
            account=account,
            **row.kept(),
        )
        for row in _ROWS.each(endpoint, payload)
    ]
