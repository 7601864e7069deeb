"""Every recorded exchange response in shared/data/exchange-samples/recorded/ parses.

The test is parametrised over the directory listing: a new file becomes a test case by itself
and fails until it is mapped below to a parser (nothing is skipped silently). Each handler takes
the file's JSON and returns the records it parsed plus the number of rows the file holds,
counted from the payload itself, so a parser that drops a row fails too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines.exchanges import bitstamp_parse as bs
from pipelines.exchanges import bitvavo_parse as bv
from pipelines.exchanges.values import encode_json, to_decimal

# Same location as the `samples_dir` fixture; needed at collection time for the parameters.
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "data" / "exchange-samples" / "recorded"
FILES = sorted(p.name for p in RECORDED.iterdir() if p.is_file()) if RECORDED.is_dir() else []

ACCOUNT = "main"
TAKEN_AT = datetime(2024, 1, 1, tzinfo=UTC)

Handler = Callable[[Any], tuple[Sequence[Any], int]]


# --- payload extractors ----------------------------------------------------------------------


def plain(parse: Callable[[Any], Sequence[Any]]) -> Handler:
    """The file is the response body: a JSON array of rows."""
    return lambda doc: (parse(doc), len(doc))


def request_response(parse: Callable[[Any], Sequence[Any]]) -> Handler:
    """gocryptotrader recordings: ``{"request": "...", "response": [...]}``."""
    return lambda doc: (parse(doc["response"]), len(doc["response"]))


def ohlc(step: int) -> Handler:
    return lambda doc: (bs.parse_ohlc(doc, step=step), len(doc["data"]["ohlc"]))


def gct_ohlc(doc: Any) -> tuple[Sequence[Any], int]:
    step = int(parse_qs(urlsplit(doc["request"].split(" ", 1)[1]).query)["step"][0])
    body = doc["response"]
    return bs.parse_ohlc(body, step=step), len(body["data"]["ohlc"])


def gct_transactions(doc: Any) -> tuple[Sequence[Any], int]:
    symbol = urlsplit(doc["request"].split(" ", 1)[1]).path.strip("/").split("/")[-1]
    trades = bs.parse_transactions(doc["response"], market=bs.bitstamp_market(symbol))
    return trades, len(doc["response"])


def single(parse: Callable[[Any], Any]) -> Handler:
    """An endpoint whose body is one object → one record."""
    return lambda doc: ([parse(doc)], 1)


def history(doc: Any) -> tuple[list[Any], int]:
    page = bv.parse_account_history(doc, account=ACCOUNT)
    return [bv.classify_history_item(item) for item in page.items], len(doc["items"])


def crypto_transactions(doc: Any) -> tuple[list[Any], int]:
    records = bs.parse_crypto_transactions(doc, account=ACCOUNT)
    return records, sum(len(rows) for rows in doc.values())


def balance_legacy(doc: Any) -> tuple[list[Any], int]:
    records = bs.parse_balance_legacy(doc, account=ACCOUNT, taken_at=TAKEN_AT)
    return records, sum(1 for key in doc if key.endswith("_balance"))


def order_fills(doc: Any) -> tuple[list[Any], int]:
    return bv.parse_order_fills(doc, account=ACCOUNT), sum(len(o["fills"]) for o in doc)


# --- error bodies (classified by http.py; here only their shape is checked) -------------------


def bitstamp_error_shape(body: Any) -> str:
    """Which of Bitstamp's error body shapes ``body`` is; AssertionError if none."""
    assert isinstance(body, dict)
    if set(body) == {"error"}:
        error = body["error"]
        is_field_errors = isinstance(error, dict) and all(
            isinstance(v, list) and all(isinstance(m, str) for m in v) for v in error.values()
        )
        assert isinstance(error, str) or is_field_errors, body
        return "error"
    assert body.get("status") == "error", body
    reason = body.get("reason")
    if set(body) == {"status", "reason", "code"}:
        assert isinstance(reason, str) and re.fullmatch(r"API\d{4}", body["code"]), body
        return "code"
    if set(body) == {"status", "reason", "response_code"}:
        assert isinstance(reason, str) and re.fullmatch(r"\d{3}\.\d{3}", body["response_code"])
        return "response_code"
    assert set(body) == {"status", "reason"}, body
    assert isinstance(reason, dict) and isinstance(reason.get("__all__"), list), body
    assert all(isinstance(m, str) for m in reason["__all__"]), body
    return "__all__"


