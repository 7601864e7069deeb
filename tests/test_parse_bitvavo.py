"""Bitvavo parsers against the recorded responses and their quirks (EXCHANGES.md).

Rows marked "variant" are recorded rows with one field changed, to show a quirk the recorded
files do not happen to contain (an unsettled fill, a negative fee, whitespace in a txId).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipelines.exchanges import bitvavo_parse as bv
from pipelines.exchanges.records import Fill, Movement, OtherEvent, Transfer, dedupe_candles
from pipelines.exchanges.values import RowParseError

ACCOUNT = "main"
TAKEN_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / "recorded" / name).read_text(), parse_float=Decimal)


def ms(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=value)


# --- candles and public trades ---------------------------------------------------------------


def test_candles_newest_first_exact(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_candles.json")
    candles = bv.parse_candles(rows, market="BTC-EUR", interval="1m")
    assert [c.open_time for c in candles] == [ms(r[0]) for r in rows]
    assert candles[0].open_time > candles[-1].open_time
    first = candles[0]
    assert (first.exchange, first.market, first.interval) == ("bitvavo", "BTC-EUR", "1m")
    assert (first.open, first.volume) == (Decimal("38766"), Decimal("0.00012865"))
    assert first.raw == '[1702354080000,"38766","38766","38766","38766","0.00012865"]'


def test_candle_timestamp_as_string_or_number(samples_dir: Path) -> None:
    row = load(samples_dir, "bitvavo_candles.json")[0]
    variant = [str(row[0]), *row[1:]]
    as_number, as_string = bv.parse_candles([row, variant], market="btc-eur", interval="1m")
    assert as_string.open_time == as_number.open_time == datetime(2023, 12, 12, 4, 8, tzinfo=UTC)
    assert as_number.market == "BTC-EUR"


def test_sdk_readme_candles_repeat_rows_dedupe(samples_dir: Path) -> None:
    candles = bv.parse_candles(
        load(samples_dir, "bitvavo_candles__sdk_readme_2019.json"), market="BTC-EUR", interval="1h"
    )
    assert len(candles) == 5
    assert len(dedupe_candles(candles)) == 3


def test_candle_errors_name_the_row(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_candles.json")
    rows[2] = rows[2][:4]
    with pytest.raises(RowParseError, match=r"bitvavo candles: row 2: expected a 6-element"):
        bv.parse_candles(rows, market="BTC-EUR", interval="1m")
    rows = load(samples_dir, "bitvavo_candles.json")
    rows[1][3] = "abc"
    with pytest.raises(RowParseError, match=r"bitvavo candles: row 1: not a number: 'abc'"):
        bv.parse_candles(rows, market="BTC-EUR", interval="1m")
    with pytest.raises(ValueError, match="interval"):
        bv.parse_candles(rows, market="BTC-EUR", interval="1W")


def test_public_trades(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_trades_public.json")
    trades = bv.parse_public_trades(rows, market="BTC-EUR")
    assert [t.trade_id for t in trades] == [r["id"] for r in rows]
    first = trades[0]
    assert (first.side, first.price, first.amount) == (
        "sell",
        Decimal(10147),
        Decimal("0.12735922"),
    )
    assert first.traded_at == ms(1565672192018)
    assert first.traded_at.microsecond == 18000


# --- account trades --------------------------------------------------------------------------


def test_account_trades_without_client_order_id(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_trades.json")
    assert all("clientOrderId" not in r for r in rows)
    fills = bv.parse_trades(rows, account=ACCOUNT)
    first = fills[0]
    assert (first.market, first.base_asset, first.quote_asset) == ("PHA-EUR", "PHA", "EUR")
    assert (first.fill_id, first.order_id) == (rows[0]["id"], rows[0]["orderId"])
    assert str(first.fee) == "0.0997506267046"  # 13 decimals, exact
    assert (first.fee_asset, first.taker, first.settled, first.side) == ("EUR", True, True, "buy")
    assert first.extra == {}
    assert first.source == "trades"


def test_quoted_number_fixture_matches_ccxt_costs(samples_dir: Path) -> None:
    section = load(samples_dir, "bitvavo_ccxt_static_responses.json")["fetchMyTrades"]
    fills = bv.parse_trades(section["httpResponse"], account=ACCOUNT)
    costs = section["ccxt_parsed_expect_costs"]
    assert {f.fill_id: f.quote_amount for f in fills} == costs
    quoted = bv.parse_trades(
        load(samples_dir, "bitvavo_trades__ccxt_static_fixture_numbers_quoted.json"),
        account=ACCOUNT,
    )
    assert quoted == fills  # the same two fills, recorded twice
    assert quoted[0].executed_at == ms(1700130652275)  # "timestamp" arrived as a string
    assert quoted[0].extra == {"clientOrderId": "123b3e62-bb61-41db-8425-cbc541c05fe9"}


def test_unsettled_fill_has_no_fee(samples_dir: Path) -> None:
    row = load(samples_dir, "bitvavo_trades.json")[0]
    variant = {k: v for k, v in row.items() if k not in ("fee", "feeCurrency")}
    variant["settled"] = False
    (fill,) = bv.parse_trades([variant], account=ACCOUNT)
    assert (fill.fee, fill.fee_asset, fill.settled) == (None, None, False)
    assert fill.quote_amount == Decimal("69.09014454") * Decimal("0.57751")


def test_negative_fee_is_a_rebate(samples_dir: Path) -> None:
    row = {**load(samples_dir, "bitvavo_trades__sdk_readme_2019.json")[1], "fee": "-0.0012"}
    (fill,) = bv.parse_trades([row], account=ACCOUNT)
    assert fill.fee == Decimal("-0.0012") and fill.fee < 0
    assert fill.side == "sell" and fill.order_id is None


def test_order_fills_carry_their_order(samples_dir: Path) -> None:
    orders = load(samples_dir, "bitvavo_orders__ccxt_static_fixture_numbers_quoted.json")
    fills = bv.parse_order_fills(orders, account=ACCOUNT)
    assert [(f.fill_id, f.order_id, f.side) for f in fills] == [
        (o["fills"][0]["id"], o["orderId"], o["side"]) for o in orders
    ]
    for fill, order in zip(fills, orders, strict=True):
        # Each order filled in one go: its totals are the fill's own.
        assert fill.quote_amount == Decimal(order["filledAmountQuote"])
        assert fill.fee == Decimal(order["feePaid"])
        assert fill.market == order["market"] and fill.source == "orders"


def test_trade_errors_name_exchange_endpoint_row(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_trades__sdk_readme_2019.json")
    rows[1]["side"] = "short"
    with pytest.raises(RowParseError, match=r"bitvavo trades: row 1: field 'side'"):
        bv.parse_trades(rows, account=ACCOUNT)
    rows = load(samples_dir, "bitvavo_trades__sdk_readme_2019.json")
    del rows[2]["market"]
    with pytest.raises(RowParseError, match=r"bitvavo trades: row 2: missing field 'market'"):
        bv.parse_trades(rows, account=ACCOUNT)
    rows = load(samples_dir, "bitvavo_trades__sdk_readme_2019.json")
    rows[0]["amount"] = "abc"
    with pytest.raises(RowParseError, match=r"bitvavo trades: row 0: field 'amount'"):
        bv.parse_trades(rows, account=ACCOUNT)
    with pytest.raises(RowParseError, match=r"bitvavo trades: row 0: expected a JSON object"):
        bv.parse_trades([rows], account=ACCOUNT)


# --- deposits and withdrawals ----------------------------------------------------------------


def test_deposit_history_keys(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_deposit_history.json")
    fiat, crypto = bv.parse_deposit_history(rows, account=ACCOUNT)
    assert crypto.transfer_id == crypto.txid == rows[1]["txId"]
    assert fiat.txid is None
    assert fiat.transfer_id == "EUR|1521550025000|1|NL12RABO324234234"
    assert (fiat.kind, fiat.asset, fiat.amount, fiat.fee, fiat.status) == (
        "deposit",
        "EUR",
        Decimal(1),
        Decimal(0),
        "completed",
    )
    assert fiat.address == "NL12RABO324234234"
    assert crypto.executed_at == ms(1511873910000)


def test_txid_whitespace_is_stripped(samples_dir: Path) -> None:
    row = load(samples_dir, "bitvavo_deposit_history.json")[1]
    clean = row["txId"]
    variant = {**row, "txId": f" {clean[:20]}\n{clean[20:]}\t"}
    (transfer,) = bv.parse_deposit_history([variant], account=ACCOUNT)
    assert transfer.txid == transfer.transfer_id == clean


def test_withdrawal_history_composite_keys_are_stable_and_distinct(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_withdrawal_history.json")
    first = bv.parse_withdrawal_history(rows, account=ACCOUNT)
    again = bv.parse_withdrawal_history(
        load(samples_dir, "bitvavo_withdrawal_history.json"), account=ACCOUNT
    )
    assert [t.transfer_id for t in first] == [t.transfer_id for t in again]
    assert len({t.transfer_id for t in first}) == 3
    pending = first[0]
    assert pending.transfer_id == "BTC|1548425559000|0.09994|1CqtG5z55x7bYD5GxsAXPx59DEyujs4bjm"
    assert (pending.status, pending.fee, pending.fee_asset) == (
        "awaiting_processing",
        Decimal("0.00006"),
        "BTC",
    )
    # The status moves on; the key does not.
    (done,) = bv.parse_withdrawal_history([{**rows[0], "status": "completed"}], account=ACCOUNT)
    assert done.transfer_id == pending.transfer_id and done.status == "completed"
    assert first[2].transfer_id == rows[2]["txId"]


def test_quoted_deposit_fixture(samples_dir: Path) -> None:
    name = "bitvavo_deposit_history__ccxt_static_fixture_numbers_quoted.json"
    transfers = bv.parse_deposit_history(load(samples_dir, name), account=ACCOUNT)
    assert transfers[0].executed_at == ms(1697559267000)
    assert transfers[0].amount == Decimal("989.7037")


# --- balance, fees, markets, assets, time ----------------------------------------------------


def test_balance_total_is_available_plus_in_order(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitvavo_balance.json")
    snapshots = bv.parse_balance(rows, account=ACCOUNT, taken_at=TAKEN_AT)
    assert len(snapshots) == len(rows) == 11
    eur = next(s for s in snapshots if s.asset == "EUR")
    assert (eur.total, eur.available, eur.reserved) == (Decimal("16.48"), Decimal("16.48"), 0)
    (busy,) = bv.parse_balance([{**rows[3], "inOrder": "1.52"}], account=ACCOUNT, taken_at=TAKEN_AT)
    assert busy.total == Decimal("18.00") and busy.reserved == Decimal("1.52")


def test_account_fees_are_fractions(samples_dir: Path) -> None:
    schedule = bv.parse_account_fees(
        load(samples_dir, "bitvavo_account_fees.json"),
        account=ACCOUNT,
        market="BTC-EUR",
        taken_at=TAKEN_AT,
    )
    assert (schedule.market, schedule.maker, schedule.taker) == (
        "BTC-EUR",
        Decimal("0.0015"),
        Decimal("0.0025"),
    )
    assert (schedule.tier, schedule.volume) == ("0", Decimal("10000.00"))
    account_wide = bv.parse_account(
        load(samples_dir, "bitvavo_account.json"), account=ACCOUNT, taken_at=TAKEN_AT
    )
    assert (account_wide.market, account_wide.taker, account_wide.volume) == (
        None,
        Decimal("0.0025"),
        Decimal("100.00"),
    )


def test_market_integers_as_strings_or_numbers(samples_dir: Path) -> None:
    (quoted,) = bv.parse_markets(load(samples_dir, "bitvavo_markets.json"))
    numeric = bv.parse_markets(load(samples_dir, "bitvavo_markets__sdk_readme_2019.json"))
    assert (quoted.price_precision, quoted.base_decimals, quoted.quote_decimals) == (5, 4, 2)
    assert [m.price_precision for m in numeric] == [5, 5]
    assert [m.market for m in numeric] == ["ADA-BTC", "ADA-EUR"]
    assert quoted.extra["tickSize"] == "0.01"


def test_assets_and_their_withdrawal_fees(samples_dir: Path) -> None:
    assets = bv.parse_assets(load(samples_dir, "bitvavo_assets.json"))
    assert [(a.asset, a.decimals, a.withdrawal_fee) for a in assets] == [
        ("ADA", 6, Decimal("0.2")),
        ("AION", 8, Decimal(3)),
    ]
    (usdc,) = bv.parse_assets(
        load(samples_dir, "bitvavo_ccxt_static_responses.json")["fetchCurrencies"]["httpResponse"]
    )
    assert usdc.decimals == 6  # "decimals": "6" on the wire
    fees = bv.parse_asset_withdrawal_fees(assets, taken_at=TAKEN_AT)
    assert [(f.asset, f.fee, f.network) for f in fees] == [
        ("ADA", Decimal("0.2"), "Mainnet"),
        ("AION", Decimal(3), "Mainnet"),
    ]


def test_time() -> None:
    assert bv.parse_time({"time": 1548172481125}) == ms(1548172481125)
    with pytest.raises(RowParseError, match=r"bitvavo time: response: missing field 'time'"):
        bv.parse_time({})


# --- /account/history ------------------------------------------------------------------------


def history_item(**fields: str) -> dict[str, str]:
    base = {"transactionId": "t-1", "executedAt": "2024-03-01T10:00:00.123Z"}
    return {**base, **fields}


def classify(*items: dict[str, str]) -> list[Fill | Transfer | OtherEvent]:
    page = {"items": list(items), "currentPage": 1, "totalPages": 1, "maxItems": 100}
    parsed = bv.parse_account_history(page, account=ACCOUNT)
    return [bv.classify_history_item(item) for item in parsed.items]


def test_history_page_and_app_trade(samples_dir: Path) -> None:
    payload = load(samples_dir, "bitvavo_account_history__doc_example.json")
    page = bv.parse_account_history(payload, account=ACCOUNT)
    assert (page.current_page, page.total_pages, page.max_items) == (1, 1, 100)
    (item,) = page.items
    assert item.executed_at == datetime(2021, 1, 1, tzinfo=UTC)
    fill = bv.classify_history_item(item)
    # The doc example sends EUR and receives BTC, priced in EUR: an app buy of BTC-EUR,
    # whatever its "type" says.
    assert isinstance(fill, Fill)
    assert (fill.market, fill.side, fill.base_amount, fill.quote_amount, fill.price) == (
        "BTC-EUR",
        "buy",
        Decimal("0.0001"),
        Decimal("0.1"),
        Decimal("1000.00"),
    )
    assert (fill.fee, fill.fee_asset, fill.source) == (Decimal("0.01"), "EUR", "account/history")
    assert fill.extra == {"type": "sell"}


def test_history_sell_app_trade() -> None:
    (fill,) = classify(
        history_item(
            type="sell",
            priceCurrency="EUR",
            priceAmount="60000",
            sentCurrency="BTC",
            sentAmount="0.01",
            receivedCurrency="EUR",
            receivedAmount="598.5",
            feesCurrency="EUR",
            feesAmount="1.5",
        )
    )
    assert isinstance(fill, Fill)
    assert (fill.market, fill.side, fill.base_amount, fill.quote_amount) == (
        "BTC-EUR",
        "sell",
        Decimal("0.01"),
        Decimal("598.5"),
    )
    assert fill.executed_at == datetime(2024, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


def test_history_transfers() -> None:
    deposit, withdrawal = classify(
        history_item(type="deposit", receivedCurrency="EUR", receivedAmount="100"),
        history_item(
            type="withdrawal",
            sentCurrency="BTC",
            sentAmount="0.5",
            feesCurrency="BTC",
            feesAmount="0.0001",
            address="bc1qexample",
        ),
    )
    assert isinstance(deposit, Transfer) and isinstance(withdrawal, Transfer)
    assert (deposit.kind, deposit.asset, deposit.amount) == ("deposit", "EUR", Decimal(100))
    assert (withdrawal.kind, withdrawal.asset, withdrawal.fee, withdrawal.address) == (
        "withdrawal",
        "BTC",
        Decimal("0.0001"),
        "bc1qexample",
    )


@pytest.mark.parametrize(
    ("kind_on_wire", "kind"),
    [
        ("staking", "staking_reward"),
        ("fixed_staking", "staking_reward"),
        ("affiliate", "referral_reward"),
        ("distribution", "distribution"),
        ("rebate", "fee_rebate"),
        ("internal_transfer", "internal_transfer"),
        ("withdrawal_cancelled", "withdrawal_cancelled"),
        ("brand_new_type", "unknown"),
    ],
)
def test_history_other_events(kind_on_wire: str, kind: str) -> None:
    (event,) = classify(
        history_item(type=kind_on_wire, receivedCurrency="ETH", receivedAmount="0.00012")
    )
    assert isinstance(event, OtherEvent)
    assert (event.event_type, event.kind, event.event_id) == (kind_on_wire, kind, "t-1")
    assert event.movements == (Movement("ETH", Decimal("0.00012")),)


def test_history_errors(samples_dir: Path) -> None:
    payload = load(samples_dir, "bitvavo_account_history__doc_example.json")
    payload["items"][0]["executedAt"] = "2021-01-01T00:00:00"
    with pytest.raises(RowParseError, match=r"bitvavo account/history: row 0: .*offset"):
        bv.parse_account_history(payload, account=ACCOUNT)
    with pytest.raises(RowParseError, match=r"account/history: response: missing field 'items'"):
        bv.parse_account_history({"currentPage": 1}, account=ACCOUNT)
