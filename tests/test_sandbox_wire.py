"""wire.py: Decimal → bare JSON number with its exact digits, str → JSON string, compact."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pipelines.sandbox.wire import dumps, fixed, spaced


def test_decimals_keep_their_exact_digits_and_strings_stay_strings():
    value = {
        "id": 7,
        "btc": Decimal("0.00000010"),
        "eur": Decimal("-11170.21000000"),
        "big": Decimal("1E+2"),
        "fee": "0.0",
        "none": None,
        "flags": [True, False],
    }
    assert dumps(value) == (
        b'{"id":7,"btc":0.00000010,"eur":-11170.21000000,"big":100,"fee":"0.0",'
        b'"none":null,"flags":[true,false]}'
    )
    assert json.loads(dumps(value), parse_float=Decimal)["btc"] == Decimal("1E-7")


def test_rows_tuples_and_text_escapes():
    assert dumps([(1, 'a"b'), []]) == b'[[1,"a\\"b"],[]]'
    assert dumps("é") == b'"\\u00e9"'


@pytest.mark.parametrize("bad", [1.5, Decimal("NaN"), Decimal("Infinity"), {1: "x"}, object()])
def test_refuses_what_has_no_exact_json_form(bad: object):
    with pytest.raises((TypeError, ValueError)):
        dumps(bad)


def test_fixed_pads_but_never_rounds():
    assert fixed(Decimal("7170.6"), 2) == "7170.60"
    assert fixed(Decimal("0"), 8) == "0.00000000"
    assert fixed(Decimal("1.123456789"), 8) == "1.123456789"
    assert fixed(Decimal("60123"), 0) == "60123"


def test_spaced_json_is_the_same_value_with_a_space_after_each_separator() -> None:
    value = {"a": "x, y: z", "b": [1, Decimal("0.10"), {"c": 'q"\\,:'}], "d": None}
    compact = dumps(value)
    written = spaced(compact)
    assert written == (b'{"a": "x, y: z", "b": [1, 0.10, {"c": "q\\"\\\\,:"}], "d": null}')
    assert json.loads(written, parse_float=Decimal) == json.loads(compact, parse_float=Decimal)
