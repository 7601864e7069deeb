"""Pages of market data (candles, public trades) kept as columns, from the decoded rows to polars.

A page of the usual shape (see `columns`) is turned into one frame of its dataset's columns
without a record or a Decimal per row: money stays the exchange's own text (checked to be the
fixed-point text `Decimal` would write back, so `pipelines.datasets` casts it exactly as it casts
today's Decimals), times become integer columns, ``raw`` is assembled from the values' JSON text
(byte for byte what `encode_flat_json` writes: every value is an integer or a string that needs
no escape, every key a known field name) and ``extra`` is ``{}``. The page's records are made,
by the row parsers' own path, only when a consumer asks for them (`FrameRows`).

Anything else (a value of another type or form, a row whose keys come in another order) makes
these builders return None: the caller then takes the record path, which accepts the same values
and names the row and field of what it refuses. The checks here are stricter than the record
path's, never looser, so a page taken here would have given the very same records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar, overload

import polars as pl

from pipelines.exchanges import columns
from pipelines.exchanges.values import EPOCH

T = TypeVar("T")

TIMESTAMP = pl.Datetime("us", "UTC")
_MICROSECOND = timedelta(microseconds=1)
# the open times `EPOCH + unit × count` can take without overflowing `datetime`, in µs
_EARLIEST_US = (datetime.min.replace(tzinfo=EPOCH.tzinfo) - EPOCH) // _MICROSECOND
_LATEST_US = (datetime.max.replace(tzinfo=EPOCH.tzinfo) - EPOCH) // _MICROSECOND

# `format(Decimal(text), "f") == text` exactly for such text: no "5.", ".5", "007" or "+1".
_FIXED_POINT = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_INTEGER = r"^-?[0-9]+$"
# what a JSON string must escape (the C encoder writes any other character as it is)
_ESCAPED = r'["\\\x00-\x1f]'


class FrameRows(Sequence[T]):
    """The rows of one page as a frame of its dataset's columns (`fetched_at` aside, money as
    fixed-point text: `pipelines.datasets` types it). Used as a sequence, it is the page's
    records, made once by `make` when first asked for."""

    def __init__(
        self, frame: pl.DataFrame, make: Callable[[], list[T]], money: frozenset[str]
    ) -> None:
        self.frame = frame
        self.money = money  # the columns of money text
        self._make = make
        self._records: list[T] | None = None

    def records(self) -> list[T]:
        if self._records is None:
            self._records = self._make()
        return self._records

    def __len__(self) -> int:
        return self.frame.height

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.records()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self.records() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FrameRows({self.frame.height} rows)"


def values(records: Sequence[Any], name: str) -> list[Any]:
    """Field `name` of every record (from the frame's column, without making the records)."""
    if not isinstance(records, FrameRows):
        return [getattr(record, name) for record in records]
    column = records.frame[name]
    if column.dtype == TIMESTAMP:
        return [EPOCH + _MICROSECOND * us for us in column.dt.epoch("us")]
    if name in records.money:
        return list(map(Decimal, column))
    return column.to_list()


def subset(records: Sequence[T], keep: Sequence[bool]) -> Sequence[T]:
    """The records whose `keep` is True, still as columns when they were."""
    if not isinstance(records, FrameRows):
        return [record for record, kept in zip(records, keep, strict=True) if kept]
    if all(keep):
        return records
    if not any(keep):
        return []

    def make() -> list[T]:
        return [record for record, kept in zip(records, keep, strict=True) if kept]

    return FrameRows(records.frame.filter(pl.Series(keep, dtype=pl.Boolean)), make, records.money)


class Sent(NamedTuple):
    """One field of a page as sent: its key in object rows (None in array rows), its values."""

    key: str | None
    values: list[Any]


class _Wire(NamedTuple):
    """A checked field: its values (strings or Int64) and their JSON text."""

    series: pl.Series
    json: pl.Expr


_PRICES = ("open", "high", "low", "close", "volume")
_CANDLE_MONEY = frozenset(_PRICES)
_TRADE_MONEY = frozenset({"price", "amount"})


def candles(
    exchange: str,
    market: str,
    interval: str,
    sent: Sequence[Sent],
    *,
    fields: Sequence[str | int],
    unit: timedelta,
    make: Callable[[], list[T]],
) -> FrameRows[T] | None:
    """Candles of a page of rows that hold exactly the `sent` fields, in that order; `fields`
    names (by key, or by position in array rows) the open time (a count of `unit`s), open,
    high, low, close and volume."""
    wire = _checked(sent) if sent else None
    if wire is None:
        return None
    at = _fields(sent, wire)
    open_time = _times(at[fields[0]].series, unit)
    prices = {
        name: _money(at[field].series) for name, field in zip(_PRICES, fields[1:], strict=True)
    }
    if open_time is None or any(price is None for price in prices.values()):
        return None
    constant = {"exchange": exchange, "market": market, "interval": interval}
    frame = pl.DataFrame({"open_time": open_time, **prices}).with_columns(
        _raw(wire, sent), *_constants(constant)
    )
    return FrameRows(_ordered(frame, constant), make, _CANDLE_MONEY)


def public_trades(
    exchange: str,
    market: str,
    sent: Sequence[Sent],
    *,
    fields: Mapping[str, str | int],
    sides: Mapping[str, str],
    unit: timedelta,
    make: Callable[[], list[T]],
) -> FrameRows[T] | None:
    """Public trades of a page whose rows hold exactly the `sent` fields; `fields` names the
    keys of ``id``, ``time`` (a count of `unit`s), ``price``, ``amount`` and ``side``, and
    `sides` what each side code means."""
    wire = _checked(sent) if sent else None
    if wire is None:
        return None
    at = _fields(sent, wire)
    ids, code = at[fields["id"]].series, at[fields["side"]].series
    traded_at = _times(at[fields["time"]].series, unit)
    price, amount = _money(at[fields["price"]].series), _money(at[fields["amount"]].series)
    if ids.dtype == pl.String and (ids.str.len_bytes() == 0).any():
        return None
    if traded_at is None or price is None or amount is None or code.dtype != pl.String:
        return None
    if not code.is_in(list(sides)).all():
        return None
    constant = {"exchange": exchange, "market": market}
    frame = pl.DataFrame(
        {
            "trade_id": ids.cast(pl.String),
            "traded_at": traded_at,
            "price": price,
            "amount": amount,
            "side": code.replace_strict(dict(sides), return_dtype=pl.String),
        }
    ).with_columns(_raw(wire, sent), *_constants(constant))
    return FrameRows(_ordered(frame, constant), make, _TRADE_MONEY)


def trade_page(
    exchange: str,
    market: str,
    payload: Any,
    *,
    fields: Mapping[str, str],
    sides: Mapping[str, str],
    unit: timedelta,
    records: Callable[[dict[str, list[Any]] | None], list[T]],
) -> Sequence[T]:
    """The public trades of a page: as columns (`public_trades`) when its rows are objects with
    exactly the keys `fields` names, else `records(columns)`: the columns by the names of
    `fields` (``id``, ``time``, ...), or None when the rows are not such objects."""
    table = columns.objects(payload, fields.values()) if isinstance(payload, list) else None
    if table is None:
        return records(None)
    named = {name: table[key] for name, key in fields.items()}
    page = public_trades(
        exchange,
        market,
        sent_objects(payload, table),
        fields=fields,
        sides=sides,
        unit=unit,
        make=lambda: records(named),
    )
    return records(named) if page is None else page


def _fields(sent: Sequence[Sent], wire: Sequence[_Wire]) -> dict[str | int, _Wire]:
    """The checked fields by key (object rows) or by position (array rows)."""
    return {
        index if column.key is None else column.key: field
        for index, (column, field) in enumerate(zip(sent, wire, strict=True))
    }


def _checked(sent: Sequence[Sent]) -> list[_Wire] | None:
    """Each field as a series of strings that JSON writes unescaped, or of 64-bit integers."""
    wire = []
    for field in sent:
        try:
            "".join(field.values)
        except TypeError:  # not all strings
            if not all(type(value) is int for value in field.values):
                return None
            try:
                series = pl.Series(field.values, dtype=pl.Int64, strict=True)
            except (OverflowError, TypeError, ValueError, pl.exceptions.PolarsError):
                return None
            wire.append(_Wire(series, pl.lit(series.cast(pl.String))))
            continue
        try:
            series = pl.Series(field.values, dtype=pl.String)
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it
            return None
        if series.str.contains(_ESCAPED).any():
            return None
        wire.append(_Wire(series, pl.concat_str(pl.lit('"'), pl.lit(series), pl.lit('"'))))
    return wire


def _times(series: pl.Series, unit: timedelta) -> pl.Series | None:
    """`EPOCH + unit × count` of integers or integer text, None when out of `datetime`'s range."""
    if series.dtype == pl.String:
        if not series.str.contains(_INTEGER).all():
            return None
        try:
            series = series.cast(pl.Int64, strict=True)
        except pl.exceptions.InvalidOperationError:
            return None
    step = unit // _MICROSECOND
    low, high = series.min(), series.max()
    assert isinstance(low, int) and isinstance(high, int)
    if low * step < _EARLIEST_US or high * step > _LATEST_US:
        return None
    return (series * step).cast(TIMESTAMP)


def _money(series: pl.Series) -> pl.Series | None:
    """Fixed-point text that is exactly what `format(Decimal(text), "f")` writes."""
    if series.dtype != pl.String or not series.str.contains(_FIXED_POINT).all():
        return None
    return series


def _raw(wire: Sequence[_Wire], sent: Sequence[Sent]) -> pl.Expr:
    """Each row's compact JSON text, as `encode_flat_json` writes it."""
    objects = sent[0].key is not None
    parts: list[pl.Expr] = [pl.lit("{" if objects else "[")]
    for index, (field, column) in enumerate(zip(wire, sent, strict=True)):
        prefix = "," if index else ""
        if column.key is not None:
            prefix += f'"{column.key}":'
        if prefix:
            parts.append(pl.lit(prefix))
        parts.append(field.json)
    parts.append(pl.lit("}" if objects else "]"))
    return pl.concat_str(parts).alias("raw")


def _constants(constant: Mapping[str, str]) -> list[pl.Expr]:
    return [pl.lit(text, pl.String).alias(name) for name, text in constant.items()] + [
        pl.lit("{}", pl.String).alias("extra")
    ]


def _ordered(frame: pl.DataFrame, constant: Mapping[str, str]) -> pl.DataFrame:
    """The dataset's column order: the constants first, `extra` and `raw` last."""
    middle = [name for name in frame.columns if name not in constant and name not in _LAST]
    return frame.select(*constant, *middle, *_LAST)


_LAST = ("extra", "raw")


def sent_objects(rows: Sequence[Mapping[str, Any]], table: Mapping[str, list[Any]]) -> list[Sent]:
    """The fields of object rows (`columns.objects`) in the key order of the rows, or none
    when the rows do not all list their keys in one order."""
    order = tuple(rows[0])
    if list(map(tuple, rows)).count(order) != len(rows):
        return []
    return [Sent(key, table[key]) for key in order]


def sent_arrays(table: Sequence[list[Any]]) -> list[Sent]:
    """The fields of array rows (`columns.arrays`), by position."""
    return [Sent(None, column) for column in table]
