"""Bitstamp parsers against the real recorded responses and their quirks (EXCHANGES.md).

Rows marked "variant" are recorded rows with one field changed, to show a quirk that the
recorded files do not happen to contain (an int `type`, a "None" fee, a string zero).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipelines.exchanges import bitstamp_parse as bs
from pipelines.exchanges.records import (
    Candle,
    Fill,
    LedgerEntry,
    Movement,
    OtherEvent,
    Transfer,
    dedupe_candles,
)
from pipelines.exchanges.values import RowParseError, encode_json

ACCOUNT = "main"
TAKEN_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GOLDEN = "bitstamp_user_transactions.json"


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / "recorded" / name).read_text(), parse_float=Decimal)


def ledger(samples_dir: Path, name: str = GOLDEN) -> list[LedgerEntry]:
    return bs.parse_user_transactions(load(samples_dir, name), account=ACCOUNT)


def by_id(entries: list[LedgerEntry], entry_id: int) -> LedgerEntry:
    (entry,) = [e for e in entries if e.entry_id == entry_id]
    return entry


def parse_one(row: dict[str, Any]) -> LedgerEntry:
    (entry,) = bs.parse_user_transactions([row], account=ACCOUNT)
    return entry


def golden_row(samples_dir: Path, entry_id: int) -> dict[str, Any]:
    (row,) = [r for r in load(samples_dir, GOLDEN) if r["id"] == entry_id]
    return row


# --- the ledger identity ---------------------------------------------------------------------


def test_golden_ledger_replays_to_exactly_zero(samples_dir: Path) -> None:
    balances = bs.replay_balances(ledger(samples_dir))
    assert set(balances) == {"USD", "BTC"}
    assert balances["USD"] == Decimal(0)
    assert balances["BTC"] == Decimal(0)


def test_replay_orders_by_id_not_by_response_order(samples_dir: Path) -> None:
    entries = ledger(samples_dir)
    assert [e.entry_id for e in entries] == sorted((e.entry_id for e in entries), reverse=True)
    last_withdrawal = max(entries, key=lambda e: e.entry_id)
    assert last_withdrawal.kind == "withdrawal"
    before = bs.replay_balances(reversed([e for e in entries if e is not last_withdrawal]))
    # Everything bought was still there before the last withdrawal (amount from the file).
    assert before == {"USD": Decimal(0), "BTC": Decimal("0.94492494")}


def test_replay_counts_deposit_and_trade_fees(samples_dir: Path) -> None:
    entries = ledger(samples_dir)
    without_fees = [replace(e, fee=None) for e in entries]
    fees = sum((e.fee for e in entries if e.fee), Decimal(0))
    # 3 deposits × 7.50 plus the trade fees (all in USD in this file).
    assert bs.replay_balances(without_fees)["USD"] == fees
    assert fees > Decimal("22.50")


def test_other_recording_of_the_same_ledger_also_nets_to_zero(samples_dir: Path) -> None:
    body = load(samples_dir, "bitstamp_gct_user_transactions_all.json")["response"]
    entries = bs.parse_user_transactions(body, account=ACCOUNT)
    assert bs.replay_balances(entries) == {"USD": Decimal(0), "BTC": Decimal(0)}


def test_golden_ledger_classifies_as_documented(samples_dir: Path) -> None:
    records = bs.classify_entries(ledger(samples_dir))
    fills = [r for r in records if isinstance(r, Fill)]
    transfers = [r for r in records if isinstance(r, Transfer)]
    assert len(records) == 17
    # README: 3 USD deposits with fee 7.50, 11 fills of 3 orders, 3 BTC withdrawals.
    assert len(fills) == 11
    assert len({f.order_id for f in fills}) == 3
    deposits = [t for t in transfers if t.kind == "deposit"]
    withdrawals = [t for t in transfers if t.kind == "withdrawal"]
    assert [(t.asset, t.fee, t.fee_asset) for t in deposits] == [
        ("USD", Decimal("7.50"), "USD")
    ] * 3
    assert {t.asset for t in withdrawals} == {"BTC"} and len(withdrawals) == 3
    for fill in fills:
        assert fill.market == "BTC-USD" and fill.side == "buy" and fill.fee_asset == "USD"
        # The quote amount is the price × amount rounded to cents.
        assert abs(fill.base_amount * fill.price - fill.quote_amount) <= Decimal("0.005")


# --- user_transactions quirks ----------------------------------------------------------------


def test_type_as_int_and_as_string_parse_alike(samples_dir: Path) -> None:
    row = golden_row(samples_dir, 50197020)
    assert row["type"] == "2"
    variant = {**row, "type": 2}  # variant: pre-mid-2021 rows carry an int
    as_string, as_int = parse_one(row), parse_one(variant)
    assert as_int.type_code == as_string.type_code == "2"
    assert bs.classify_entry(as_int) == replace(bs.classify_entry(as_string), raw=as_int.raw)
    assert '"type":2,' in as_int.raw


def test_uninvolved_currencies_as_numeric_and_string_zeros(samples_dir: Path) -> None:
    golden = golden_row(samples_dir, 50174021)  # "btc": 0.0, "eur": 0.0 (JSON floats)
    assert golden["btc"] == Decimal("0.0")
    ints = load(samples_dir, "bitstamp_user_transactions__ccxt_pr3828_2018.json")[0]
    assert ints["usd"] == 0 and type(ints["usd"]) is int  # uninvolved as int 0
    string_zero = {**golden, "eur": "0.0"}  # variant: uninvolved as the string "0.0"
    assert parse_one(golden).movements == (Movement("USD", Decimal("10588.90")),)
    assert parse_one(string_zero).movements == (Movement("USD", Decimal("10588.90")),)
    assert {m.asset for m in parse_one(ints).movements} == {"XRP", "EUR"}


def test_price_string_zero_on_non_trades_means_no_pair(samples_dir: Path) -> None:
    entry = by_id(ledger(samples_dir), 50174021)
    assert entry.kind == "deposit"
    assert (entry.pair, entry.price, entry.side, entry.order_id) == (None, None, None, None)


def test_fee_string_none_is_none(samples_dir: Path) -> None:
    variant = {**golden_row(samples_dir, 50197020), "fee": "None"}
    entry = parse_one(variant)
    assert entry.fee is None
    fill = bs.classify_entry(entry)
    assert isinstance(fill, Fill) and fill.fee is None
    assert bs.balance_changes(entry) == {"USD": Decimal("-10555.01"), "BTC": Decimal("0.94492494")}


def test_float_prices_are_read_exactly(samples_dir: Path) -> None:
    entry = by_id(ledger(samples_dir), 50197020)
    assert entry.price == Decimal("11170.21000000")
    assert str(entry.price) == "11170.21000000"
    assert '"btc_usd":11170.21000000' in entry.raw
    gct = load(samples_dir, "bitstamp_gct_user_transactions_btcusd.json")["response"]
    short = by_id(bs.parse_user_transactions(gct, account=ACCOUNT), 50197020)
    assert str(short.price) == "11170.21" and '"btc_usd":11170.21,' in short.raw
    xrp = parse_one(
        load(samples_dir, "bitstamp_user_transactions__ccxt_issue11116_and_pr17277.json")[1]
    )
    assert (xrp.pair, str(xrp.price)) == ("XRP-BTC", "0.00008494")


def test_integer_prices(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitstamp_user_transactions__ccxt_pr3828_2018.json")
    entry = parse_one(rows[3])
    assert rows[3]["btc_eur"] == 5553
    assert (entry.pair, entry.price, entry.side) == ("BTC-EUR", Decimal(5553), "sell")
    assert '"btc_eur":5553,' in entry.raw


def test_datetimes_with_and_without_microseconds(samples_dir: Path) -> None:
    entries = ledger(samples_dir, "bitstamp_user_transactions__rotki_issue8198_2024.json")
    plain = by_id(entries, 41058372)
    micro = by_id(entries, 94661401)
    assert plain.executed_at == datetime(2018, 1, 3, 11, 36, 48, tzinfo=UTC)
    assert micro.executed_at == datetime(2019, 7, 26, 12, 43, 22, 845607, tzinfo=UTC)
    assert micro.executed_at.utcoffset() == timedelta(0)
    millis = parse_one(
        load(samples_dir, "bitstamp_user_transactions__ccxt_issue11116_and_pr17277.json")[2]
    )
    assert millis.executed_at.microsecond == 475000


def test_sixteen_digit_order_id_kept_exactly(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitstamp_user_transactions__ccxt_issue11116_and_pr17277.json")
    entries = [parse_one(row) for row in rows]
    assert [e.order_id for e in entries[2:]] == ["1443751124246528", "1535787903991815"]
    fill = bs.classify_entry(entries[2])
    assert isinstance(fill, Fill) and fill.order_id == "1443751124246528"


def test_side_is_the_sign_of_the_base_amount_and_fee_is_in_quote(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitstamp_user_transactions__ccxt_issue11116_and_pr17277.json")
    sell = bs.classify_entry(parse_one(rows[3]))
    assert isinstance(sell, Fill)
    assert (sell.side, sell.base_amount, sell.quote_amount) == (
        "sell",
        Decimal("0.00310029"),
        Decimal("61.07881329"),
    )
    xrp = bs.classify_entry(parse_one(rows[1]))
    assert isinstance(xrp, Fill)
    assert (xrp.market, xrp.side, xrp.fee, xrp.fee_asset) == (
        "XRP-BTC",
        "buy",
        Decimal("0.00008500"),
        "BTC",
    )


def test_currencies_are_not_hard_coded(samples_dir: Path) -> None:
    (row,) = load(samples_dir, "bitstamp_user_transactions__xchange_misc_types.json")
    event = bs.classify_entry(parse_one(row))
    assert isinstance(event, OtherEvent)
    assert (event.event_type, event.kind) == ("27", "staking_reward")
    assert event.movements == (Movement("ALGO", Decimal("0.24178042")),)
    invented = {**row, "algo": Decimal("0.0"), "1inch": "12.5", "type": "32"}
    entry = parse_one(invented)
    assert entry.movements == (Movement("1INCH", Decimal("12.5")),)
    assert entry.kind == "referral_reward"


def test_unknown_type_is_kept_as_other_event(samples_dir: Path) -> None:
    variant = {**golden_row(samples_dir, 50174021), "type": "99"}
    event = bs.classify_entry(parse_one(variant))
    assert isinstance(event, OtherEvent)
    assert (event.event_type, event.kind, event.event_id) == ("99", "unknown", "50174021")
    assert event.movements == (Movement("USD", Decimal("10588.90")),)
    assert event.fee == Decimal("7.50") and event.fee_asset == "USD"


def test_unknown_underscore_fields_go_to_extra(samples_dir: Path) -> None:
    variant = {**golden_row(samples_dir, 50197020), "client_order_id": "abc-1"}
    entry = parse_one(variant)
    assert entry.extra == {"client_order_id": "abc-1"}
    assert entry.pair == "BTC-USD"


def test_pair_endpoint_rows_equal_the_full_ledger_rows(samples_dir: Path) -> None:
    full = ledger(samples_dir)
    pair_rows = ledger(samples_dir, "bitstamp_user_transactions__pair_btcusd.json")
    ids = {e.entry_id for e in pair_rows}
    assert len(ids) == 11
    assert pair_rows == [e for e in full if e.entry_id in ids]


# --- malformed rows --------------------------------------------------------------------------


def test_missing_id_names_exchange_endpoint_and_row(samples_dir: Path) -> None:
    rows = load(samples_dir, GOLDEN)
    del rows[2]["id"]
    with pytest.raises(RowParseError) as caught:
        bs.parse_user_transactions(rows, account=ACCOUNT)
    message = str(caught.value)
    assert "bitstamp" in message and "user_transactions" in message and "row 2" in message
    assert "'id'" in message
    assert caught.value.row_index == 2


def test_non_numeric_amount_names_the_row(samples_dir: Path) -> None:
    rows = load(samples_dir, GOLDEN)
    rows[5]["usd"] = "abc"
    with pytest.raises(RowParseError, match=r"bitstamp user_transactions: row 5: .*'usd'.*abc"):
        bs.parse_user_transactions(rows, account=ACCOUNT)


def test_list_instead_of_object_names_the_row(samples_dir: Path) -> None:
    rows: list[Any] = load(samples_dir, GOLDEN)
    rows[7] = [rows[7]]
    with pytest.raises(RowParseError, match=r"bitstamp user_transactions: row 7: expected a JSON"):
        bs.parse_user_transactions(rows, account=ACCOUNT)


def test_object_instead_of_list_names_the_response() -> None:
    with pytest.raises(RowParseError, match=r"bitstamp user_transactions: response: expected"):
        bs.parse_user_transactions({"id": 1}, account=ACCOUNT)


def test_float_decoded_payload_is_refused(samples_dir: Path) -> None:
    text = (samples_dir / "recorded" / GOLDEN).read_text()
    with pytest.raises(RowParseError, match="parse_float=Decimal"):
        bs.parse_user_transactions(json.loads(text), account=ACCOUNT)


def test_trade_without_price_is_an_error(samples_dir: Path) -> None:
    row = golden_row(samples_dir, 50197020)
    del row["btc_usd"]
    with pytest.raises(RowParseError, match="row 0: trade row without"):
        parse_one(row)


def test_bad_datetime_is_an_error(samples_dir: Path) -> None:
    row = {**golden_row(samples_dir, 50197020), "datetime": "2018-01-29T20:22:34Z"}
    with pytest.raises(RowParseError, match="'datetime'"):
        parse_one(row)


# --- OHLC ------------------------------------------------------------------------------------


def test_ohlc_rows_are_exact_and_utc(samples_dir: Path) -> None:
    candles = bs.parse_ohlc(load(samples_dir, "bitstamp_ohlc.json"), step=60)
    assert len(candles) == 10
    first = candles[0]
    assert (first.exchange, first.market, first.interval) == ("bitstamp", "BTC-USD", "1m")
    assert first.open_time == datetime(2019, 12, 31, 23, 50, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == tuple(
        Decimal(v) for v in ("7164.21", "7170.66", "7164.21", "7170.66")
    )
    assert str(first.volume) == "0.08549090"
    assert [c.open_time for c in candles] == sorted(c.open_time for c in candles)


def test_ohlc_zero_volume_fillers_are_kept(samples_dir: Path) -> None:
    name = "bitstamp_ohlc__step60_limit1000_zero_volume_candles.json"
    candles = bs.parse_ohlc(load(samples_dir, name), step=60)
    fillers = [c for c in candles if c.volume == 0]
    assert len(candles) == 1000
    assert len(fillers) == 13
    assert all(c.open == c.high == c.low == c.close for c in fillers)


def test_ohlc_duplicate_timestamp_yields_both_rows_and_dedupe_keeps_the_last(
    samples_dir: Path,
) -> None:
    name = "bitstamp_ohlc__step86400_limit1000_duplicate_timestamp.json"
    payload = load(samples_dir, name)
    rows = payload["data"]["ohlc"]
    candles = bs.parse_ohlc(payload, step=86400)
    day = datetime.fromtimestamp(1546992000, tz=UTC)
    twins = [c for c in candles if c.open_time == day]
    assert len(candles) == len(rows)
    assert len(twins) == 2 and twins[0].volume != twins[1].volume
    last_row = [r for r in rows if r["timestamp"] == "1546992000"][-1]

    deduped = dedupe_candles(candles)
    assert len(deduped) == len(rows) - 1
    (kept,) = [c for c in deduped if c.open_time == day]
    assert kept.volume == Decimal(last_row["volume"])
    assert kept.raw == encode_json(last_row)
    assert [c.open_time for c in deduped] == sorted({c.open_time for c in candles})
    assert Counter(c.key for c in deduped).most_common(1)[0][1] == 1


def test_dedupe_candles_is_last_wins_per_key() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)

    def candle(market: str, close: str) -> Candle:
        one = Decimal(1)
        return Candle("bitstamp", market, "1d", moment, one, one, one, Decimal(close), one)

    result = dedupe_candles(
        [candle("BTC-USD", "1"), candle("BTC-EUR", "2"), candle("BTC-USD", "3")]
    )
    assert sorted((c.market, c.close) for c in result) == [
        ("BTC-EUR", Decimal(2)),
        ("BTC-USD", Decimal(3)),
    ]


def test_ohlc_end_aligned_includes_the_candle_at_end(samples_dir: Path) -> None:
    name = "bitstamp_ohlc__step86400_limit1000_end_aligned.json"
    candles = bs.parse_ohlc(load(samples_dir, name), step=86400)
    assert len(candles) == 999
    assert candles[-1].open_time == datetime(2020, 1, 1, tzinfo=UTC)


def test_ohlc_market_mismatch_and_unknown_step(samples_dir: Path) -> None:
    payload = load(samples_dir, "bitstamp_ohlc.json")
    with pytest.raises(RowParseError, match="does not match"):
        bs.parse_ohlc(payload, step=60, market="ETH-USD")
    with pytest.raises(ValueError, match="step"):
        bs.parse_ohlc(payload, step=28800)
    del payload["data"]["ohlc"][3]["close"]
    with pytest.raises(RowParseError, match=r"bitstamp ohlc: row 3: missing field 'close'"):
        bs.parse_ohlc(payload, step=60)


# --- public trades ---------------------------------------------------------------------------


def test_public_trades_key_on_tid(samples_dir: Path) -> None:
    trades = bs.parse_transactions(
        load(samples_dir, "bitstamp_transactions.json"), market="BTC-USD"
    )
    assert len(trades) == 383
    assert len({t.trade_id for t in trades}) == 383
    seconds = Counter(t.traded_at for t in trades)
    assert sum(1 for n in seconds.values() if n > 1) == 55
    newest = trades[0]
    assert (newest.trade_id, newest.side, newest.price) == ("90574283", "sell", Decimal("8194.79"))
    assert newest.traded_at == datetime.fromtimestamp(1560481868, tz=UTC)


def test_public_trade_matches_ccxt_expectation(samples_dir: Path) -> None:
    section = load(samples_dir, "bitstamp_ccxt_static_responses.json")["fetchTrades"]
    (trade,) = bs.parse_transactions(section["httpResponse"], market="BTC-USDT")
    expect = section["ccxt_parsed_expect"]
    assert trade.trade_id == expect["id"]
    assert trade.side == expect["side"]
    assert trade.price == expect["price"] and trade.amount == expect["amount"]
    assert trade.traded_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        milliseconds=expect["timestamp"]
    )


def test_public_trade_microtimestamp_is_used_when_present(samples_dir: Path) -> None:
    row = {
        **load(samples_dir, "bitstamp_transactions.json")[0],
        "microtimestamp": "1560481868123456",
    }
    (trade,) = bs.parse_transactions([row], market="BTC-USD")
    assert trade.traded_at == datetime(2019, 6, 14, 3, 11, 8, 123456, tzinfo=UTC)
    assert trade.extra == {}


def test_public_trade_bad_side(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitstamp_transactions.json")[:3]
    rows[1]["type"] = "2"
    with pytest.raises(RowParseError, match=r"bitstamp transactions: row 1: field 'type'"):
        bs.parse_transactions(rows, market="BTC-USD")


# --- markets, balances, fees -----------------------------------------------------------------


def test_symbols_split_like_the_pair_names(samples_dir: Path) -> None:
    rows = load(samples_dir, "bitstamp_trading_pairs_info_legacy.json")
    markets = bs.parse_markets(rows)
    for row, market in zip(rows, markets, strict=True):
        expected = row["name"].replace("/", "-")
        assert bs.bitstamp_market(row["url_symbol"]) == expected
        assert (market.market, market.symbol) == (expected, row["url_symbol"])
    symbols = {m.symbol: m.market for m in markets}
    assert bs.bitstamp_market("btceur", symbols) == "BTC-EUR"
    assert bs.bitstamp_market("1inchusd") == "1INCH-USD"
    with pytest.raises(ValueError, match="cannot split"):
        bs.bitstamp_market("btcxyz")


def test_new_markets_shape(samples_dir: Path) -> None:
    (market,) = bs.parse_markets(load(samples_dir, "bitstamp_markets__ccxt_comment.json"))
    assert (market.market, market.symbol, market.status) == ("BTC-USD", "btcusd", "Enabled")
    assert (market.base_decimals, market.quote_decimals) == (8, 0)
    assert market.extra["market_type"] == "SPOT"


def test_account_balances(samples_dir: Path) -> None:
    (snapshot,) = bs.parse_account_balances(
        load(samples_dir, "bitstamp_account_balances.json"), account=ACCOUNT, taken_at=TAKEN_AT
    )
    assert (snapshot.asset, snapshot.total, snapshot.available, snapshot.reserved) == (
        "USDT",
        Decimal(7),
        Decimal(7),
        Decimal(0),
    )
    assert snapshot.taken_at == TAKEN_AT and snapshot.account == ACCOUNT


def test_legacy_balance_groups_per_currency(samples_dir: Path) -> None:
    payload = load(samples_dir, "bitstamp_balance_legacy_v2.json")
    snapshots = bs.parse_balance_legacy(payload, account=ACCOUNT, taken_at=TAKEN_AT)
    assert [s.asset for s in snapshots] == [
        k.removesuffix("_balance").upper() for k in payload if k.endswith("_balance")
    ]
    btc = next(s for s in snapshots if s.asset == "BTC")
    assert (btc.total, btc.available, btc.reserved) == (
        Decimal("11.2"),
        Decimal("9.1"),
        Decimal("2.1"),
    )
    assert btc.extra == {
        "btc_withdrawal_fee": "0.00050000",
        "btceur_fee": "10.25",
        "btcusd_fee": "0.25",
    }
    usdt = next(s for s in snapshots if s.asset == "USDT")
    assert usdt.total == usdt.available + usdt.reserved


def test_trading_fees_percent_becomes_fraction(samples_dir: Path) -> None:
    (schedule,) = bs.parse_trading_fees(
        load(samples_dir, "bitstamp_fees_trading.json"), account=ACCOUNT, taken_at=TAKEN_AT
    )
    assert (schedule.market, schedule.maker, schedule.taker) == (
        "BTC-USD",
        Decimal("0.0015"),
        Decimal("0.0016"),
    )
    many = bs.parse_trading_fees(
        load(samples_dir, "bitstamp_fees_trading__gocryptotrader_pr1289_excerpt.json"),
        account=ACCOUNT,
        taken_at=TAKEN_AT,
    )
    assert [s.market for s in many][:3] == ["DOGE-EUR", "DOGE-USD", "DOT-EUR"]
    assert all(s.maker == 0 and s.taker == 0 for s in many)


def test_withdrawal_fees(samples_dir: Path) -> None:
    (fee,) = bs.parse_withdrawal_fees(
        load(samples_dir, "bitstamp_fees_withdrawal.json"), account=ACCOUNT, taken_at=TAKEN_AT
    )
    assert (fee.asset, fee.fee, fee.network, fee.account) == (
        "BTC",
        Decimal("0.00015000"),
        "bitcoin",
        ACCOUNT,
    )


def test_eur_usd() -> None:
    payload = json.loads('{"buy": "1.0801", "sell": "1.0787", "x": 1}', parse_float=Decimal)
    rate = bs.parse_eur_usd(payload, taken_at=TAKEN_AT)
    assert (rate.base, rate.quote, rate.buy, rate.sell) == (
        "EUR",
        "USD",
        Decimal("1.0801"),
        Decimal("1.0787"),
    )
    assert rate.extra == {"x": 1}
    with pytest.raises(ValueError, match="naive"):
        bs.parse_eur_usd(payload, taken_at=datetime(2024, 1, 1))


# --- transfers -------------------------------------------------------------------------------


def test_crypto_transactions(samples_dir: Path) -> None:
    payload = load(samples_dir, "bitstamp_crypto_transactions__doc_example.json")
    records = bs.parse_crypto_transactions(payload, account=ACCOUNT)
    deposit, withdrawal, iou = records
    assert isinstance(deposit, Transfer) and isinstance(withdrawal, Transfer)
    assert (deposit.kind, deposit.transfer_id, deposit.amount, deposit.status) == (
        "deposit",
        "deposit:1",
        Decimal("1.23"),
        "PENDING",
    )
    assert deposit.address == "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    assert deposit.executed_at == datetime.fromtimestamp(1759995000, tz=UTC)
    assert deposit.extra == {"pending_reason": "ADDRESS_VERIFICATION_NEEDED"}
    txid = payload["withdrawals"][0]["txid"]
    assert (withdrawal.kind, withdrawal.txid, withdrawal.transfer_id) == (
        "withdrawal",
        txid,
        f"withdrawal:{txid}",
    )
    assert isinstance(iou, OtherEvent) and iou.kind == "ripple_iou"
    with pytest.raises(RowParseError, match="unknown sections"):
        bs.parse_crypto_transactions({**payload, "refunds": []}, account=ACCOUNT)


def test_legacy_withdrawal_requests(samples_dir: Path) -> None:
    transfers = bs.parse_withdrawal_requests(
        load(samples_dir, "bitstamp_withdrawal_requests__xchange_2017.json"), account=ACCOUNT
    )
    assert [(t.transfer_id, t.asset, t.status) for t in transfers] == [
        ("1928222", "BTC", "finished"),
        ("1928123", "LTC", "finished"),
        ("1927432", "XRP", "10"),
        ("1925876", "EUR", "8"),
    ]
    assert transfers[0].txid == "xxx" and transfers[1].txid == "1"
    assert all(t.kind == "withdrawal" for t in transfers)


def test_records_are_hashable_and_copyable(samples_dir: Path) -> None:
    records = bs.classify_entries(ledger(samples_dir))
    assert len(set(records)) == len(records)
    assert copy.deepcopy(records) == records


@pytest.mark.parametrize("missing", ["order_id", "fee"])
def test_trade_row_without_order_id_or_fee_is_malformed(missing: str) -> None:
    row = {
        "id": 7,
        "datetime": "2024-01-02 03:04:05",
        "type": "2",
        "fee": "0.10",
        "order_id": 123,
        "eur": "-100.00",
        "btc": "0.002",
        "btc_eur": Decimal("50000"),
    }
    del row[missing]
    with pytest.raises(RowParseError, match=f"row 0.*{missing}"):
        bs.parse_user_transactions([row], account="main")
