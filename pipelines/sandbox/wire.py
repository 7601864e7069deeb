"""JSON on the wire, as the exchanges write it.

`dumps` turns a value into compact JSON bytes (no spaces, like both real APIs) where a
`Decimal` becomes a bare JSON number written with its exact digits (`Decimal("0.00000010")` →
`0.00000010`, never `1.0E-7` and never through float) and a `str` stays a JSON string. So a
world that wants a number on the wire hands over a Decimal or an int, and one that wants a quoted
amount hands over a str. The output depends only on the value: same value, same bytes.

`Raw` carries JSON text that is already encoded (a hot page's rows, formatted in one pass); `dumps`
writes it as it is, and `decoded` turns it back into the value it encodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_encode_str = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class Raw:
    """Compact JSON text, encoded by the rules above, that `dumps` copies verbatim."""

    text: str

    def decoded(self) -> Any:
        """The value this text encodes (`dumps(raw.decoded()) == dumps(raw)`)."""
        return json.loads(self.text, parse_float=Decimal)


def number_text(value: Decimal) -> str:
    """The exact positional digits of a finite Decimal (`format(d, "f")`)."""
    if not value.is_finite():
        raise ValueError(f"cannot put {value} on the wire")
    return _positional(value)


def _positional(value: Decimal) -> str:
    """`format(value, "f")` of a finite Decimal, the quick way where `str` writes the same text.

    `str` writes positional digits (exactly `format`'s) unless the exponent is positive or the
    value is tiny; then it writes an exponent, and `format` is asked instead.
    """
    text = str(value)
    if "E" in text or "e" in text:  # `e` when the context writes small capitals
        return format(value, "f")
    return text


def fixed(value: Decimal, places: int) -> str:
    """`value` as a string with at least `places` decimals, padding zeros, never rounding."""
    if not value.is_finite():  # `number_text` written out: pages call this for every value
        raise ValueError(f"cannot put {value} on the wire")
    text = _positional(value)
    if places <= 0:
        return text
    dot = text.find(".")
    if dot < 0:
        return f"{text}.{'0' * places}"
    missing = places - (len(text) - dot - 1)
    return text + "0" * missing if missing > 0 else text


# a JSON string (escapes included), or a separator outside one
_STRING_OR_SEPARATOR = re.compile(rb'"(?:[^"\\]|\\.)*"|[,:]')


def spaced(payload: bytes) -> bytes:
    """JSON with a space after every `,` and `:` between tokens (`json.dumps`' style): the same
    value, other bytes."""
    return _STRING_OR_SEPARATOR.sub(
        lambda found: found[0] if found[0][:1] == b'"' else found[0] + b" ", payload
    )


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; see the module docstring for the number rules."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("ascii")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif type(value) is Raw:
        out.append(value.text)
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Decimal):
        out.append(number_text(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, float):
        raise TypeError("floats never go on the wire: use Decimal")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")
