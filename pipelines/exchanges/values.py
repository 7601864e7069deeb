"""Exact values from exchange JSON: Decimal amounts, UTC times, names, and compact raw text.

Every payload is decoded with ``json.loads(text, parse_float=Decimal)``; the helpers here accept
exactly what that produces (``Decimal``, ``int``, ``str``, ``bool``, ``None``, lists, dicts) and
never go through ``float``. Converters raise ``ValueError``; parsers wrap it in `RowParseError`
through `RowReader`, which names the exchange, the endpoint and the row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict

from pipelines.exact_json import encode_json

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Candle intervals in the common notation (a count and a unit), with their length in seconds.
_UNIT_SECONDS: Mapping[str, int] = {"m": 60, "h": 3600, "d": 86400}
INTERVAL_SECONDS: Mapping[str, int] = {
    name: int(name[:-1]) * _UNIT_SECONDS[name[-1]]
    for name in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d")
}
# The intervals each exchange serves candles in (docs/exchanges.md): Bitstamp's OHLC `step`s (no 8h)
# and Bitvavo's candle `interval`s (no 3m, no 3d). The clients and `tally.toml` read these.
BITSTAMP_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "3d")
BITVAVO_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")

_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INTEGER = re.compile(r"-?\d+\Z")
_BITSTAMP_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\Z"
)


class RowParseError(ValueError):
    """A response row (or the response itself) does not have the shape the parser expects."""

    def __init__(self, exchange: str, endpoint: str, row_index: int | None, reason: str) -> None:
        self.exchange = exchange
        self.endpoint = endpoint
        self.row_index = row_index
        self.reason = reason
        where = "response" if row_index is None else f"row {row_index}"
        super().__init__(f"{exchange} {endpoint}: {where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.exchange, self.endpoint, self.row_index, self.reason))


def describe(value: object) -> str:
    """A short, safe rendering of a JSON value for error messages."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- numbers ---------------------------------------------------------------------------------


def to_decimal(value: object) -> Decimal:
    """A Decimal from a JSON number (``int`` or ``parse_float`` Decimal) or a numeric string."""
    if type(value) is str and _NUMBER.match(value):  # the usual case first
        return Decimal(value)
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {describe(value)}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {describe(value)}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        if _NUMBER.match(value):
            return Decimal(value)
        raise ValueError(f"not a number: {describe(value)}")
    if isinstance(value, float):
        raise ValueError("got a float: decode JSON with parse_float=Decimal")
    raise ValueError(f"expected a number, got {describe(value)}")


def to_int(value: object) -> int:
    """An integer from a JSON integer or a string of digits (exchanges send both)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.match(value):
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise ValueError(f"expected an integer, got {describe(value)}")


def to_id(value: object) -> str:
    """An identifier as text: strings as sent, integers in full (a 16-digit id stays exact)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected an id (string or integer), got {describe(value)}")


def percent_to_fraction(value: Decimal) -> Decimal:
    """0.15 (percent) → 0.0015, exactly (a shift of the exponent, no rounding context)."""
    return value.scaleb(-2)


# --- times -----------------------------------------------------------------------------------


def from_epoch_seconds(value: object) -> datetime:
    return EPOCH + timedelta(seconds=to_int(value))


def from_epoch_ms(value: object) -> datetime:
    return EPOCH + timedelta(milliseconds=to_int(value))


def from_epoch_us(value: object) -> datetime:
    return EPOCH + timedelta(microseconds=to_int(value))


def to_epoch_us(moment: datetime) -> int:
    """`moment` (aware) as microseconds since the epoch: `from_epoch_us`'s inverse."""
    return (moment - EPOCH) // _MICROSECOND


_MICROSECOND = timedelta(microseconds=1)


def parse_bitstamp_datetime(value: object) -> datetime:
    """``"YYYY-MM-DD HH:MM:SS[.ffffff]"``, naive on the wire, UTC in fact."""
    if not isinstance(value, str):
        raise ValueError(f"expected a datetime string, got {describe(value)}")
    match = _BITSTAMP_DATETIME.match(value)
    if match is None:
        raise ValueError(f"not a 'YYYY-MM-DD HH:MM:SS[.ffffff]' datetime: {describe(value)}")
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
    )


