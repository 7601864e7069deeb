"""The column-at-a-time path of candles and public trades (`pipelines.exchanges.columns`)
decides exactly as the row-by-row parsers do: on the recorded pages and on rows with every
quirk the row parsers accept or refuse, the records (values, `extra`, `raw`) or the error are the
same whether a page goes through the columns or row by row; and a usual page does go through
the columns. Their Decimals reach the lake through text (`pipelines.datasets`), typed as polars
would type the Decimal objects, so that a value the lake must refuse is refused as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.datasets import CANDLES, PUBLIC_TRADES, RecordDataset
from pipelines.exact_json import RAW, encode, encode_json
from pipelines.exchanges import bitstamp_parse as bs
from pipelines.exchanges import bitvavo_parse as bv
from pipelines.exchanges import columns, frames, page_text
from pipelines.exchanges.records import PublicTrade
from pipelines.exchanges.values import RowParseError
from pipelines.flows.chunks import combine
from pipelines.lake import Lake, LakeError

Parse = Callable[[Any], Sequence[Any]]

PARSERS: dict[str, Parse] = {
    "bitstamp ohlc": lambda body: bs.parse_ohlc(body, step=60, market="BTC-USD"),
    "bitstamp transactions": lambda body: bs.parse_transactions(body, market="BTC-USD"),
    "bitvavo candles": lambda body: bv.parse_candles(body, market="BTC-EUR", interval="1m"),
    "bitvavo trades": lambda body: bv.parse_public_trades(body, market="BTC-EUR"),
}
DATASETS: dict[str, RecordDataset] = {
    "bitstamp ohlc": CANDLES,
    "bitstamp transactions": PUBLIC_TRADES,
    "bitvavo candles": CANDLES,
    "bitvavo trades": PUBLIC_TRADES,
}
FETCHED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
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
CANDLE_ROW: list[Any] = [1702354080000, "38766", "38766", "38766", "38766", "0.00012865"]
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
        same_frames(name, fast[1], slow[1])


def same_frames(name: str, fast: Sequence[Any], slow: Sequence[Any]) -> None:
    """The lake frame of a page kept as columns is the one its records make: same columns,
    dtypes (the scale of each money column included), values and `raw` bytes."""
    source = DATASETS[name]
    # a naive fetch time is UTC to the record path: the columns leave it to that path
    for fetched_at in (FETCHED, FETCHED.replace(tzinfo=None), None):
        try:
            expected = source.frame(list(slow), fetched_at=fetched_at)
        except UnicodeEncodeError:  # a lone surrogate: polars holds no such text either way
            assert not isinstance(fast, frames.FrameRows)
            continue
        made = source.frame(fast, fetched_at=fetched_at)
        assert_frame_equal(made, expected, check_exact=True)
        assert made.schema == expected.schema


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


OF_THE_USUAL_SHAPE = [
    (name, file)
    for name, files in RECORDED.items()
    for file in files
    if file != "bitvavo_trades__sdk_readme_2019.json"  # account trades: more fields
]


@pytest.mark.parametrize(("name", "file"), OF_THE_USUAL_SHAPE)
def test_recorded_pages_come_as_columns(samples_dir: Path, name: str, file: str) -> None:
    body = json.loads((samples_dir / "recorded" / file).read_text(), parse_float=Decimal)
    assert isinstance(PARSERS[name](body), frames.FrameRows)


def body_of(name: str, rows: list[Any]) -> Any:
    return {"data": {"pair": "BTC/USD", "ohlc": rows}} if name == "bitstamp ohlc" else rows


MONEY_FIELD: dict[str, str | int] = {
    "bitstamp ohlc": "open",
    "bitstamp transactions": "price",
    "bitvavo candles": 4,
    "bitvavo trades": "amount",
}
# Text `format(Decimal(text), "f")` writes back as it is: cast as sent, like today's Decimals.
FIXED_POINT = ["0", "-0", "-0.000", "0.0", "1.500", "7164.21", "0.000000000000000001"]
# Text it writes otherwise, values of other types, ids that JSON escapes: left to the records.
ODD_MONEY: list[Any] = ["5.", ".5", "-.5", "007.10", "00012", "1e-8", "1E5", Decimal("1.5"), 7]


@pytest.mark.parametrize("name", list(USUAL))
def test_only_text_decimal_writes_back_as_sent_goes_through_the_columns(name: str) -> None:
    usual, field = USUAL[name], MONEY_FIELD[name]
    for value in FIXED_POINT:
        page = PARSERS[name](body_of(name, [usual, with_value(usual, field, value)]))
        assert isinstance(page, frames.FrameRows), value
    for value in ODD_MONEY:
        page = PARSERS[name](body_of(name, [usual, with_value(usual, field, value)]))
        assert not isinstance(page, frames.FrameRows), value


def test_odd_pages_take_the_record_path() -> None:
    reordered = {key: OHLC_ROW[key] for key in reversed(OHLC_ROW)}
    odd: list[tuple[str, list[Any]]] = [
        ("bitstamp ohlc", [OHLC_ROW, reordered]),  # `raw` keeps each row's own key order
        ("bitstamp ohlc", [with_value(OHLC_ROW, "timestamp", "1.5")]),
        ("bitstamp ohlc", [with_value(OHLC_ROW, "timestamp", str(10**12))]),  # past year 9999
        ("bitstamp transactions", [with_value(TRANSACTION_ROW, "tid", 'a"b')]),
        ("bitstamp transactions", [with_value(TRANSACTION_ROW, "type", 1)]),
        ("bitvavo candles", [with_value(CANDLE_ROW, 0, 2**63)]),
        ("bitvavo trades", [with_value(TRADE_ROW, "id", "\n")]),
        ("bitvavo trades", [with_value(TRADE_ROW, "side", "Buy")]),
    ]
    for name, rows in odd:
        try:
            page = PARSERS[name](body_of(name, rows))
        except (RowParseError, OverflowError):
            continue  # refused by the record path, as it was
        assert not isinstance(page, frames.FrameRows), (name, rows)
    # one key order on every row, whichever it is, is the usual shape
    assert isinstance(
        PARSERS["bitstamp ohlc"](body_of("bitstamp ohlc", [reordered])), frames.FrameRows
    )


def test_a_filtered_page_is_typed_as_its_kept_records() -> None:
    """A page cut to a window (`frames.subset`) is typed from its kept rows only, as the kept
    records would be: the scale of a money column is the most places a kept value has."""
    later = {**OHLC_ROW, "timestamp": "1577836260", "open": "1.123456789", "volume": "0"}
    page = bs.parse_ohlc(body_of("bitstamp ohlc", [OHLC_ROW, later]), step=60)
    assert isinstance(page, frames.FrameRows)
    records = list(page)
    kept = frames.subset(page, [True, False])
    assert isinstance(kept, frames.FrameRows)
    assert list(kept) == records[:1]
    made = CANDLES.frame(kept, fetched_at=FETCHED)
    assert made.schema["open"] == pl.Decimal(38, 2)
    assert_frame_equal(made, CANDLES.frame(records[:1], fetched_at=FETCHED), check_exact=True)
    assert frames.subset(page, [True, True]) is page
    assert frames.subset(page, [False, False]) == []
    assert frames.subset(records, [False, True]) == records[1:]


@pytest.mark.parametrize(
    "keep",
    [
        [False, True, True, False],  # a run in the middle: sliced
        [True, False, True, True],  # a hole: filtered
        [False, False, False, True],
        [True, True, True, False],
        [True, False, False, True],
    ],
)
@pytest.mark.parametrize("read", [False, True], ids=["decoded", "read from the body"])
def test_a_page_cut_by_any_mask_keeps_the_rows_the_records_keep(
    keep: list[bool], read: bool
) -> None:
    rows = [at_minute(minute, open=f"{minute}.5") for minute in range(4)]
    body = body_of("bitstamp ohlc", rows)
    if read:
        page = READERS["bitstamp ohlc"](encode_json(body).encode())
    else:
        page = bs.parse_ohlc(body, step=60, market="BTC-USD")
    assert isinstance(page, frames.FrameRows)
    records = list(page)
    kept = frames.subset(page, keep)
    expected = [record for record, flag in zip(records, keep, strict=True) if flag]
    assert isinstance(kept, frames.FrameRows) and list(kept) == expected
    made, wanted = (CANDLES.frame(x, fetched_at=FETCHED) for x in (kept, expected))
    assert_frame_equal(made, wanted, check_exact=True)


def test_values_of_a_page_kept_as_columns_are_its_records_values() -> None:
    rows = [OHLC_ROW, {**OHLC_ROW, "timestamp": "1577836260", "volume": "0.0"}]
    page = bs.parse_ohlc(body_of("bitstamp ohlc", rows), step=60)
    assert isinstance(page, frames.FrameRows)
    records = page.records()
    for name in ("open_time", "open", "volume", "market", "interval"):
        assert frames.values(page, name) == frames.values(records, name)
        assert frames.values(records, name) == [getattr(r, name) for r in records]
    assert [t.tzinfo for t in frames.values(page, "open_time")] == [UTC, UTC]
    trades = bv.parse_public_trades([TRADE_ROW], market="BTC-EUR")
    assert isinstance(trades, frames.FrameRows)
    assert frames.values(trades, "traded_at") == [trades[0].traded_at]


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


def ohlc_page(rows: list[dict[str, str]]) -> Sequence[Any]:
    return bs.parse_ohlc(body_of("bitstamp ohlc", rows), step=60)


def at_minute(minute: int, **prices: str) -> dict[str, str]:
    return {**OHLC_ROW, "timestamp": str(1577836200 + 60 * minute), **prices}


def landed(frames_: Sequence[pl.DataFrame]) -> pl.DataFrame:
    dataset = CANDLES.dataset
    return combine(dataset, (), frames_).cast(pl.Schema(dataset.schema))


def test_pages_of_a_chunk_are_typed_at_once_as_one_by_one() -> None:
    """`page_frames` types the pages of a chunk kept as columns in one go: the same rows and
    values, in the same order (a later page's duplicate still wins), as typing each page."""
    pages = [
        (ohlc_page([at_minute(0), at_minute(1, open="1.5")]), FETCHED),
        (frames.subset(ohlc_page([at_minute(2)]), [False]), FETCHED),  # nothing kept
        (
            ohlc_page([at_minute(1, open="2.12345678"), at_minute(3)]),
            datetime(2025, 1, 1, tzinfo=UTC),
        ),
    ]
    one_by_one = [CANDLES.frame(records, fetched_at=at) for records, at in pages]
    at_once = CANDLES.page_frames(pages)
    assert len(at_once) == 1  # the chunk's pages were typed together
    assert at_once[0].schema["open"] == pl.Decimal(38, 8)
    assert_frame_equal(landed(at_once), landed(one_by_one), check_exact=True)
    assert landed(at_once)["fetched_at"].to_list()[-2:] == [datetime(2025, 1, 1, tzinfo=UTC)] * 2


def test_a_chunk_with_a_page_of_records_is_typed_page_by_page() -> None:
    kept = ohlc_page([at_minute(0)])
    made = list(ohlc_page([at_minute(1)]))  # records, not columns
    pages = [(kept, FETCHED), (made, FETCHED)]
    typed = CANDLES.page_frames(pages)
    assert len(typed) == 2
    one_by_one = [CANDLES.frame(records, fetched_at=at) for records, at in pages]
    assert_frame_equal(landed(typed), landed(one_by_one), check_exact=True)


def test_a_price_beyond_decimal_38_18_in_a_chunk_is_refused_by_the_lake(tmp_path: Path) -> None:
    """A chunk that cannot be typed at once (a price with 19 places) is typed page by page:
    the lake refuses that price as it did."""
    pages = [
        (ohlc_page([at_minute(0)]), FETCHED),
        (ohlc_page([at_minute(1, open="0.1234567890123456789")]), FETCHED),
    ]
    typed = CANDLES.page_frames(pages)
    assert len(typed) == 2
    dataset = CANDLES.dataset
    with pytest.raises(LakeError, match=r"row 1: 0\.1234567890123456789 has more than 18 decimal"):
        Lake(tmp_path).land(dataset, combine(dataset, (), typed), stem="w")


MINUTE = timedelta(minutes=1)


def test_a_window_of_a_page_is_cut_alike_as_columns_and_as_records() -> None:
    """`between`, `split_at`, `earliest` and `latest` compare by polars on a page kept as
    columns: the same rows and moments as on its records, both ends of a window included or not
    as asked."""
    page = ohlc_page([at_minute(minute) for minute in (3, 0, 2, 1)])
    assert isinstance(page, frames.FrameRows)
    records = page.records()
    opened = [record.open_time for record in records]
    low, high = opened[3], opened[0]  # minutes 1 and 3
    for included in (True, False):
        as_columns = frames.between(page, "open_time", low, high, high_included=included)
        as_records = frames.between(records, "open_time", low, high, high_included=included)
        assert isinstance(as_columns, frames.FrameRows)
        assert list(as_columns) == list(as_records)
        assert [r.open_time for r in as_records] == [
            t for t in opened if low <= t and (t <= high if included else t < high)
        ]
    for moment in (low, min(opened), max(opened) + MINUTE, min(opened) - MINUTE):
        as_columns = frames.split_at(page, "open_time", moment)
        as_records = frames.split_at(records, "open_time", moment)
        assert [list(part) for part in as_columns] == [list(part) for part in as_records]
        assert [r.open_time for r in as_records[0]] == [t for t in opened if t < moment]
        assert [r.open_time for r in as_records[1]] == [t for t in opened if t >= moment]
    for wide in (True, False):  # a window holding the whole page keeps it as it is
        whole = min(opened), max(opened) + MINUTE
        assert frames.between(page, "open_time", *whole, high_included=wide) is page
    for source in (page, records):
        assert frames.earliest(source, "open_time") == min(opened)
        assert frames.latest(source, "open_time") == max(opened)
        assert frames.earliest(frames.subset(source, [False] * 4), "open_time") is None
    newest = frames.latest(page, "open_time")
    assert newest is not None and newest.utcoffset() == timedelta(0)


# -- reading a compact body without decoding it (`page_text`) ----------------------------------

READERS: dict[str, Callable[[bytes], Sequence[Any] | None]] = {
    "bitstamp ohlc": lambda body: bs.read_ohlc(body, step=60, market="BTC-USD"),
    "bitvavo candles": lambda body: bv.read_candles(body, market="BTC-EUR", interval="1m"),
    "bitvavo trades": lambda body: bv.read_public_trades(body, market="BTC-EUR"),
    "bitstamp transactions": lambda body: bs.read_transactions(body, market="BTC-USD"),
}


def read_alike(name: str, rows: Any) -> Sequence[Any] | None:
    """What the body reader makes of the compact body of `rows`: None, or exactly what the
    decoded path makes of it (records, and the lake frame); never a page the decoded path
    refuses."""
    body = body_of(name, rows)
    try:
        text = encode_json(body).encode()
    except UnicodeEncodeError:  # a lone surrogate: no such body comes over the wire
        return None
    read = READERS[name](text)
    if read is None:
        return None
    kind, decoded = outcome(PARSERS[name], json.loads(text, parse_float=Decimal))
    assert kind == "records", (rows, decoded)
    assert isinstance(read, frames.FrameRows)
    assert list(read) == list(decoded)
    same_frames(name, read, decoded)
    if name in ("bitvavo trades", "bitstamp transactions"):  # ids and times kept as lists too
        assert set(read.lists) == {"trade_id", "traded_at"}
        assert frames.values(read, "trade_id") == [trade.trade_id for trade in decoded]
        assert frames.values(read, "traded_at") == [trade.traded_at for trade in decoded]
        moments = read.held["traded_at"].dt.epoch("us").to_list()
        assert frames.micros(read, "traded_at") == moments
        times = [trade.traded_at for trade in decoded]
        assert frames.earliest(read, "traded_at") == min(times, default=None)
        assert frames.latest(read, "traded_at") == max(times, default=None)
    return read


def test_a_row_reader_takes_a_whole_page_of_its_rows_and_nothing_else() -> None:
    reader = page_text.RowReader(
        ("a", "t", "v"),
        (rb'"[0-9A-Za-z-]++"', page_text.time_form(14), page_text.MONEY),
        captured=("a", "t"),
    )
    read = reader.read(b'[{"a":"x1","t":5,"v":"1.5"},{"a":"y","t":"007","v":"2"}]')
    assert read is not None
    rows, texts = read
    assert rows.frame["row"].to_list() == [
        '{"a":"x1","t":5,"v":"1.5"}',
        '{"a":"y","t":"007","v":"2"}',
    ]
    assert texts == {"a": ["x1", "y"], "t": ["5", '"007"']}  # (a time as sent)
    row = b'{"a":"x1","t":5,"v":"1"}'
    for body in (
        b"[]",
        b"[" + row + b",]",
        b"[" + row + b" " + row + b"]",
        b"[" + row + b"," + row + b"] ",
        b" [" + row + b"]",
        b"[" + row + b"],[" + row + b"]",
        b"[" + row + b',{"t":5,"a":"x1","v":"1"}]',  # another key order
        b'[{"a":"x1","t":05,"v":"1"}]',
        b'[{"a":"x1","t":5,"v":"1."}]',
        b'[{"a":"\xc3\xa9","t":5,"v":"1"}]',
        b"[" + row + b"," + row,
        row,
    ):
        assert reader.read(body) is None, body


NEXT_MINUTE: dict[str, Any] = {
    "bitstamp ohlc": {**OHLC_ROW, "timestamp": "1577836260", "open": "7164.2"},
    "bitvavo candles": [CANDLE_ROW[0] + 60_000, *CANDLE_ROW[1:4], "38766.5", "0"],
    "bitvavo trades": {**TRADE_ROW, "id": "fb1712f2-e183-457c-b9e5-ff0d31fccd1f", "side": "buy"},
    "bitstamp transactions": {**TRANSACTION_ROW, "tid": "90574282", "type": "0"},
}


@pytest.mark.parametrize("name", list(READERS))
def test_the_body_reader_reads_a_usual_page_as_the_decoded_path(name: str) -> None:
    read = read_alike(name, [USUAL[name], NEXT_MINUTE[name]])
    assert read is not None and len(read) == 2


@pytest.mark.parametrize(
    ("name", "field"), [(n, f) for n, fields in VALUES.items() if n in READERS for f in fields]
)
def test_each_value_is_read_from_the_body_as_decoded_or_not_at_all(
    name: str, field: str | int
) -> None:
    usual = USUAL[name]
    for value in VALUES[name][field]:
        changed = with_value(usual, field, value)
        read_alike(name, [usual, changed])
        read_alike(name, [changed])


@pytest.mark.parametrize("name", list(READERS))
def test_bodies_of_another_shape_are_left_to_the_decoded_path(name: str) -> None:
    for rows in SHAPES[name]:
        assert read_alike(name, rows) is None, rows
    usual = [USUAL[name]]
    spaced = json.dumps(body_of(name, usual), indent=1).encode()
    assert READERS[name](spaced) is None  # whitespace between tokens: decoded, raw re-encoded
    zero_led = (
        b'{"data":{"pair":"BTC/USD","ohlc":[{"timestamp":007,"open":"1","high":"1","low":"1",'
        b'"close":"1","volume":"1"}]}}'
        if name == "bitstamp ohlc"
        else b'[[007,"1","1","1","1","1"]]'
        if name == "bitvavo candles"
        else b'[{"id":"a","timestamp":007,"amount":"1","price":"1","side":"buy"}]'
        if name == "bitvavo trades"
        else b'[{"date":007,"tid":"1","price":"1","type":"0","amount":"1"}]'
    )
    assert READERS[name](zero_led) is None  # not JSON: the decoded path refuses it
    if name == "bitstamp ohlc":
        reordered = [{key: OHLC_ROW[key] for key in reversed(OHLC_ROW)}]
        assert READERS[name](encode_json(body_of(name, reordered)).encode()) is None
        other_pair = encode_json({"data": {"pair": "ETH/USD", "ohlc": usual}}).encode()
        assert READERS[name](other_pair) is None  # (`parse_ohlc` names the mismatch)
        error = b'{"status":"error","reason":"Invalid pair","code":"API0001"}'
        assert READERS[name](error) is None
    elif name == "bitstamp transactions":
        assert READERS[name](b'{"error":"Bitstamp.net is under scheduled maintenance."}') is None
    else:
        assert READERS[name](b'{"errorCode":205,"error":"interval parameter is invalid."}') is None
    if name in ("bitvavo trades", "bitstamp transactions"):
        sorted_keys = [dict(sorted(USUAL[name].items()))]
        assert READERS[name](encode_json(body_of(name, sorted_keys)).encode()) is None


def test_pages_read_from_their_body_are_completed_and_typed_at_once() -> None:
    """Pages read from their body hold their rows' text and open times; a chunk of them is cut
    into columns and typed in one go: the rows and values typing each page gives, in order,
    beside a page that was decoded too."""

    def read(rows: list[dict[str, str]]) -> Sequence[Any]:
        page = READERS["bitstamp ohlc"](encode_json(body_of("bitstamp ohlc", rows)).encode())
        assert isinstance(page, frames.FrameRows) and page.complete is not None
        assert page.held.columns == ["inner", "open_time"]  # the rest is cut when asked for
        return page

    later = datetime(2025, 1, 1, tzinfo=UTC)
    text_pages = [
        (read([at_minute(0), at_minute(1, open="1.5")]), FETCHED),
        (read([at_minute(1, open="2.12345678"), at_minute(3)]), later),
    ]
    decoded = bs.parse_ohlc(body_of("bitstamp ohlc", [at_minute(4)]), step=60, market="BTC-USD")
    for pages in (text_pages, [*text_pages, (decoded, later)]):
        one_by_one = [CANDLES.frame(records, fetched_at=at) for records, at in pages]
        at_once = CANDLES.page_frames(pages)
        assert len(at_once) == 1
        assert_frame_equal(landed(at_once), landed(one_by_one), check_exact=True)
