"""Pages of market data (candles, public trades) kept as columns, from the decoded rows to polars.

A page of the usual shape (see `columns`) is turned into one frame of its dataset's columns
without a record or a Decimal per row: money stays the exchange's own text (checked to be the
fixed-point text `Decimal` would write back, so `pipelines.datasets` casts it exactly as it casts
today's Decimals), times become integer columns, ``raw`` is assembled from the values' JSON text
(byte for byte what `encode_flat_json` writes: every value is an integer or a string that needs
no escape, every key a known field name) and ``extra`` is ``{}``. The page's records are made,
by the row parsers' own path, only when a consumer asks for them (`FrameRows`).

Anything else (a value of another type or form, a row whose keys come in another order) makes
these builders take the record path (the caller's `make`), which accepts the same values and
names the row and field of what it refuses. The checks here are stricter than the record
path's, never looser, so a page taken here would have given the very same records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar, overload

import polars as pl

from pipelines.exchanges import columns, page_text
from pipelines.exchanges.values import EPOCH, to_epoch_us

T = TypeVar("T")

TIMESTAMP = pl.Datetime("us", "UTC")
_MICROSECOND = timedelta(microseconds=1)
# the open times `EPOCH + unit × count` can take without overflowing `datetime`, in µs
_EARLIEST_US = (datetime.min.replace(tzinfo=EPOCH.tzinfo) - EPOCH) // _MICROSECOND
_LATEST_US = (datetime.max.replace(tzinfo=EPOCH.tzinfo) - EPOCH) // _MICROSECOND

# Lines of text that `format(Decimal(text), "f")` writes back exactly (no "5.", ".5", "007",
# "+1" nor exponent), and lines of integer text; each value is checked as one line.
_FIXED_POINT = re.compile(r"(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\n)*")
_INTEGER = re.compile(r"(?:-?[0-9]+\n)*")
# what a JSON string must escape (the C encoder writes any other character as it is), but
# for the line feed, which joins the values (a value holding one makes an extra line)
_ESCAPED = re.compile(r'["\\\x00-\x09\x0b-\x1f]')


class FrameRows(Sequence[T]):
    """The rows of one page as a frame of its dataset's columns (`fetched_at` aside, money as
    fixed-point text: `pipelines.datasets` types it). Used as a sequence, it is the page's
    records, made once by `make` when first asked for.

    With `complete`, the page holds only some of its columns (`held`: at least its moments) and
    `complete` makes the others from them when `frame` is first asked for; the same `complete`
    can make the columns of several such pages at once (`pipelines.datasets`, a chunk's).
    `lists` may hold some held columns as lists too (a moment as `micros` gives it): `values`
    and `micros` give those without a polars call."""

    def __init__(
        self,
        held: pl.DataFrame,
        make: Callable[[], list[T]],
        money: frozenset[str],
        complete: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
        lists: Mapping[str, list[Any]] | None = None,
    ) -> None:
        self.held = held  # every column, unless `complete` makes some of them
        self.money = money  # the columns of money text
        self.complete = complete
        # held columns also kept as lists, as `values` gives them (moments: as `micros`)
        self.lists: Mapping[str, list[Any]] = lists or {}
        self._frame = held if complete is None else None
        self._make = make
        self._records: list[T] | None = None

    @property
    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            assert self.complete is not None
            self._frame = self.complete(self.held)
        return self._frame

    def records(self) -> list[T]:
        if self._records is None:
            self._records = self._make()
        return self._records

    def __len__(self) -> int:
        return self.held.height

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
        return f"FrameRows({self.held.height} rows)"


def values(records: Sequence[Any], name: str) -> list[Any]:
    """Field `name` of every record (from the frame's column, without making the records)."""
    if not isinstance(records, FrameRows):
        return [getattr(record, name) for record in records]
    if name in records.lists and records.held[name].dtype != TIMESTAMP:
        return list(records.lists[name])
    column = _column(records, name)
    if column.dtype == TIMESTAMP:
        return [EPOCH + _MICROSECOND * us for us in column.dt.epoch("us")]
    if name in records.money:
        return list(map(Decimal, column))
    return column.to_list()


def micros(records: Sequence[Any], name: str) -> list[int]:
    """Moment `name` of every record in microseconds since the epoch (from the frame's column,
    without a datetime per row, when the records are columns)."""
    if not isinstance(records, FrameRows):
        return [to_epoch_us(getattr(record, name)) for record in records]
    if name in records.lists:
        return list(records.lists[name])
    column = _column(records, name)
    if column.dtype == TIMESTAMP:  # (its integers are microseconds: no polars query)
        return column.to_physical().to_list()
    return column.dt.epoch("us").to_list()


def _column(records: FrameRows[Any], name: str) -> pl.Series:
    """Column `name` of a page: held, else cut from its rows (`FrameRows.frame`)."""
    held = records.held
    return held[name] if name in held.columns else records.frame[name]


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

    first, end = keep.index(True), len(keep) - keep[::-1].index(True)
    if all(keep[first:end]):  # (the usual cut: rows at a page's ends dropped) a slice, no copy
        kept = records.held.slice(first, end - first)
    else:
        kept = records.held.filter(pl.Series(keep, dtype=pl.Boolean))
    return FrameRows(kept, make, records.money, records.complete)


def between(
    records: Sequence[T], name: str, low: datetime, high: datetime, *, high_included: bool
) -> Sequence[T]:
    """The records whose moment `name` lies from `low` (included) to `high` (included or not),
    still as columns when they were (compared there by polars, with no datetime per row)."""
    if not isinstance(records, FrameRows):
        return subset(
            records, [_within_range(t, low, high, high_included) for t in values(records, name)]
        )
    first, last = earliest(records, name), latest(records, name)
    if (
        first is not None
        and last is not None
        and low <= first
        and _within_range(last, low, high, high_included)
    ):
        return records  # (the usual page: no row to drop)
    moment = pl.col(name).dt.epoch("us")
    above = moment >= to_epoch_us(low)
    below = moment <= to_epoch_us(high) if high_included else moment < to_epoch_us(high)
    return subset(records, records.held.select(above & below).to_series().to_list())


def split_at(records: Sequence[T], name: str, moment: datetime) -> tuple[Sequence[T], Sequence[T]]:
    """The records whose moment `name` lies before `moment`, and the others (still as columns
    when they were)."""
    if not isinstance(records, FrameRows):
        early = [t < moment for t in values(records, name)]
        return subset(records, early), subset(records, [not flag for flag in early])
    first, last = earliest(records, name), latest(records, name)
    if last is not None and last < moment:
        return records, []  # (the usual page: all before)
    if first is not None and first >= moment:
        return [], records
    before = pl.col(name).dt.epoch("us") < to_epoch_us(moment)
    early = records.held.select(before).to_series().to_list()
    return subset(records, early), subset(records, [not flag for flag in early])


def earliest(records: Sequence[Any], name: str) -> datetime | None:
    """The earliest moment `name` of the records (by polars when they are columns); None for
    none."""
    return _extreme(records, name, latest=False)


def latest(records: Sequence[Any], name: str) -> datetime | None:
    """The latest moment `name` of the records; None for none."""
    return _extreme(records, name, latest=True)


def _extreme(records: Sequence[Any], name: str, *, latest: bool) -> datetime | None:
    # (of a column the page holds: its moments always are)
    if not isinstance(records, FrameRows):
        moments = values(records, name)
        return (max if latest else min)(moments, default=None)
    if name in records.lists and records.held[name].dtype == TIMESTAMP:  # (as micros: no query)
        found_us = (max if latest else min)(records.lists[name], default=None)
        return None if found_us is None else EPOCH + _MICROSECOND * found_us
    column = records.held[name]
    found = column.max() if latest else column.min()
    assert found is None or isinstance(found, datetime)
    return None if found is None else found.astimezone(EPOCH.tzinfo)


def _within_range(moment: datetime, low: datetime, high: datetime, high_included: bool) -> bool:
    return low <= moment and (moment <= high if high_included else moment < high)


class Sent(NamedTuple):
    """One field of a page as sent: its key in object rows (None in array rows), its values."""

    key: str | None
    values: list[Any]


def candles(
    exchange: str,
    market: str,
    interval: str,
    sent: Sequence[Sent],
    *,
    fields: Sequence[str | int],
    unit: timedelta,
    make: Callable[[], list[T]],
) -> Sequence[T]:
    """Candles of a page of rows that hold exactly the `sent` fields, in that order; `fields`
    names (by key, or by position in array rows) the open time (a count of `unit`s), open,
    high, low, close and volume. A page that does not fit the columns is `make()`'s records."""
    wire = _wire(sent)
    if wire is None:
        return make()
    time, *prices = (wire[field] for field in fields)
    if not _within(time, unit) or not all(map(_fixed_point, prices)):
        return make()
    names = ("open", "high", "low", "close", "volume")
    frame = pl.select(
        *_constants(exchange=exchange, market=market, interval=interval),
        _time(time, unit).alias("open_time"),
        *(pl.lit(price.series).alias(name) for name, price in zip(names, prices, strict=True)),
        *_json(sent, wire),
    )
    return FrameRows(frame, make, frozenset(names))


def text_candles(
    exchange: str,
    market: str,
    interval: str,
    rows: page_text.Rows,
    *,
    keys: Sequence[str] | None,
    unit: timedelta,
    make: Callable[[], list[T]],
) -> FrameRows[T]:
    """`candles` of a page read from its body (`page_text`): rows of six fields, the open time
    (a count of `unit`s of `page_text.time_form`) then open, high, low, close and volume; `keys`
    their keys in object rows, None for array rows. The page holds its rows' text and open
    times; its other columns are cut from the text when asked for (`_TextCandles`), for a
    chunk's pages at once."""
    opened = rows.texts(None if keys is None else keys[0]).cast(pl.Int64)
    held = rows.frame.hstack([(opened * (unit // _MICROSECOND)).cast(TIMESTAMP).alias("open_time")])
    complete = _TextCandles(exchange, market, interval, rows.opening, rows.closing, keys)
    return FrameRows(held, make, frozenset(_CANDLE_PRICES), complete)


_CANDLE_PRICES = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class _TextCandles:
    """The columns of candle pages read from their text (`text_candles`): any number of such
    pages of one market, interval and row layout, concatenated, at once."""

    exchange: str
    market: str
    interval: str
    opening: str
    closing: str
    keys: Sequence[str] | None

    def __call__(self, held: pl.DataFrame) -> pl.DataFrame:
        rows = page_text.Rows(held, self.opening, self.closing)
        keys = self.keys
        return held.select(
            *_constants(exchange=self.exchange, market=self.market, interval=self.interval),
            pl.col("open_time"),
            *(
                rows.value(index, 6, None if keys is None else keys[index]).alias(name)
                for index, name in enumerate(_CANDLE_PRICES, start=1)
            ),
            pl.lit("{}", pl.String).alias("extra"),
            rows.raw().alias("raw"),
        )


def text_public_trades(
    exchange: str,
    market: str,
    read: tuple[page_text.Rows, Mapping[str, list[str]]],
    *,
    keys: Sequence[str],
    names: Sequence[str],
    sides: Mapping[str, str],
    unit: timedelta,
    make: Callable[[], list[T]],
) -> FrameRows[T]:
    """`public_trades` of a page read from its body (`page_text.RowReader`): object rows of the
    fields `keys`, in that order, each the dataset column of `names` (``trade_id``,
    ``traded_at`` (a count of `unit`s of `page_text.time_form`), ``price``, ``amount``,
    ``side``: a code of `sides`, which says what each means), their ids and times captured.
    The page holds its rows' text, trade ids and times (also as lists: `FrameRows.lists`); its
    other columns are cut from the text when asked for (`_TextTrades`), for a chunk's pages at
    once."""
    rows, texts = read
    at = {name: index for index, name in enumerate(names)}
    ids = texts[keys[at["trade_id"]]]
    times = texts[keys[at["traded_at"]]]
    sent = pl.Series("traded_at", times, pl.String)
    if '"' in "".join(times):  # some sent as strings of digits (a polars query: only then)
        sent = sent.str.strip_chars('"')
    moments = sent.cast(pl.Int64) * (unit // _MICROSECOND)
    held = rows.frame.hstack([pl.Series("trade_id", ids, pl.String), moments.cast(TIMESTAMP)])
    complete = _TextTrades(
        exchange,
        market,
        rows.opening,
        rows.closing,
        tuple(keys),
        tuple(names),
        tuple(sides.items()),
    )
    lists = {"trade_id": ids, "traded_at": moments.to_list()}
    return FrameRows(held, make, frozenset({"price", "amount"}), complete, lists)


@dataclass(frozen=True)
class _TextTrades:
    """The columns of public-trade pages read from their text (`text_public_trades`): any
    number of such pages of one market and row layout, concatenated, at once."""

    exchange: str
    market: str
    opening: str
    closing: str
    keys: tuple[str, ...]
    names: tuple[str, ...]
    sides: tuple[tuple[str, str], ...]  # (code, side)

    def __call__(self, held: pl.DataFrame) -> pl.DataFrame:
        rows = page_text.Rows(held, self.opening, self.closing)
        count = len(self.keys)
        at = {name: index for index, name in enumerate(self.names)}

        def cut(name: str) -> pl.Expr:
            return rows.value(at[name], count, self.keys[at[name]])

        side = cut("side")
        # (the page's form admits no other code: codes that name their side need no mapping)
        if any(code != name for code, name in self.sides):
            side = side.replace_strict(dict(self.sides), return_dtype=pl.String)

        return held.select(
            *_constants(exchange=self.exchange, market=self.market),
            pl.col("trade_id"),
            pl.col("traded_at"),
            cut("price").alias("price"),
            cut("amount").alias("amount"),
            side.alias("side"),
            pl.lit("{}", pl.String).alias("extra"),
            rows.raw().alias("raw"),
        )


def public_trades(
    exchange: str,
    market: str,
    sent: Sequence[Sent],
    *,
    fields: Mapping[str, str | int],
    sides: Mapping[str, str],
    unit: timedelta,
    make: Callable[[], list[T]],
) -> Sequence[T]:
    """Public trades of a page whose rows hold exactly the `sent` fields; `fields` names the
    keys of ``id``, ``time`` (a count of `unit`s), ``price``, ``amount`` and ``side``, and
    `sides` what each side code means. A page that does not fit the columns is `make()`'s
    records."""
    wire = _wire(sent)
    if wire is None:
        return make()
    trade_id, time, price, amount, side = (
        wire[fields[name]] for name in ("id", "time", "price", "amount", "side")
    )
    if not _within(time, unit) or not (_fixed_point(price) and _fixed_point(amount)):
        return make()
    if side.text is None or not set(side.values).issubset(sides):
        return make()
    if trade_id.text is not None and not all(trade_id.values):  # an empty id
        return make()
    frame = pl.select(
        *_constants(exchange=exchange, market=market),
        pl.lit(trade_id.series).cast(pl.String).alias("trade_id"),
        _time(time, unit).alias("traded_at"),
        pl.lit(price.series).alias("price"),
        pl.lit(amount.series).alias("amount"),
        pl.lit(side.series).replace_strict(dict(sides), return_dtype=pl.String).alias("side"),
        *_json(sent, wire),
    )
    return FrameRows(frame, make, frozenset({"price", "amount"}))


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
    return public_trades(
        exchange,
        market,
        sent_objects(payload, table),
        fields=fields,
        sides=sides,
        unit=unit,
        make=lambda: records(named),
    )


class _Field(NamedTuple):
    """A field of a page, checked: its values as sent, as a series (strings, or integers that
    fit 64 bits), and their text when they are strings."""

    values: list[Any]
    series: pl.Series
    text: str | None


def _wire(sent: Sequence[Sent]) -> dict[str | int, _Field] | None:
    """The fields by key (object rows) or by position (array rows), when each holds only
    strings that need no escape in JSON, or only integers."""
    if not sent:
        return None
    wire: dict[str | int, _Field] = {}
    for index, field in enumerate(sent):
        try:
            text: str | None = "\n".join(field.values) + "\n"
            dtype: pl.DataType = pl.String()
        except TypeError:  # not all strings
            if not all(type(value) is int for value in field.values):
                return None
            text, dtype = None, pl.Int64()
        if text is not None and (
            text.count("\n") != len(field.values) or _ESCAPED.search(text) is not None
        ):
            return None
        try:
            series = pl.Series(field.values, dtype=dtype, strict=True)
        except (OverflowError, TypeError, ValueError, pl.exceptions.PolarsError):
            return None  # an integer beyond 64 bits
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it
            return None
        wire[index if field.key is None else field.key] = _Field(field.values, series, text)
    return wire


def _within(time: _Field, unit: timedelta) -> bool:
    """Integers (or integer text within 64 bits) whose `EPOCH + unit × count` is a `datetime`."""
    counts = time.series
    if time.text is not None:
        if _INTEGER.fullmatch(time.text) is None:
            return False
        try:
            counts = counts.cast(pl.Int64, strict=True)
        except pl.exceptions.InvalidOperationError:
            return False
    step = unit // _MICROSECOND
    low, high = counts.min(), counts.max()
    assert isinstance(low, int) and isinstance(high, int)
    return -(-_EARLIEST_US // step) <= low and high <= _LATEST_US // step


def _fixed_point(field: _Field) -> bool:
    """Text that is exactly what `format(Decimal(text), "f")` writes."""
    return field.text is not None and _FIXED_POINT.fullmatch(field.text) is not None


def _time(time: _Field, unit: timedelta) -> pl.Expr:
    return (pl.lit(time.series).cast(pl.Int64) * (unit // _MICROSECOND)).cast(TIMESTAMP)


def _constants(**constant: str) -> list[pl.Expr]:
    return [pl.lit(text, pl.String).alias(name) for name, text in constant.items()]


def _json(sent: Sequence[Sent], wire: Mapping[str | int, _Field]) -> list[pl.Expr]:
    """``extra`` (``{}``) and ``raw``: each row's compact JSON text, as `encode_flat_json`
    writes it (checked: every string needs no escape, every key is a known field name)."""
    objects = sent[0].key is not None
    parts: list[pl.Expr | str] = ["{" if objects else "["]
    for index, (key, field) in enumerate(wire.items()):
        prefix = ("," if index else "") + (f'"{key}":' if objects else "")
        if field.text is not None:
            parts += [f'{prefix}"', pl.lit(field.series), '"']
        else:
            parts += [prefix, pl.lit(field.series).cast(pl.String)]
    parts.append("}" if objects else "]")
    merged: list[pl.Expr] = []
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
            continue
        if text:
            merged.append(pl.lit(text))
        merged.append(part)
        text = ""
    merged.append(pl.lit(text))
    return [pl.lit("{}", pl.String).alias("extra"), pl.concat_str(merged).alias("raw")]


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
