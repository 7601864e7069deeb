"""Pages of candles and public trades read from the response body itself, without decoding its
JSON.

A page of candles or trades is one JSON array of up to 1440 rows of one shape. When the body
is compact (no whitespace), with its rows' keys in the usual order and every value of its usual
form, one regular expression of the whole body proves it; the body is then split at its row
separators (which no value can hold) and polars cuts each row into its values: no Python object
per value, no JSON decoding. Each row's text is its ``raw``: byte for byte the body's, and byte
for byte what the decoded path writes (`encode_flat_json`) for such a row.

Any other body (whitespace between tokens, another key order, a number with an exponent, an
empty page, an error document) is not read here: the caller decodes it, and the decoded path
accepts the same pages and names the row and field of what it refuses. Whether the exchanges send
compact JSON, and in which key order, no recording settles (their recorders re-serialised the
bodies): both forms land the same rows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from operator import itemgetter
from typing import NamedTuple

import polars as pl

# The usual form of a value, as its JSON text: money as the fixed-point text
# `format(Decimal(text), "f")` writes back (no "5.", ".5", "007", exponent); a time as a count
# (`time_form`). Neither can hold a quote, a backslash, a comma or a bracket. The quantifiers
# are possessive (they never give back what they took: nothing that may follow could be part of
# it), which spares Python's `re` its backtracking: a third less time on a page.
MONEY = rb'"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+"'
# The most digits of a time count before the year 5138 (any such time is a `datetime`): in
# seconds and in milliseconds since the epoch.
SECONDS_DIGITS = 11
MILLISECONDS_DIGITS = 14


def time_form(digits: int) -> bytes:
    """A time as a count since the epoch of at most `digits` digits: a JSON number (no leading
    zero), or a string of digits (read as the same count by the decoded path)."""
    return rb'0|[1-9][0-9]{0,%d}+|"[0-9]{1,%d}+"' % (digits - 1, digits)


def object_row(keys: Sequence[str], forms: Sequence[bytes]) -> bytes:
    """The pattern of a compact JSON object of these keys, in this order, with these forms."""
    fields = (
        b'"' + key.encode() + b'":(?:' + form + b")" for key, form in zip(keys, forms, strict=True)
    )
    return rb"\{" + b",".join(fields) + rb"\}"


def array_row(forms: Sequence[bytes]) -> bytes:
    """The pattern of a compact JSON array of values of these forms."""
    return rb"\[" + b",".join(b"(?:" + form + b")" for form in forms) + rb"\]"


def rows_of(row: bytes) -> bytes:
    """The pattern of a JSON array of one or more rows `row`."""
    return rb"\[" + row + rb"(?:," + row + rb")*+\]"


class Rows(NamedTuple):
    """The rows of a page, the text they were split from (empty for rows gathered from several
    pages) and the brackets they had: in column ``row``, each row's whole text (a `RowReader`'s
    rows), else in column ``inner`` its text inside the brackets (`split`'s)."""

    frame: pl.DataFrame
    opening: str
    closing: str
    text: bytes = b""

    @property
    def _whole(self) -> bool:
        return "row" in self.frame.columns

    def texts(self, key: str | None) -> pl.Series:
        """The text of field `key` of every row (object rows), or of its first field (array
        rows: `key` None), quotes off: found in the page's text at once, without cutting each
        row into its fields. For fields whose values are digits, letters and dashes only."""
        found = _field_pattern(key).findall(self.text)
        if len(found) != self.frame.height:  # (a `rows_of` match has one per row)
            raise ValueError(f"field {key!r}: {len(found)} values in {self.frame.height} rows")
        return pl.Series(found, dtype=pl.Binary).cast(pl.String)

    def raw(self) -> pl.Expr:
        """Each row's text."""
        if self._whole:
            return pl.col("row")
        return pl.concat_str(pl.lit(self.opening), pl.col("inner"), pl.lit(self.closing))

    def value(self, index: int, count: int, key: str | None) -> pl.Expr:
        """The text of field `index` of `count` (its key, when the rows are objects, and its
        quotes taken off)."""
        prefix = 0 if key is None else len(key) + 3  # '"key":'
        quotes = '"'
        column = "inner"
        if self._whole:  # the first field follows the opening bracket; the last, the closing
            column = "row"
            prefix += index == 0
            quotes += self.closing if index == count - 1 else ""
        field = pl.col(column).str.split_exact(",", count - 1).struct.field(f"field_{index}")
        return field.str.slice(prefix).str.strip_chars(quotes)


class RowReader:
    """Pages of compact object rows of `keys`, in that order, of the `forms` (`rows_of` of
    `object_row`), read with one regular expression: the rows (`Rows`, whole), and the text of
    the fields `captured`, by key. A captured value of a form that is always a string (a quote,
    then no alternative, then a quote) comes without its quotes; any other comes as sent (a
    time count may be a number or a string of digits).

    Each match is a row and the separator after it (a comma, or the closing bracket at the end
    of the body); the matches, which never overlap, tile the body after its opening bracket
    exactly when their lengths add up to its length: the page is then what `rows_of` of the
    same row matches. One `findall` gives the rows and the captured fields: a tuple per row,
    turned into a list per field."""

    def __init__(
        self, keys: Sequence[str], forms: Sequence[bytes], captured: Sequence[str]
    ) -> None:
        groups = [
            _captured(form) if key in captured else form
            for key, form in zip(keys, forms, strict=True)
        ]
        row = object_row(keys, groups)
        # (of the body's text: the matches are strings, as the frame and the walk want them;
        # a body that is not ASCII holds what no form takes)
        pattern = b"(" + row + rb")(?:,|\]\Z)"
        self.pattern = re.compile(pattern.decode("ascii"))
        self.captured = [key for key in keys if key in captured]
        if len(self.captured) != len(set(captured)):
            raise ValueError(f"captured keys {list(captured)} are not all among {list(keys)}")

    def read(self, body: bytes) -> tuple[Rows, dict[str, list[str]]] | None:
        """The rows of `body` and the captured fields' texts; None when `body` is no page of
        such rows (or of none)."""
        if body[:1] != b"[" or body[-1:] != b"]" or not body.isascii():
            return None
        text = body.decode("ascii")
        found = self.pattern.findall(text, 1)
        if not found:
            return None
        if not self.captured:  # (one group: strings, not tuples)
            rows, texts = found, {}
        else:
            rows = list(map(itemgetter(0), found))
            texts = {
                key: list(map(itemgetter(at), found)) for at, key in enumerate(self.captured, 1)
            }
        if sum(map(len, rows)) + len(rows) != len(text) - 1:
            return None
        frame = pl.DataFrame([pl.Series("row", rows, pl.String)])
        return Rows(frame, "{", "}", body), texts


def _captured(form: bytes) -> bytes:
    """`form` with its value as a group: inside the quotes of a form that is always a string."""
    inner = form[1:-1]
    if form[:1] == b'"' == form[-1:] and b"|" not in inner and b'"' not in inner:
        return b'"(' + inner + b')"'
    return b"(" + form + b")"


def split(rows_text: bytes) -> Rows:
    """The rows of `rows_text`, a JSON array of compact rows that a `rows_of` pattern matched
    (so no value holds a separator)."""
    opening, closing = rows_text[1:2].decode(), rows_text[-2:-1].decode()
    inner = rows_text[2:-2].decode().split(closing + "," + opening)
    return Rows(pl.DataFrame([pl.Series("inner", inner, pl.String)]), opening, closing, rows_text)


@functools.cache
def _field_pattern(key: str | None) -> re.Pattern[bytes]:
    # a row's first value follows its opening bracket; a key's value follows the key (no value
    # of a `rows_of` match holds a bracket, a quote or a colon)
    if key is None:
        return re.compile(rb'\["?([0-9A-Za-z-]+)')
    return re.compile(b'"' + re.escape(key.encode()) + rb'":"?([0-9A-Za-z-]+)')


@functools.cache
def _text_field_pattern(key: str) -> re.Pattern[str]:
    return re.compile(_field_pattern(key).pattern.decode("ascii"))


def compiled(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern, re.DOTALL)
