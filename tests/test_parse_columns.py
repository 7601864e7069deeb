"""The column-at-a-time path of candles and public trades (`pipelines.exchanges.columns`)
decides exactly as the row-by-row parsers do: on the recorded pages and on rows with every
quirk the row parsers accept or refuse, the records (values, `extra`, `raw`) or the error are the
same whether a page goes through the columns or row by row; and a usual page does go through
the columns. Their Decimals reach the lake through text (`pipelines.datasets`), typed as polars
would type the Decimal objects, so that a value the lake must refuse is refused as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.datasets import PUBLIC_TRADES
from pipelines.exact_json import RAW, encode
from pipelines.exchanges import bitstamp_parse as bs
from pipelines.exchanges import bitvavo_parse as bv
from pipelines.exchanges import columns
from pipelines.exchanges.records import PublicTrade
from pipelines.exchanges.values import RowParseError
from pipelines.flows.chunks import combine
from pipelines.lake import Lake, LakeError

Parse = Callable[[Any], list[Any]]

PARSERS: dict[str, Parse] = {
    "bitstamp ohlc": lambda body: bs.parse_ohlc(body, step=60, market="BTC-USD"),
    "bitstamp transactions": lambda body: bs.parse_transactions(body, market="BTC-USD"),
    "bitvavo candles": lambda body: bv.parse_candles(body, market="BTC-EUR", interval="1m"),
    "bitvavo trades": lambda body: bv.parse_public_trades(body, market="BTC-EUR"),
}
RECORDED = {
    "bitstamp ohlc": [
        "bitstamp_ohlc.json",
        "bitstamp_ohlc__step60_limit1000_zero_volume_candles.json",
    ],
    "bitstamp transactions": ["bitstamp_transactions.json"],
    "bitvavo candles": ["bitvavo_candles.json", "bitvavo_candles__sdk_readme_2019.json"],
    "bitvavo trades": ["bitvavo_trades_public.json", "bitvavo_trades__sdk_readme_2019.json"],
}

OHLC_ROW = {
    "timestamp": "1577836200",
    "open": "7164.21",
    "high": "7170.66",
    "low": "7164.21",
    "close": "7170.66",
    "volume": "0.08549090",
}
TRANSACTION_ROW = {
    "date": "1560481868",
    "tid": "90574283",
    "price": "8194.79",
    "type": "1",
    "amount": "0.00288599",
}
CANDLE_ROW = [1702354080000, "38766", "38766", "38766", "38766", "0.00012865"]
TRADE_ROW = {
    "id": "041689b3-cbb6-49ec-9964-2fb2d353dd1b",
    "timestamp": 1565672192018,
    "amount": "0.12735922",
    "price": "10147",
    "side": "sell",
}
# Values each numeric field is given in turn: what `to_decimal` accepts in any form, and what
# it refuses.
NUMBERS: list[Any] = [
    "0",
    "-0",
    "5.",
    ".5",
    "-.5",
    "007.10",
    "1e-8",
    "1.5E+3",
    "\u0661\u0662",  # Arabic-Indic digits: \d matches them, Decimal reads them
    "0.1234567890123456789",
    "123456789012345678901234567890",
    Decimal("1.50"),
    7,
    "",
    " 1",
    "+1",
    "1_0",
    "1-2",
    "1..2",
    "-",
    ".",
    "NaN",
    "Infinity",
    "0x10",
    "1E5",
    "00012",
    "0.0",
    "1 ",
    "\uff11",  # a fullwidth digit
    None,
    True,
    [],
]
# Ids whose text the raw JSON must escape (or must not), as the row path's encoder does.
IDS: list[Any] = ["\u00e9", "a/b", "\n", '"', "\\", "\x7f", "\u2028", "\ud83d\ude00", "\ud800"]
TIMES: list[Any] = ["1577836200", 1577836200, "-5", "0", "", "1.5", "+5", " 5", "5-", None, 10**18]


# What each row field is given in turn, beside the usual row.
VALUES: dict[str, dict[str | int, list[Any]]] = {
    "bitstamp ohlc": {
        **{name: NUMBERS for name in ("open", "high", "low", "close", "volume")},
        "timestamp": TIMES,
    },
    "bitstamp transactions": {
        "price": NUMBERS,
        "amount": NUMBERS,
        "date": TIMES,
        "tid": ["1", 90574283, "", None, True, Decimal("5"), "x y", *IDS],
        "type": ["0", "1", 0, 1, "2", "", None, True, Decimal("1")],
    },
    "bitvavo candles": {0: [*TIMES, str(CANDLE_ROW[0])], **dict.fromkeys(range(1, 6), NUMBERS)},
    "bitvavo trades": {
        "price": NUMBERS,
        "amount": NUMBERS,
        "timestamp": TIMES,
        "id": ["a", 5, "", None, True, [], *IDS],
        "side": ["buy", "sell", "Buy", "", None, 1, []],
    },
}
USUAL: dict[str, Any] = {
    "bitstamp ohlc": OHLC_ROW,
    "bitstamp transactions": TRANSACTION_ROW,
    "bitvavo candles": CANDLE_ROW,
    "bitvavo trades": TRADE_ROW,
}
MICRO = {**TRANSACTION_ROW, "microtimestamp": "1560481868123456"}
# Pages whose rows are not all of the usual shape.
SHAPES: dict[str, list[list[Any]]] = {
    "bitstamp ohlc": [
        [],
        [{**OHLC_ROW, "trades": "3"}],
        [{k: v for k, v in OHLC_ROW.items() if k != "volume"}],
        ["x"],
        [OHLC_ROW, None],
    ],
    "bitstamp transactions": [[MICRO], [MICRO, TRANSACTION_ROW], [{**TRANSACTION_ROW, "fee": "0"}]],
    "bitvavo candles": [[], [[*CANDLE_ROW, "7"]], [CANDLE_ROW[:5]], [{"a": 1}]],
    "bitvavo trades": [[], [{**TRADE_ROW, "extra": 1}], [TRADE_ROW, "x"]],
}


def row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every page through the row parsers."""
    monkeypatch.setattr(columns, "objects", lambda rows, keys: None)
    monkeypatch.setattr(columns, "arrays", lambda rows, length: None)