def bitstamp_errors(doc: Any) -> tuple[list[Any], int]:
    shapes = [bitstamp_error_shape(entry["body"]) for entry in doc]
    assert set(shapes) == {"error", "code", "response_code", "__all__"}
    return shapes, len(doc)


def bitvavo_errors(doc: Any) -> tuple[list[Any], int]:
    for entry in doc:
        body = entry["body"]
        assert set(body) == {"errorCode", "error"}, body
        assert isinstance(body["errorCode"], int) and not isinstance(body["errorCode"], bool)
        assert isinstance(body["error"], str) and body["error"]
    return [entry["body"] for entry in doc], len(doc)


# --- ccxt static response bundles ------------------------------------------------------------


def bundle(handled: dict[str, Handler], ignored: dict[str, str]) -> Handler:
    """ccxt's static fixtures: ``{"<ccxt method>": {"input": [...], "httpResponse": ...}}``.
    Every section is either parsed or listed with the reason it is not an endpoint we read."""

    def handle(doc: Any) -> tuple[list[Any], int]:
        sections = {key for key in doc if not key.startswith("_")}
        assert sections == set(handled) | set(ignored), sections
        records: list[Any] = []
        rows = 0
        for section, handler in handled.items():
            parsed, count = handler(doc[section]["httpResponse"])
            records += parsed
            rows += count
        return records, rows

    return handle


BITSTAMP_BUNDLE = bundle(
    {
        "fetchTrades": plain(lambda p: bs.parse_transactions(p, market="BTC-USDT")),
        "fetchOHLCV": ohlc(3600),
    },
    ignored={
        "fetchTicker": "ticker: not read by the pipeline",
        "fetchFundingRateHistory": "derivatives funding rates: not read by the pipeline",
    },
)

BITVAVO_BUNDLE = bundle(
    {
        "fetchCurrencies": plain(bv.parse_assets),
        "fetchOHLCV": plain(lambda p: bv.parse_candles(p, market="BTC-EUR", interval="1m")),
        "fetchOrders": order_fills,
        "fetchDeposits": plain(lambda p: bv.parse_deposit_history(p, account=ACCOUNT)),
        "fetchMyTrades": plain(lambda p: bv.parse_trades(p, account=ACCOUNT)),
        "fetchBalance": plain(lambda p: bv.parse_balance(p, account=ACCOUNT, taken_at=TAKEN_AT)),
    },
    ignored={
        "createOrder": "order placement: the pipeline is read-only",
        "editOrder": "order placement: the pipeline is read-only",
        "cancelOrder": "order placement: the pipeline is read-only",
    },
)


def user_transactions(doc: Any) -> tuple[list[Any], int]:
    entries = bs.parse_user_transactions(doc, account=ACCOUNT)
    return bs.classify_entries(entries), len(doc)


