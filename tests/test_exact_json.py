"""The one exact JSON encoder (`pipelines.exact_json`) in its two styles, byte for byte as each
caller wrote it before: the lake's raw text (`RAW`, `encode_json`) and `tally sql --format json`
(`READABLE`, through `warehouse.output.format_json`)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from pipelines.exact_json import RAW, READABLE, decimal_text, encode, encode_json
from pipelines.exchanges.values import encode_json as values_encode_json
from warehouse.output import format_json

# (Decimal text, RAW, READABLE)
DECIMALS = [
    ("0E-18", "0.000000000000000000", "0.000000000000000000"),
    ("-0E-18", "-0.000000000000000000", "-0.000000000000000000"),
    ("-0", "-0", "-0"),
    ("-0.000", "-0.000", "-0.000"),
    ("0.00000001", "0.00000001", "0.00000001"),
    ("1E-8", "0.00000001", "0.00000001"),
    ("11170.21000000", "11170.21000000", "11170.21000000"),
    ("1E+2", "1E+2", "100"),
    ("1.5e3", "1.5E+3", "1500"),
    ("-123456789012345678901234567890.123456789", None, None),
]


@pytest.mark.parametrize(("text", "raw", "readable"), DECIMALS)
def test_decimals_are_written_digit_for_digit(
    text: str, raw: str | None, readable: str | None
) -> None:
    value = Decimal(text)
    assert encode_json(value) == (raw or text)
    assert encode(value, READABLE) == (readable or text)


@pytest.mark.parametrize("text", ["0E-18", "-0.000", "0.00000001", "1E+2", "11170.21000000"])
def test_raw_text_decodes_to_the_very_same_decimal(text: str) -> None:
    again = json.loads(encode_json([Decimal(text)]), parse_float=Decimal)[0]
    assert again.as_tuple() == Decimal(text).as_tuple()


def test_raw_is_compact_and_keeps_non_ascii_and_escapes_controls_as_u() -> None:
    value: dict[str, object] = {
        'a"b': 'q"\\\n\t\x7fü€',
        "n": None,
        "t": True,
        "f": False,
        "l": [1, "x", []],
        "o": {},
    }
    assert encode_json(value) == (
        '{"a\\"b":"q\\"\\\\\\u000a\\u0009\x7fü€","n":null,"t":true,"f":false,"l":[1,"x",[]],"o":{}}'
    )
    assert encode(value, RAW) == encode_json(value)
    assert json.loads(encode_json(value)) == value


def test_raw_refuses_what_an_exchange_payload_cannot_hold() -> None:
    with pytest.raises(TypeError, match="parse_float"):
        encode_json({"x": 1.5})
    with pytest.raises(ValueError, match="NaN"):
        encode_json([Decimal("NaN")])
    with pytest.raises(ValueError, match="Infinity"):
        decimal_text(Decimal("-Infinity"))
    with pytest.raises(TypeError, match="keys must be strings, got int"):
        encode_json({1: "x"})
    with pytest.raises(TypeError, match="cannot encode datetime"):
        encode_json([datetime(2024, 1, 1, tzinfo=UTC)])


def test_the_exchange_values_module_writes_with_the_same_encoder() -> None:
    assert values_encode_json is encode_json


def test_readable_spaces_items_and_writes_strings_as_json_dumps() -> None:
    value = {"s": 'é"\n', 2: [True, None, 1.5, float("nan")], "d": {"x": Decimal("1.50")}}
    assert encode(value, READABLE) == (
        '{"s": "\\u00e9\\"\\n", "2": [true, null, 1.5, NaN], "d": {"x": 1.50}}'
    )


def test_readable_writes_other_values_as_text() -> None:
    values = [
        Decimal("NaN"),
        Decimal("-Infinity"),
        datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
        date(2024, 3, 1),
        time(12, 30),
        timedelta(days=1, seconds=5),
        b"x",
    ]
    assert encode(values, READABLE) == (
        '["NaN", "-Infinity", "2024-03-01T12:00:00.123000+00:00", "2024-03-01", "12:30:00", '
        '"1 day, 0:00:05", "b\'x\'"]'
    )


def test_sql_json_output() -> None:
    columns = ["asset", "amount", "n", "at", "tags"]
    rows: list[list[object]] = [
        ["BTC", Decimal("0E-18"), 1, datetime(2024, 1, 2, tzinfo=UTC), ["a", "b"]],
        [None, Decimal("-0.000000000000000001"), None, None, {"k": Decimal("2")}],
    ]
    assert format_json(columns, rows) == (
        "[\n"
        '  {"asset": "BTC", "amount": 0.000000000000000000, "n": 1, '
        '"at": "2024-01-02T00:00:00+00:00", "tags": ["a", "b"]},\n'
        '  {"asset": null, "amount": -0.000000000000000001, "n": null, "at": null, '
        '"tags": {"k": 2}}\n'
        "]"
    )
    assert format_json(columns, []) == "[]"