def outcome(parse: Parse, body: Any) -> tuple[str, Any]:
    try:
        return "records", parse(body)
    except (RowParseError, ValueError, OverflowError) as error:
        return type(error).__name__, str(error)


def both_ways(monkeypatch: pytest.MonkeyPatch, name: str, rows: Any) -> None:
    parse = PARSERS[name]
    body = {"data": {"pair": "BTC/USD", "ohlc": rows}} if name == "bitstamp ohlc" else rows
    fast = outcome(parse, body)
    with monkeypatch.context() as patch:
        row_by_row(patch)
        slow = outcome(parse, body)
    assert fast == slow
    if fast[0] == "records":
        assert [(r.extra, r.raw) for r in fast[1]] == [(r.extra, r.raw) for r in slow[1]]
        # Both write `raw` through the C encoder where they can: it is the Python one's text.
        assert [r.raw for r in fast[1]] == [encode(row, RAW) for row in rows]


def with_value(row: Any, field: str | int, value: Any) -> Any:
    """`row` (a JSON object, or an array by position) with `field` set to `value`."""
    if isinstance(row, list):
        return [value if position == field else item for position, item in enumerate(row)]
    return {**row, field: value}


@pytest.mark.parametrize(("name", "file"), [(n, f) for n, files in RECORDED.items() for f in files])
def test_recorded_pages_parse_alike_both_ways(
    samples_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, file: str
) -> None:
    body = json.loads((samples_dir / "recorded" / file).read_text(), parse_float=Decimal)
    both_ways(monkeypatch, name, body["data"]["ohlc"] if name == "bitstamp ohlc" else body)