HANDLERS: dict[str, Handler] = {
    # Bitstamp
    "bitstamp_account_balances.json": plain(
        lambda p: bs.parse_account_balances(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitstamp_balance_legacy_v2.json": balance_legacy,
    "bitstamp_ccxt_static_responses.json": BITSTAMP_BUNDLE,
    "bitstamp_crypto_transactions__doc_example.json": crypto_transactions,
    "bitstamp_errors.json": bitstamp_errors,
    "bitstamp_fees_trading.json": plain(
        lambda p: bs.parse_trading_fees(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitstamp_fees_trading__gocryptotrader_pr1289_excerpt.json": plain(
        lambda p: bs.parse_trading_fees(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitstamp_fees_withdrawal.json": plain(
        lambda p: bs.parse_withdrawal_fees(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitstamp_gct_ohlc_btcusd_step60_limit10.json": gct_ohlc,
    "bitstamp_gct_ohlc_btcusd_step60_limit1000_2019-12-31.json": gct_ohlc,
    "bitstamp_gct_ohlc_btcusd_step86400_limit1000_2017-04-07_2019-12-31.json": gct_ohlc,
    "bitstamp_gct_ohlc_btcusd_step86400_limit1000_2017-04-08_2020-01-01.json": gct_ohlc,
    "bitstamp_gct_transactions_btcusd_hour_2019-06-14.json": gct_transactions,
    "bitstamp_gct_user_transactions_all.json": request_response(
        lambda p: bs.parse_user_transactions(p, account=ACCOUNT)
    ),
    "bitstamp_gct_user_transactions_btcusd.json": request_response(
        lambda p: bs.parse_user_transactions(p, account=ACCOUNT, source="user_transactions/btcusd")
    ),
    "bitstamp_markets__ccxt_comment.json": plain(bs.parse_markets),
    "bitstamp_ohlc.json": ohlc(60),
    "bitstamp_ohlc__step60_limit1000_zero_volume_candles.json": ohlc(60),
    "bitstamp_ohlc__step86400_limit1000_duplicate_timestamp.json": ohlc(86400),
    "bitstamp_ohlc__step86400_limit1000_end_aligned.json": ohlc(86400),
    "bitstamp_trading_pairs_info_legacy.json": plain(bs.parse_markets),
    "bitstamp_transactions.json": plain(lambda p: bs.parse_transactions(p, market="BTC-USD")),
    "bitstamp_transactions__ltcusd_no_time_param.json": plain(
        lambda p: bs.parse_transactions(p, market="LTC-USD")
    ),
    "bitstamp_user_transactions.json": user_transactions,
    "bitstamp_user_transactions__ccxt_issue11116_and_pr17277.json": user_transactions,
    "bitstamp_user_transactions__ccxt_pr3828_2018.json": user_transactions,
    "bitstamp_user_transactions__pair_btcusd.json": user_transactions,
    "bitstamp_user_transactions__rotki_issue8198_2024.json": user_transactions,
    "bitstamp_user_transactions__xchange_misc_types.json": user_transactions,
    "bitstamp_withdrawal_requests__xchange_2017.json": plain(
        lambda p: bs.parse_withdrawal_requests(p, account=ACCOUNT)
    ),
    # Bitvavo
    "bitvavo_account.json": single(
        lambda p: bv.parse_account(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitvavo_account_fees.json": single(
        lambda p: bv.parse_account_fees(p, account=ACCOUNT, market="BTC-EUR", taken_at=TAKEN_AT)
    ),
    "bitvavo_account_history__doc_example.json": history,
    "bitvavo_assets.json": plain(bv.parse_assets),
    "bitvavo_balance.json": plain(
        lambda p: bv.parse_balance(p, account=ACCOUNT, taken_at=TAKEN_AT)
    ),
    "bitvavo_candles.json": plain(lambda p: bv.parse_candles(p, market="BTC-EUR", interval="1m")),
    "bitvavo_candles__sdk_readme_2019.json": plain(
        lambda p: bv.parse_candles(p, market="BTC-EUR", interval="1h")
    ),
    "bitvavo_ccxt_static_responses.json": BITVAVO_BUNDLE,
    "bitvavo_deposit_history.json": plain(lambda p: bv.parse_deposit_history(p, account=ACCOUNT)),
    "bitvavo_deposit_history__ccxt_static_fixture_numbers_quoted.json": plain(
        lambda p: bv.parse_deposit_history(p, account=ACCOUNT)
    ),
    "bitvavo_errors.json": bitvavo_errors,
    "bitvavo_markets.json": plain(bv.parse_markets),
    "bitvavo_markets__sdk_readme_2019.json": plain(bv.parse_markets),
    "bitvavo_orders__ccxt_static_fixture_numbers_quoted.json": order_fills,
    "bitvavo_trades.json": plain(lambda p: bv.parse_trades(p, account=ACCOUNT)),
    "bitvavo_trades__ccxt_static_fixture_numbers_quoted.json": plain(
        lambda p: bv.parse_trades(p, account=ACCOUNT)
    ),
    "bitvavo_trades__sdk_readme_2019.json": plain(lambda p: bv.parse_trades(p, account=ACCOUNT)),
    "bitvavo_trades_public.json": plain(lambda p: bv.parse_public_trades(p, market="BTC-EUR")),
    "bitvavo_withdrawal_history.json": plain(
        lambda p: bv.parse_withdrawal_history(p, account=ACCOUNT)
    ),
}


def load(samples_dir: Path, name: str) -> Any:
    return json.loads((samples_dir / "recorded" / name).read_text(), parse_float=Decimal)


def test_listing_is_the_fixture_directory(samples_dir: Path) -> None:
    listed = sorted(p.name for p in (samples_dir / "recorded").iterdir() if p.is_file())
    assert listed == FILES
    assert FILES, "no recorded samples: every parametrised case would vanish"


def test_no_handler_for_a_missing_file() -> None:
    assert sorted(set(HANDLERS) - set(FILES)) == []


@pytest.mark.parametrize("name", FILES)
def test_recorded_file_parses(samples_dir: Path, name: str) -> None:
    handler = HANDLERS.get(name)
    if handler is None:
        pytest.fail(f"{name}: no parser mapped in tests/test_recorded_samples.py")
    records, rows = handler(load(samples_dir, name))
    assert rows > 0
    assert len(records) == rows
    for record in records:
        raw = getattr(record, "raw", None)
        if raw is None:
            continue  # error bodies: shape checked by the handler
        assert raw, record
        # raw is compact JSON that re-encodes to itself: number text survives the round trip.
        assert encode_json(json.loads(raw, parse_float=Decimal)) == raw


# A JSON string (skipped) or a JSON number (captured) outside strings.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


def number_texts(text: str) -> list[str]:
    return [m.group(1) for m in _TOKENS.finditer(text) if m.group(1) is not None]


@pytest.mark.parametrize("name", FILES)
def test_encode_json_keeps_every_number_text(samples_dir: Path, name: str) -> None:
    text = (samples_dir / "recorded" / name).read_text()
    encoded = encode_json(json.loads(text, parse_float=Decimal))
    assert number_texts(encoded) == number_texts(text)
    assert json.loads(encoded) == json.loads(text)


# --- the raw encoder and number reader on their own --------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["0.00000001", "11170.21000000", "-0.0", "0E-8", "1E+5", "1.5e-7", "0.1", "123", "-5"],
)
def test_encode_json_round_trips_every_decimal_exactly(text: str) -> None:
    value = json.loads(text, parse_float=Decimal)
    encoded = encode_json([value])
    again = json.loads(encoded, parse_float=Decimal)[0]
    assert type(again) is type(value)
    if isinstance(value, Decimal):
        assert again.as_tuple() == value.as_tuple()
    else:
        assert again == value


def test_encode_json_writes_small_decimals_in_fixed_point() -> None:
    assert str(Decimal("0.00000001")) == "1E-8"  # what str() would have written
    assert encode_json({"fee": Decimal("0.00000001")}) == '{"fee":0.00000001}'


def test_encode_json_strings_and_refusals() -> None:
    value = {'a"b': 'q"\\\n\tü€', "n": None, "t": True, "f": False, "l": [1, "x"]}
    encoded = encode_json(value)
    assert json.loads(encoded) == value
    assert " " not in encoded.replace("ü€", "")
    with pytest.raises(TypeError, match="parse_float"):
        encode_json({"x": 1.5})


@pytest.mark.parametrize("bad", ["1_000", " 1", "1 ", "NaN", "Infinity", "", "0x10", True, None])
def test_to_decimal_refuses_what_is_not_a_plain_number(bad: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(bad)


def test_to_decimal_accepts_json_numbers_and_numeric_strings() -> None:
    assert to_decimal("-0.0997506267046") == Decimal("-0.0997506267046")
    assert str(to_decimal("0.00000000")) == "0E-8"
    assert to_decimal(7) == Decimal(7)
    assert to_decimal(Decimal("1.10")).as_tuple() == Decimal("1.10").as_tuple()
