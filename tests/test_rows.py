"""The parts both exchanges' parsers and error rules share: `Rows`, `RowReader.kept`, the
records built alike (`Rows.market`, `Rows.transfer`, `entry_transfer`) and `class_or_invalid`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipelines.exchanges.records import LedgerEntry, Movement, entry_transfer
from pipelines.exchanges.rows import MarketFields, Rows, TransferNames
from pipelines.exchanges.values import RowParseError
from pipelines.http import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    class_or_invalid,
)

ROWS = Rows("anyex")
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def decoded(text: str) -> object:
    return json.loads(text, parse_float=Decimal)


def test_each_reads_every_row_and_names_exchange_endpoint_and_row() -> None:
    readers = list(ROWS.each("things", decoded('[{"a": 1}, {"a": 2}]')))
    assert [(r.exchange, r.endpoint, r.index, r.data) for r in readers] == [
        ("anyex", "things", 0, {"a": 1}),
        ("anyex", "things", 1, {"a": 2}),
    ]
    with pytest.raises(RowParseError, match=r"^anyex things: row 1: expected a JSON object"):
        list(ROWS.each("things", decoded('[{"a": 1}, 7]')))
    with pytest.raises(RowParseError, match=r"^anyex things: response: expected a JSON array"):
        list(ROWS.each("things", decoded('{"a": 1}')))


def test_kept_holds_what_was_not_read_and_the_exact_text() -> None:
    row = ROWS.reader("things", 0, decoded('{"price": 11170.21000000, "odd": 0.00000001}'))
    assert row.decimal("price") == Decimal("11170.21")
    kept = row.kept()
    assert kept == {
        "extra": {"odd": Decimal("0.00000001")},
        "raw": '{"price":11170.21000000,"odd":0.00000001}',
    }


def test_market_reads_the_fields_it_is_told_and_keeps_the_rest() -> None:
    row = ROWS.reader("markets", 3, {"state": "on", "bd": "8", "qd": 2, "note": "x"})
    market = ROWS.market(
        row,
        MarketFields("state", "bd", "qd"),
        symbol="btceur",
        market="BTC-EUR",
        base="BTC",
        quote="EUR",
    )
    assert (market.exchange, market.market, market.symbol, market.status) == (
        "anyex",
        "BTC-EUR",
        "btceur",
        "on",
    )
    assert (market.base_decimals, market.quote_decimals, market.price_precision) == (8, 2, None)
    assert market.extra == {"note": "x"}
    bad = ROWS.reader("markets", 3, {"state": "on", "bd": "eight", "qd": 2})
    with pytest.raises(
        RowParseError, match=r"^anyex markets: row 3: field 'bd': expected an integer"
    ):
        ROWS.market(
            bad, MarketFields("state", "bd", "qd"), symbol="s", market="A-B", base="A", quote="B"
        )


def test_transfer_fee_is_in_the_moved_asset_network_and_status_as_sent() -> None:
    row = ROWS.reader("deposits", 0, {"network": "bitcoin", "status": "ok", "memo": "m"})
    common = TransferNames(
        account="main",
        transfer_id="t1",
        kind="deposit",
        amount=Decimal("1.5"),
        address=None,
        txid="abc",
        executed_at=WHEN,
        source="deposits",
    )
    charged = ROWS.transfer(row, "BTC", Decimal("0.0001"), **common)
    assert (charged.exchange, charged.asset, charged.fee, charged.fee_asset) == (
        "anyex",
        "BTC",
        Decimal("0.0001"),
        "BTC",
    )
    assert (charged.network, charged.status, charged.extra) == ("bitcoin", "ok", {"memo": "m"})
    free = ROWS.transfer(ROWS.reader("deposits", 1, {}), "BTC", None, **common)
    assert (free.fee, free.fee_asset, free.network, free.status) == (None, None, None, None)


def test_entry_transfer_carries_the_entry_and_names_no_txid_network_or_status() -> None:
    entry = LedgerEntry(
        account="main",
        entry_id=7,
        type_code="1",
        kind="withdrawal",
        executed_at=WHEN,
        movements=(Movement("BTC", Decimal("-0.5")),),
        fee=Decimal("0.0005"),
        fee_asset="BTC",
        pair=None,
        price=None,
        order_id=None,
        side=None,
        source="user_transactions",
        extra={"x": 1},
        raw="{}",
    )
    transfer = entry_transfer(
        "anyex", entry, "withdrawal", entry.movements[0], transfer_id="7", fee=(entry.fee, "BTC")
    )
    assert (transfer.exchange, transfer.account, transfer.executed_at, transfer.source) == (
        "anyex",
        "main",
        WHEN,
        "user_transactions",
    )
    assert (transfer.amount, transfer.fee, transfer.fee_asset) == (
        Decimal("0.5"),
        Decimal("0.0005"),
        "BTC",
    )
    assert (transfer.address, transfer.txid, transfer.network, transfer.status) == (None,) * 4
    assert (transfer.extra, transfer.raw) == ({"x": 1}, "{}")
    replaced = entry_transfer(
        "anyex",
        entry,
        "withdrawal",
        entry.movements[0],
        transfer_id="7",
        fee=(None, None),
        extra={},
    )
    assert replaced.extra == {}


def test_class_or_invalid_takes_the_first_class_found() -> None:
    assert class_or_invalid(None, RateLimitedError, AuthenticationError) is RateLimitedError
    assert class_or_invalid(None, None) is InvalidRequestError
    assert class_or_invalid() is InvalidRequestError
