"""Whole pages of market data (candles, public trades) converted a column at a time.

A page of candles or public trades is up to thousands of rows of one regular shape. Read row by
row (`RowReader`), every value costs several Python calls; here each column is taken out whole,
checked once and converted by a C-level ``map``. Each function returns exactly what the row
parsers make of the same values, or None as soon as anything is not of the usual shape (a row
with a missing or unknown field, a number written with an exponent, a value of another type):
the caller then parses that page row by row, which accepts the same values and names the row
and field of what it refuses. So this path only ever decides faster, never differently.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import repeat
from typing import Any, TypeVar

from pipelines.exact_json import encode_flat_json
from pipelines.exchanges.records import Candle, PublicTrade, Side
from pipelines.exchanges.values import EPOCH

T = TypeVar("T")
R = TypeVar("R")

SECOND = timedelta(seconds=1)
MILLISECOND = timedelta(milliseconds=1)

# Plain decimal and integer text is made of these characters only; `Decimal` and `int` then
# accept exactly what `to_decimal` and `to_int` accept (an optional leading minus, digits, at
# most one point), and refuse the rest ("1-2", "1..2", "-", "").
_DECIMAL_CHARACTERS = re.compile(r"[0-9.\-]*")
_INTEGER_CHARACTERS = re.compile(r"[0-9\-]*")


def objects(rows: Sequence[Any], keys: Collection[str]) -> dict[str, list[Any]] | None:
    """The columns of `rows` when each is a JSON object with exactly the fields `keys`."""
    wanted = frozenset(keys)
    if not rows or not all(type(row) is dict and row.keys() == wanted for row in rows):
        return None
    return {key: [row[key] for row in rows] for key in keys}


def arrays(rows: Sequence[Any], length: int) -> list[list[Any]] | None:
    """The columns of `rows` when each is a JSON array of exactly `length` values."""
    if not rows or not all(type(row) is list and len(row) == length for row in rows):
        return None
    return [list(column) for column in zip(*rows, strict=True)]


def decimals(values: list[Any]) -> list[Decimal] | None:
    """Decimals of numeric strings written without an exponent (`to_decimal`'s usual case)."""
    return _converted(values, _DECIMAL_CHARACTERS, Decimal, InvalidOperation)


def integers(values: list[Any]) -> list[int] | None:
    """Integers from JSON integers or from strings of digits (`to_int`'s usual cases)."""
    if all(type(value) is int for value in values):
        return values
    return _converted(values, _INTEGER_CHARACTERS, int, ValueError)


def times(values: list[Any], unit: timedelta) -> list[datetime] | None:
    """UTC times `values` × `unit` after the epoch (`from_epoch_seconds`, `from_epoch_ms`)."""
    counts = integers(values)
    if counts is None:
        return None
    try:
        return [EPOCH + unit * count for count in counts]
    except OverflowError:  # out of datetime's range: the row parser says so, naming the row
        return None


def identifiers(values: list[Any]) -> list[str] | None:
    """Ids as `to_id` makes them: non-empty strings as sent, integers in full."""
    if all(type(value) is str and value for value in values):
        return values
    if all(type(value) is int for value in values):
        return list(map(str, values))
    return None


def among(values: list[Any], allowed: frozenset[str]) -> bool:
    """True when every value is one of the strings `allowed`."""
    return _joined(values) is not None and allowed.issuperset(values)


def candles(
    exchange: str,
    market: str,
    interval: str,
    rows: Sequence[Any],
    fields: Sequence[list[Any]],
    unit: timedelta,
) -> list[Candle] | None:
    """Candles of rows that carry nothing but their `fields`: the columns of open time (a count
    of `unit`s), open, high, low, close and volume."""
    open_times = times(fields[0], unit)
    prices = [column for column in map(decimals, fields[1:]) if column is not None]
    if open_times is None or len(prices) != 5:
        return None
    names = ("open", "high", "low", "close", "volume")
    table: dict[str, list[Any] | str] = dict(zip(names, prices, strict=True))
    table.update(exchange=exchange, market=market, interval=interval, open_time=open_times)
    return _records(Candle, rows, table)


def public_trades(
    exchange: str,
    market: str,
    rows: Sequence[Any],
    fields: dict[str, list[Any]],
    sides: list[Side] | None,
    unit: timedelta,
) -> list[PublicTrade] | None:
    """Public trades of rows that carry nothing but their `fields` (columns named ``id``,
    ``time`` (a count of `unit`s), ``price`` and ``amount``) and the taker `sides`."""
    trade_ids = identifiers(fields["id"])
    traded_at = times(fields["time"], unit)
    prices = decimals(fields["price"])
    amounts = decimals(fields["amount"])
    if trade_ids is None or traded_at is None or prices is None or amounts is None or sides is None:
        return None
    table: dict[str, list[Any] | str] = {
        "exchange": exchange,
        "market": market,
        "trade_id": trade_ids,
        "traded_at": traded_at,
        "price": prices,
        "amount": amounts,
        "side": sides,
    }
    return _records(PublicTrade, rows, table)


def _records(
    record: Callable[..., R], rows: Sequence[Any], table: Mapping[str, list[Any] | str]
) -> list[R]:
    """One `record` per row: each field from `table` (a column, or one text for every row),
    nothing in ``extra``, the row's text in ``raw`` (every value of the rows was found to be a
    string or an integer)."""
    columns: list[Iterable[Any]] = []
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        if field.name == "extra":
            columns.append([{} for _ in rows])
        elif field.name == "raw":
            columns.append(map(encode_flat_json, rows))
        else:
            column = table[field.name]
            columns.append(repeat(column) if isinstance(column, str) else column)
    return list(map(record, *columns))


def _converted(
    values: list[Any],
    characters: re.Pattern[str],
    convert: Callable[[str], T],
    refusal: type[Exception],
) -> list[T] | None:
    """`convert` of each value, when all are strings of `characters` that it accepts."""
    text = _joined(values)
    if text is None or characters.fullmatch(text) is None:
        return None
    try:
        return list(map(convert, values))
    except refusal:
        return None


def _joined(values: list[Any]) -> str | None:
    try:
        return "".join(values)
    except TypeError:  # not all strings
        return None