@pytest.mark.parametrize(
    ("name", "field"), [(n, f) for n, fields in VALUES.items() for f in fields]
)
def test_each_value_is_read_alike_both_ways(
    monkeypatch: pytest.MonkeyPatch, name: str, field: str | int
) -> None:
    usual = USUAL[name]
    for value in VALUES[name][field]:
        changed = with_value(usual, field, value)
        both_ways(monkeypatch, name, [usual, changed])
        both_ways(monkeypatch, name, [changed])  # a page of one type where the usual has another


@pytest.mark.parametrize("name", list(SHAPES))
def test_rows_of_another_shape_are_read_alike_both_ways(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    for rows in SHAPES[name]:
        both_ways(monkeypatch, name, rows)
    both_ways(monkeypatch, name, {"not": "a list"})


def test_a_usual_page_goes_through_the_columns(samples_dir: Path) -> None:
    recorded = samples_dir / "recorded"
    rows = json.loads((recorded / "bitstamp_ohlc.json").read_text())["data"]["ohlc"]
    table = columns.objects(rows, list(OHLC_ROW))
    assert table is not None
    fields = [table[name] for name in OHLC_ROW]
    assert columns.candles("bitstamp", "BTC-USD", "1m", rows, fields, columns.SECOND)
    candles = json.loads((recorded / "bitvavo_candles.json").read_text())
    table_of_arrays = columns.arrays(candles, 6)
    assert table_of_arrays is not None
    assert columns.candles(
        "bitvavo", "BTC-EUR", "1m", candles, table_of_arrays, columns.MILLISECOND
    )
    trades = json.loads((recorded / "bitvavo_trades_public.json").read_text())
    trade_table = columns.objects(trades, list(TRADE_ROW))
    assert trade_table is not None
    sides = trade_table.pop("side")
    trade_table["time"] = trade_table.pop("timestamp")
    assert columns.public_trades(
        "bitvavo", "BTC-EUR", trades, trade_table, sides, columns.MILLISECOND
    )


# Prices as the parsers may make them: exponent forms, negative zero, 18 and 19 places, 20 and
# 21 integer digits, 38 and 39 digits in all.
PRICES = [
    "1E+2",
    "0E-18",
    "-0",
    "-0.000",
    "1E-18",
    "1E-19",
    "1.0000000000000000000",
    "7164.21",
    "99999999999999999999.999999999999999999",
    "100000000000000000000",
    "1E+37",
    "1E+38",
]


def trades(prices: list[Decimal | None]) -> list[PublicTrade]:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        PublicTrade("bitvavo", "BTC-EUR", f"t{n}", at, price, Decimal(1), "buy")  # type: ignore[arg-type]
        for n, price in enumerate(prices)
    ]


@pytest.mark.parametrize("price", PRICES)
def test_prices_are_typed_as_polars_types_their_decimals(price: str) -> None:
    for other in [None, *PRICES]:
        values = [Decimal(price), None if other is None else Decimal(other)]
        column = PUBLIC_TRADES.frame(trades(values))["price"]
        inferred = pl.Series("price", values, strict=False)
        assert (column.dtype, column.to_list()) == (inferred.dtype, inferred.to_list()), values


def test_a_price_beyond_decimal_38_18_is_refused_by_the_lake_beside_usual_pages(
    tmp_path: Path,
) -> None:
    """Pages of a chunk are concatenated to their common type first: were the usual pages
    typed DECIMAL(38,18), a 21-digit price would overflow there, not be refused by the lake."""
    pages = [trades([Decimal("100000000000000000000")]), trades([Decimal("7164.21")])]
    frames = [PUBLIC_TRADES.frame(page) for page in pages]
    dataset = PUBLIC_TRADES.dataset
    with pytest.raises(LakeError, match="exceeds DECIMAL"):
        Lake(tmp_path).land(dataset, combine(dataset, (), frames), stem="w")