def parse_iso_datetime(value: object) -> datetime:
    """An ISO 8601 timestamp that carries its offset (``Z`` or ``+hh:mm``), as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {describe(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {describe(value)}") from None
    if moment.tzinfo is None:
        raise ValueError(f"ISO 8601 timestamp without an offset: {describe(value)}")
    return moment.astimezone(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """A tz-aware datetime converted to UTC; a naive one is refused (its zone is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass a tz-aware UTC time")
    return moment.astimezone(UTC)


# --- names -----------------------------------------------------------------------------------


def normalize_asset(code: object) -> str:
    """``"btc"`` → ``"BTC"``, ``"1inch"`` → ``"1INCH"``."""
    if not isinstance(code, str) or not code or code != code.strip() or " " in code:
        raise ValueError(f"not an asset code: {describe(code)}")
    return code.upper()


def market_name(base: str, quote: str) -> str:
    return f"{normalize_asset(base)}-{normalize_asset(quote)}"


def split_market(market: object) -> tuple[str, str]:
    """``"BTC-EUR"`` → ``("BTC", "EUR")`` (also accepts lower case)."""
    if not isinstance(market, str):
        raise ValueError(f"not a market: {describe(market)}")
    parts = market.split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"not a BASE-QUOTE market: {describe(market)}")
    return normalize_asset(parts[0]), normalize_asset(parts[1])


def interval_name(interval: str) -> str:
    if interval not in INTERVAL_SECONDS:
        raise ValueError(f"unknown candle interval {interval!r}")
    return interval


def composite_id(*parts: object) -> str:
    """A deterministic key for rows that have no id of their own."""
    return "|".join("" if part is None else str(part) for part in parts)


def clean_txid(value: str | None) -> str | None:
    """A transaction hash without the whitespace exchanges sometimes leave in it."""
    if value is None:
        return None
    return "".join(value.split()) or None


# --- rows ------------------------------------------------------------------------------------


class Kept(TypedDict):
    """What every record keeps of its row: the fields it does not name, and the row's text."""

    extra: dict[str, Any]
    raw: str


class RowReader:
    """Typed access to one JSON object of a response; every failure is a `RowParseError`.

    Keys read through it are remembered, so `extra()` holds exactly the fields that were not.
    """

    __slots__ = ("_used", "data", "endpoint", "exchange", "index")

    def __init__(self, exchange: str, endpoint: str, index: int | None, value: object) -> None:
        self.exchange = exchange
        self.endpoint = endpoint
        self.index = index
        if not isinstance(value, dict):
            raise self.error(f"expected a JSON object, got {describe(value)}")
        self.data: dict[str, Any] = value
        self._used: set[str] = set()

    def error(self, reason: str) -> RowParseError:
        return RowParseError(self.exchange, self.endpoint, self.index, reason)

    def has(self, key: str) -> bool:
        return key in self.data

    def mark(self, *keys: str) -> None:
        self._used.update(keys)

    def get(self, key: str) -> Any:
        """The value, or None when the key is absent, null or an empty string."""
        self._used.add(key)
        value = self.data.get(key)
        return None if value == "" else value

    def require(self, key: str) -> Any:
        self._used.add(key)
        value = self.data.get(key)
        if value is None:
            raise self.error(f"missing field {key!r}")
        return value

    def convert(self, key: str, value: object, converter: Any) -> Any:
        try:
            return converter(value)
        except ValueError as exc:
            raise self.error(f"field {key!r}: {exc}") from None

    def decimal(self, key: str) -> Decimal:
        return self.convert(key, self.require(key), to_decimal)

    def optional_decimal(self, key: str) -> Decimal | None:
        value = self.get(key)
        return None if value is None else self.convert(key, value, to_decimal)

    def integer(self, key: str) -> int:
        return self.convert(key, self.require(key), to_int)

    def optional_integer(self, key: str) -> int | None:
        value = self.get(key)
        return None if value is None else self.convert(key, value, to_int)

    def text(self, key: str) -> str:
        value = self.require(key)
        if not isinstance(value, str) or not value:
            raise self.error(f"field {key!r}: expected a non-empty string, got {describe(value)}")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(f"field {key!r}: expected a string, got {describe(value)}")
        return value

    def identifier(self, key: str) -> str:
        return self.convert(key, self.require(key), to_id)

    def optional_identifier(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else self.convert(key, value, to_id)

    def boolean(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self.error(f"field {key!r}: expected true/false, got {describe(value)}")

    def asset(self, key: str) -> str:
        return self.convert(key, self.require(key), normalize_asset)

    def optional_asset(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else self.convert(key, value, normalize_asset)

    def extra(self) -> dict[str, Any]:
        if self.data.keys() <= self._used:
            return {}
        return {key: value for key, value in self.data.items() if key not in self._used}

    def raw(self) -> str:
        return encode_json(self.data)

    def kept(self) -> Kept:
        """`extra` and `raw` for the record read from this row: unpack it last (``**row.kept()``),
        after every field has been read, so that `extra` holds only what was not."""
        return Kept(extra=self.extra(), raw=self.raw())


def rows_of(exchange: str, endpoint: str, payload: object) -> list[Any]:
    """The payload as a list of rows, or a RowParseError naming the response."""
    if not isinstance(payload, list):
        raise RowParseError(
            exchange, endpoint, None, f"expected a JSON array, got {describe(payload)}"
        )
    return payload
