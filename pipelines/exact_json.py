"""Exact JSON text: Decimal numbers written digit for digit, never through a float.

One encoder (`encode`), two styles of output:

- `RAW` (`encode_json`): the lake's compact text of what an exchange sent. Input is what
  ``json.loads(text, parse_float=Decimal)`` produces; every Decimal comes back as the very text
  it was decoded from (``0E-18`` → ``0.000000000000000000``, ``-0`` stays ``-0``); a float, a
  non-finite Decimal, a non-string key or any other type is refused with an error.
- `READABLE`: `tally sql --format json`, for people and tools reading query results: ``", "``
  and ``": "`` between items, strings as `json.dumps` writes them, Decimals in fixed point
  (non-finite ones as strings), floats as `json.dumps` writes them, times in ISO 8601 and
  anything else as its text.

It imports nothing from tally, so both `pipelines` and `warehouse` may use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Style:
    """How `encode` writes what is not a container, and what it puts between items."""

    item_separator: str
    key_separator: str
    string: Callable[[str], str]
    decimal: Callable[[Decimal], str]
    key: Callable[[object], str]
    other: Callable[[object], str]  # floats and any other type


def encode(value: Any, style: Style) -> str:
    """JSON text of `value` in `style`."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return style.string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return style.decimal(value)
    if isinstance(value, Mapping):
        return (
            "{"
            + style.item_separator.join(
                [
                    f"{style.key(key)}{style.key_separator}{encode(item, style)}"
                    for key, item in value.items()
                ]
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + style.item_separator.join([encode(item, style) for item in value]) + "]"
    return style.other(value)


# --- RAW ---------------------------------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """JSON number text that decodes (with parse_float=Decimal) to the very same Decimal.

    Fixed-point whenever the exponent allows (``11170.21000000``, ``0.00000001``: ``str()`` would
    write ``1E-8``), scientific only for positive exponents, which only scientific input produces.
    """
    if not value.is_finite():
        raise ValueError(f"cannot encode {value!r} as JSON")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent > 0:
        return str(value)
    return format(value, "f")


_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == '"':
        return '\\"'
    if char == "\\":
        return "\\\\"
    return f"\\u{ord(char):04x}"


def _string_text(value: str) -> str:
    # Unlike json.dumps: non-ASCII stays as it is and every control character is \uXXXX.
    return '"' + _ESCAPED.sub(_escape, value) + '"'


def _string_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, got {type(key).__name__}")
    return _string_text(key)


def _refused(value: object) -> str:
    if isinstance(value, float):
        raise TypeError("float in a payload: decode JSON with parse_float=Decimal")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


RAW = Style(",", ":", _string_text, decimal_text, _string_key, _refused)


def encode_json(value: Any) -> str:
    """Compact JSON text of a decoded value, Decimal numbers re-emitted as their exact text."""
    return encode_flat_json(value) if _is_flat_row(value) else encode(value, RAW)


def encode_flat_json(value: dict[str, Any] | list[Any]) -> str:
    """`encode_json` of a JSON object or array of strings, integers, booleans and nulls only,
    whose keys are strings (the caller knows it is one: it is not checked)."""
    # The C encoder writes such a row as RAW does, unless a string needs an escape: it writes
    # "\n" where RAW writes "\u000a", so a backslash sends the row to `encode`.
    text = "".join(_C_ENCODER(value, 0))
    return text if "\\" not in text else encode(value, RAW)


_PLAIN = frozenset({str, int, bool, type(None)})
_STRING = frozenset({str})


def _is_flat_row(value: Any) -> bool:
    """A JSON object or array of strings, integers, booleans and nulls only (most rows of
    market data), whose object keys are strings."""
    kind = type(value)
    if kind is dict:
        return _STRING.issuperset(map(type, value)) and _PLAIN.issuperset(map(type, value.values()))
    return kind is list and _PLAIN.issuperset(map(type, value))


# `JSONEncoder.encode` builds the C encoder anew on every call; this one is built once. The
# arguments: no circular-reference markers, nothing left to `default`, non-ASCII kept, no
# indent, compact separators, keys unsorted and never skipped, NaN refused.
_C_ENCODER = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _refused, json.encoder.encode_basestring, None, ":", ",", False, False, False
)


# --- READABLE ----------------------------------------------------------------------------------


def _readable_string(value: object) -> str:
    return json.dumps(str(value))


def _fixed_point(value: Decimal) -> str:
    return format(value, "f") if value.is_finite() else json.dumps(str(value))


def _readable_other(value: object) -> str:
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, datetime | date | time):
        return json.dumps(value.isoformat())
    return json.dumps(str(value))


READABLE = Style(", ", ": ", _readable_string, _fixed_point, _readable_string, _readable_other)
