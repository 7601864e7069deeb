"""The sandbox's simulated world: a deterministic tape and two accounts whose books balance."""

from __future__ import annotations

import csv
import itertools
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sandbox_fixtures import world_fixture

from pipelines.sandbox.market import DAY_MS, HOUR_MS, MINUTE_MS, Market, TapeTrade
from pipelines.sandbox.world import GENESIS_MARGIN_DAYS, World

# 2023-06-15 12:34:56.789 UTC: inside the packaged real BTC-EUR and ETH-EUR series
FROZEN_MS = int(datetime(2023, 6, 15, 12, 34, 56, 789_000, tzinfo=UTC).timestamp() * 1000)
DAYS = 45
ZERO = Decimal(0)


world = world_fixture(seed=7, days=DAYS, now_ms=FROZEN_MS)


@pytest.fixture(scope="module")
def twin() -> World:
    return World(seed=7, days=DAYS, now_ms=FROZEN_MS)


@pytest.fixture(scope="module")
def plain_world() -> World:
    return World(seed=7, days=DAYS, now_ms=FROZEN_MS, quirks=False)


def num(value: Any) -> Decimal:
    """A wire value (int, Decimal or numeric string; "None" for a missing fee) as a Decimal."""
    if value == "None":
        return ZERO
    return Decimal(str(value))


def aggregate(trades: list[TapeTrade]) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, int]:
    prices = [t.price for t in trades]
    volume = sum((t.amount for t in trades), ZERO)
    return prices[0], max(prices), min(prices), prices[-1], volume, len(trades)


def buckets(trades: list[TapeTrade], step_ms: int) -> dict[int, list[TapeTrade]]:
    out: dict[int, list[TapeTrade]] = defaultdict(list)
    for trade in trades:
        out[trade.ts_ms // step_ms * step_ms].append(trade)
    return out


def day_start(ms: int) -> int:
    return ms // DAY_MS * DAY_MS


# --- determinism ------------------------------------------------------------------------


def test_same_seed_and_now_give_identical_worlds(world: World, twin: World) -> None:
    end = day_start(FROZEN_MS)
    for key, market in world.markets.items():
        other = twin.markets[key]
        assert market.trades(end - 3 * HOUR_MS, end) == other.trades(end - 3 * HOUR_MS, end)
        for interval in (60, 3600, 86400):
            assert market.candles(interval, end - 5 * DAY_MS, end) == other.candles(
                interval, end - 5 * DAY_MS, end
            )
    assert world.bitstamp.user_transactions == twin.bitstamp.user_transactions
    assert world.bitstamp.crypto_transactions == twin.bitstamp.crypto_transactions
    assert world.bitstamp.balances(FROZEN_MS) == twin.bitstamp.balances(FROZEN_MS)
    bv, bv2 = world.bitvavo, twin.bitvavo
    for symbol in bv.markets_traded:
        assert bv.trades(symbol, FROZEN_MS) == bv2.trades(symbol, FROZEN_MS)
    assert bv.history(FROZEN_MS) == bv2.history(FROZEN_MS)
    assert bv.deposits(FROZEN_MS) == bv2.deposits(FROZEN_MS)
    assert bv.withdrawals(FROZEN_MS) == bv2.withdrawals(FROZEN_MS)
    assert bv.balance(FROZEN_MS) == bv2.balance(FROZEN_MS)


def test_another_seed_gives_another_world(world: World) -> None:
    other = World(seed=8, days=DAYS, now_ms=FROZEN_MS)
    end = day_start(FROZEN_MS)
    for key, market in world.markets.items():
        assert market.trades(end - HOUR_MS, end) != other.markets[key].trades(end - HOUR_MS, end)
    assert world.bitstamp.user_transactions != other.bitstamp.user_transactions
    assert world.bitvavo.trades("BTC-EUR", FROZEN_MS) != other.bitvavo.trades("BTC-EUR", FROZEN_MS)


def test_the_tape_does_not_depend_on_the_account_window(world: World) -> None:
    later = World(seed=7, days=DAYS, now_ms=FROZEN_MS + 3 * DAY_MS)
    end = day_start(FROZEN_MS)
    for key, market in world.markets.items():
        assert market.trades(end - HOUR_MS, end) == later.markets[key].trades(end - HOUR_MS, end)


def test_wall_clock_world_keeps_time() -> None:
    before = time.time() * 1000
    live = World(days=2)
    first = live.now_ms()
    assert before - 1000 <= live.created_ms <= first <= time.time() * 1000 + 1000
    time.sleep(0.01)
    assert live.now_ms() > first
    # the tape keeps going past the moment the world was created
    market = live.markets[("bitstamp", "btcusd")]
    assert market.trades(live.created_ms, live.created_ms + 2 * HOUR_MS)


# --- the tape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        ("bitstamp", "btcusd"),
        ("bitstamp", "eurusd"),
        ("bitvavo", "BTC-EUR"),
        ("bitvavo", "ADA-EUR"),
    ],
)
def test_candles_are_exact_aggregates_of_the_trades(world: World, key: tuple[str, str]) -> None:
    market = world.markets[key]
    start = day_start(FROZEN_MS) - 2 * DAY_MS
    end = start + DAY_MS
    trades = market.trades(start, end)
    assert trades
    assert all(a.ts_ms <= b.ts_ms and a.seq < b.seq for a, b in itertools.pairwise(trades))
    assert all(start <= t.ts_ms < end for t in trades)
    for interval in (60, 180, 300, 900, 3600, 14400, 86400):
        expected = buckets(trades, interval * 1000)
        candles = market.candles(interval, start, end)
        assert [c.open_ms for c in candles] == sorted(expected), interval
        for candle in candles:
            got = (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.trades)
            assert got == aggregate(expected[candle.open_ms]), (interval, candle)
    # hours are the exact aggregate of their minutes
    minutes = market.candles(60, start, end)
    for hour in market.candles(3600, start, end):
        inside = [m for m in minutes if hour.open_ms <= m.open_ms < hour.open_ms + HOUR_MS]
        assert hour.open == inside[0].open and hour.close == inside[-1].close
        assert hour.high == max(m.high for m in inside) and hour.low == min(m.low for m in inside)
        assert hour.volume == sum((m.volume for m in inside), ZERO)
        assert hour.trades == sum(m.trades for m in inside)


def test_three_day_candles_aggregate_days(world: World) -> None:
    market = world.markets[("bitvavo", "ADA-EUR")]
    start = world.tape_start_ms - 3 * DAY_MS
    end = world.tape_start_ms + 9 * DAY_MS
    step = 3 * DAY_MS
    trades = market.trades(start // step * step, (end - 1) // step * step + step)
    assert trades[0].ts_ms >= world.tape_start_ms
    expected = buckets(trades, step)
    candles = market.candles(259_200, start, end)
    assert [c.open_ms for c in candles] == sorted(k for k in expected if start <= k < end)
    for candle in candles:
        got = (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.trades)
        assert got == aggregate(expected[candle.open_ms])


def test_nothing_before_the_tape_starts(world: World) -> None:
    assert world.genesis_ms % DAY_MS == 0 and world.tape_start_ms % DAY_MS == 0
    assert world.genesis_ms <= world.history_start_ms - GENESIS_MARGIN_DAYS * DAY_MS
    assert world.tape_start_ms <= world.genesis_ms
    start = world.tape_start_ms
    for market in world.markets.values():
        assert market.genesis_ms == start
        assert market.trades(start - 30 * DAY_MS, start) == []
        assert market.candles(86400, 0, start) == []
        first_day = market.trades(start, start + DAY_MS)
        assert first_day and first_day[0].ts_ms >= start


def test_every_ledger_row_has_market_data_on_its_day(world: World) -> None:
    """Old rows (the int-type era) lie before the account window but not before the tape, so
    they can be valued from candles as on the real exchange."""
    market = world.markets[("bitstamp", "btceur")]
    for row in world.bitstamp.user_transactions:
        moment = datetime.strptime(str(row["datetime"])[:19], "%Y-%m-%d %H:%M:%S")
        day = int(moment.replace(tzinfo=UTC).timestamp() * 1000) // DAY_MS * DAY_MS
        assert market.candles(86400, day, day + DAY_MS), row["datetime"]


def test_price_path_follows_the_real_hourly_closes(world: World, samples_dir: Path) -> None:
    for name, key in (
        ("bitvavo_BTC-EUR_1h_2020-2024.csv", ("bitvavo", "BTC-EUR")),
        ("bitvavo_ETH-EUR_1h_2021-2023.csv", ("bitvavo", "ETH-EUR")),
    ):
        real: dict[int, Decimal] = {}
        with open(samples_dir / "market" / name, newline="") as f:
            for row in csv.DictReader(f):
                opened = datetime.strptime(row["Datetime"], "%Y-%m-%dT%H:%M:%S.%f%z")
                real[int(opened.timestamp() * 1000)] = Decimal(row["Close"])
        market = world.markets[key]
        sim = {c.open_ms: c.close for c in market.candles(3600, world.genesis_ms, FROZEN_MS)}
        common = sorted(set(sim) & set(real))
        assert len(common) > 24 * (DAYS + GENESIS_MARGIN_DAYS - 2)
        deviations = sorted(abs(sim[h] / real[h] - 1) for h in common)
        assert deviations[-1] < Decimal("0.03"), (key, deviations[-1])
        assert deviations[len(deviations) // 2] < Decimal("0.005"), key


def test_cross_rates_and_venues_agree(world: World) -> None:
    start, end = world.genesis_ms, day_start(FROZEN_MS)

    def closes(exchange: str, symbol: str) -> dict[int, Decimal]:
        return {
            c.open_ms: c.close for c in world.markets[(exchange, symbol)].candles(3600, start, end)
        }

    btceur, btcusd = closes("bitstamp", "btceur"), closes("bitstamp", "btcusd")
    vavo = closes("bitvavo", "BTC-EUR")
    eurusd = [c.close for c in world.markets[("bitstamp", "eurusd")].candles(86400, start, end)]
    assert eurusd and all(Decimal("1.05") <= r <= Decimal("1.12") for r in eurusd)
    for hour in set(btceur) & set(btcusd) & set(vavo):
        assert Decimal("1.04") < btcusd[hour] / btceur[hour] < Decimal("1.13")
        assert abs(btceur[hour] / vavo[hour] - 1) < Decimal("0.01")


def test_bitvavo_has_quiet_minutes_and_hours(world: World) -> None:
    end = day_start(FROZEN_MS)
    start = world.genesis_ms
    for symbol in ("BTC-EUR", "ETH-EUR", "ADA-EUR"):
        market = world.markets[("bitvavo", symbol)]
        minutes = market.candles(60, end - DAY_MS, end)
        assert 0 < len(minutes) < 1440, symbol
    hours = world.markets[("bitvavo", "ADA-EUR")].candles(3600, start, end)
    assert len(hours) < (end - start) // HOUR_MS
    late_night = [h for h in hours if (h.open_ms // HOUR_MS) % 24 < 6]
    daytime = [h for h in hours if (h.open_ms // HOUR_MS) % 24 >= 6]
    assert sum(h.trades for h in late_night) / len(late_night) < sum(
        h.trades for h in daytime
    ) / len(daytime)


def test_trades_share_seconds_and_milliseconds(world: World) -> None:
    end = day_start(FROZEN_MS)
    bitstamp = world.markets[("bitstamp", "btcusd")].trades(end - HOUR_MS, end)
    per_second = Counter(t.ts_ms // 1000 for t in bitstamp)
    assert max(per_second.values()) >= 2
    assert len({t.seq for t in bitstamp}) == len(bitstamp)

    market = world.markets[("bitvavo", "BTC-EUR")]
    bitvavo = market.trades(end - HOUR_MS, end)
    per_ms = Counter(t.ts_ms for t in bitvavo)
    assert max(per_ms.values()) >= 2
    ids = [market.trade_uuid(t) for t in bitvavo]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert ids == [market.trade_uuid(t) for t in market.trades(end - HOUR_MS, end)]


def test_latest_trades_walks_backwards(world: World) -> None:
    market = world.markets[("bitvavo", "ETH-EUR")]
    end = day_start(FROZEN_MS)
    newest = market.latest_trades(end, 300)
    assert len(newest) == 300
    assert newest == list(reversed(market.trades(newest[-1].ts_ms, end)))[:300]
    assert market.last_trade_before(end) == newest[0]


# --- Bitstamp ---------------------------------------------------------------------------

BITSTAMP_FIXED_KEYS = {"id", "datetime", "type", "fee", "order_id"}


def bitstamp_movements(row: dict[str, Any]) -> tuple[dict[str, Decimal], str | None]:
    """Currency columns (non-zero) and the traded pair key, read straight off a wire row."""
    moves: dict[str, Decimal] = {}
    pair = None
    for key, value in row.items():
        if key in BITSTAMP_FIXED_KEYS:
            continue
        if "_" in key:
            if num(value) != 0:
                pair = key
            continue
        if num(value) != 0:
            moves[key] = num(value)
    return moves, pair


def traded_pair(row: dict[str, Any]) -> str:
    """The traded pair key of a trade row (`btc_eur`)."""
    _, pair = bitstamp_movements(row)
    assert pair is not None, row
    return pair


def replay_bitstamp(
    rows: list[dict[str, Any]],
) -> tuple[dict[str, Decimal], list[dict[str, Decimal]]]:
    balance: dict[str, Decimal] = defaultdict(Decimal)
    history = []
    for row in sorted(rows, key=lambda r: r["id"]):
        moves, pair = bitstamp_movements(row)
        fee = num(row["fee"])
        kind = str(row["type"])
        for currency, amount in moves.items():
            balance[currency] += amount
        if kind == "2":
            assert pair is not None
            balance[pair.split("_")[1]] -= fee
        elif kind == "0":
            (currency,) = moves
            balance[currency] -= fee
        history.append(dict(balance))
    return dict(balance), history


def test_bitstamp_balances_are_an_exact_replay_and_never_negative(world: World) -> None:
    rows = world.bitstamp.user_transactions
    final, history = replay_bitstamp(rows)
    assert all(v >= 0 for snapshot in history for v in snapshot.values())
    reported = {r["currency"]: r for r in world.bitstamp.balances(FROZEN_MS)}
    for currency, total in final.items():
        row = reported[currency]
        assert num(row["total"]) == total, currency
        assert num(row["available"]) + num(row["reserved"]) == total
    assert set(final) >= {"eur", "usd", "btc", "eth"}
    assert any(num(r["reserved"]) > 0 for r in reported.values())
    # an earlier moment replays the rows up to it
    middle = rows[len(rows) // 2]
    at = datetime.fromisoformat(middle["datetime"]).replace(tzinfo=UTC)
    at_ms = int(at.timestamp() * 1000)
    upto = [r for r in rows if datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC) <= at]
    partial, _ = replay_bitstamp(upto)
    reported_then = {r["currency"]: num(r["total"]) for r in world.bitstamp.balances(at_ms)}
    assert all(reported_then[c] == v for c, v in partial.items())


def test_bitstamp_ledger_shape(world: World) -> None:
    rows = world.bitstamp.user_transactions
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))
    currencies = {"usd", "eur", "btc", "eth"}
    assert all(currencies <= set(r) for r in rows)
    assert all(sum("_" in k and k != "order_id" for k in r) == 1 for r in rows)
    types = Counter(str(r["type"]) for r in rows)
    for code in ("0", "1", "2", "25", "26", "27", "32", "33", "99"):
        assert types[code] > 0, code
    deposits = [bitstamp_movements(r)[0] for r in rows if str(r["type"]) == "0"]
    assert any("eur" in d for d in deposits) and any("usd" in d for d in deposits)
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if "order_id" in row:
            by_order[row["order_id"]].append(row)
    assert any(len(fills) > 1 for fills in by_order.values())
    # several fee rates: maker/taker and tiers
    rates = {
        (num(r["fee"]) / abs(bitstamp_movements(r)[0][traded_pair(r).split("_")[1]])).quantize(
            Decimal("0.0001")
        )
        for r in rows
        if str(r["type"]) == "2" and r["datetime"] > "2022"
    }
    assert len(rates) >= 2
    sells = [
        r
        for r in rows
        if str(r["type"]) == "2"
        and any(v < 0 for k, v in bitstamp_movements(r)[0].items() if k in ("btc", "eth"))
    ]
    assert sells


def test_bitstamp_crypto_transactions_match_the_ledger(world: World) -> None:
    rows = world.bitstamp.user_transactions
    crypto = world.bitstamp.crypto_transactions
    assert crypto["deposits"] and crypto["withdrawals"]
    for kind, code in (("deposits", "0"), ("withdrawals", "1")):
        for tx in crypto[kind]:
            assert isinstance(tx["datetime"], int) and len(tx["txid"]) >= 64
            matches = []
            for row in rows:
                moves, _ = bitstamp_movements(row)
                currency = tx["currency"].lower()
                if str(row["type"]) != code or currency not in moves:
                    continue
                when = datetime.fromisoformat(row["datetime"]).replace(tzinfo=UTC).timestamp()
                on_chain = abs(moves[currency]) - (num(row["fee"]) if code == "1" else 0)
                if abs(when - tx["datetime"]) <= 3600 and on_chain == num(tx["amount"]):
                    matches.append(row)
            assert len(matches) == 1, tx


# --- Bitvavo ----------------------------------------------------------------------------


def bitvavo_events(world: World, now_ms: int) -> list[tuple[int, dict[str, Decimal]]]:
    """Every balance change the endpoints show at `now_ms`, as (time, deltas), in time order.

    Fills come from /v2/trades (fee charged when it shows: at settlement), deposits and
    withdrawals from their histories (withdrawal amount excludes its fee), and app trades and
    staking from /account/history (the items whose id /v2/trades does not know).
    """
    bv = world.bitvavo
    events: list[tuple[int, dict[str, Decimal]]] = []
    fill_ids = set()
    for market in bv.markets_traded:
        base, quote = market.split("-")
        for fill in bv.trades(market, now_ms):
            fill_ids.add(fill["id"])
            value = Decimal(fill["amount"]) * Decimal(fill["price"])
            sign = 1 if fill["side"] == "buy" else -1
            events.append(
                (fill["timestamp"], {base: sign * Decimal(fill["amount"]), quote: -sign * value})
            )
            if "fee" in fill:
                events.append(
                    (fill["timestamp"] + 600_000, {fill["feeCurrency"]: -Decimal(fill["fee"])})
                )
    for row in bv.deposits(now_ms):
        events.append(
            (row["timestamp"], {row["symbol"]: Decimal(row["amount"]) - Decimal(row["fee"])})
        )
    for row in bv.withdrawals(now_ms):
        events.append(
            (row["timestamp"], {row["symbol"]: -Decimal(row["amount"]) - Decimal(row["fee"])})
        )
    for item in bv.history(now_ms):
        if item["type"] in ("deposit", "withdrawal") or item["transactionId"] in fill_ids:
            continue
        executed = datetime.strptime(item["executedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=UTC
        )
        events.append((int(executed.timestamp() * 1000), history_deltas(item)))
    events.sort(key=lambda e: e[0])
    return events


def history_deltas(item: dict[str, Any]) -> dict[str, Decimal]:
    deltas: dict[str, Decimal] = defaultdict(Decimal)
    if "sentCurrency" in item:
        deltas[item["sentCurrency"]] -= Decimal(item["sentAmount"])
    if "receivedCurrency" in item:
        deltas[item["receivedCurrency"]] += Decimal(item["receivedAmount"])
    if "feesCurrency" in item:
        deltas[item["feesCurrency"]] -= Decimal(item["feesAmount"])
    return deltas


def reported_bitvavo(world: World, now_ms: int) -> dict[str, Decimal]:
    return {
        r["symbol"]: Decimal(r["available"]) + Decimal(r["inOrder"])
        for r in world.bitvavo.balance(now_ms)
    }


def test_bitvavo_balance_is_an_exact_replay_and_never_negative(world: World) -> None:
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for _, deltas in bitvavo_events(world, FROZEN_MS):
        for symbol, delta in deltas.items():
            balance[symbol] += delta
            assert balance[symbol] >= 0, symbol
    reported = reported_bitvavo(world, FROZEN_MS)
    assert {s: v for s, v in balance.items()} == {s: reported[s] for s in balance}
    assert set(reported) >= {"EUR", "BTC", "ETH", "ADA"}
    assert any(Decimal(r["inOrder"]) > 0 for r in world.bitvavo.balance(FROZEN_MS))


def test_bitvavo_history_alone_replays_the_balance_once_everything_settled(world: World) -> None:
    later = FROZEN_MS + HOUR_MS
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for item in world.bitvavo.history(later):
        for symbol, delta in history_deltas(item).items():
            balance[symbol] += delta
    reported = reported_bitvavo(world, later)
    assert all(balance[s] == reported[s] for s in reported)


def test_unsettled_fills_lack_fees_until_settled(world: World) -> None:
    bv = world.bitvavo
    now_rows = bv.trades("BTC-EUR", FROZEN_MS)
    unsettled = [r for r in now_rows if not r["settled"]]
    assert unsettled
    assert all("fee" not in r and "feeCurrency" not in r for r in unsettled)
    assert all(FROZEN_MS - r["timestamp"] < 600_000 for r in unsettled)
    ids = {r["id"] for r in unsettled}
    later = max(r["timestamp"] for r in unsettled) + 600_000
    settled = [r for r in bv.trades("BTC-EUR", later) if r["id"] in ids]
    assert len(settled) == len(ids)
    assert all(r["settled"] and r["feeCurrency"] == "EUR" and "fee" in r for r in settled)
    history_ids = {i["transactionId"] for i in bv.history(FROZEN_MS)}
    assert not ids & history_ids
    assert ids <= {i["transactionId"] for i in bv.history(later)}
    # the fee is charged exactly when it shows
    fees = sum((Decimal(r["fee"]) for r in settled), ZERO)
    assert reported_bitvavo(world, later)["EUR"] == reported_bitvavo(world, FROZEN_MS)["EUR"] - fees


def test_bitvavo_fills_orders_fees_and_rebates(world: World) -> None:
    bv = world.bitvavo
    fills = [f for m in bv.markets_traded for f in bv.trades(m, FROZEN_MS + HOUR_MS)]
    assert set(bv.markets_traded) == {"ADA-EUR", "BTC-EUR", "ETH-EUR", "PHA-EUR"}
    assert {f["taker"] for f in fills} == {True, False}
    assert any(Decimal(f["fee"]) < 0 for f in fills)
    assert Counter(f["orderId"] for f in fills).most_common(1)[0][1] > 1
    assert Decimal(bv.fees("ADA-EUR")["maker"]) < 0
    assert {"tier", "volume", "taker", "maker"} == set(bv.fees("BTC-EUR"))


def test_app_trades_are_only_in_the_history(world: World) -> None:
    bv = world.bitvavo
    later = FROZEN_MS + HOUR_MS
    fill_ids = {f["id"] for m in bv.markets_traded for f in bv.trades(m, later)}
    history = bv.history(later)
    app = [
        i for i in history if i["type"] in ("buy", "sell") and i["transactionId"] not in fill_ids
    ]
    assert app
    assert fill_ids <= {i["transactionId"] for i in history}
    assert any(i["type"] == "staking" for i in history)


def test_withdrawal_status_moves_with_the_clock(world: World) -> None:
    bv = world.bitvavo
    recent = [w for w in bv.withdrawals(FROZEN_MS) if w["status"] != "completed"]
    assert recent
    later = {(w["timestamp"], w["symbol"]): w for w in bv.withdrawals(FROZEN_MS + DAY_MS)}
    assert all(later[(w["timestamp"], w["symbol"])]["status"] == "completed" for w in recent)
    assert any(w["symbol"] == "EUR" for w in bv.deposits(FROZEN_MS))


# --- between the two accounts -------------------------------------------------------------


def test_coins_move_between_the_accounts_both_ways(world: World) -> None:
    later = FROZEN_MS + DAY_MS
    bs_rows = world.bitstamp.user_transactions
    crypto = world.bitstamp.crypto_transactions
    bv_deposits = {d["txId"].strip(): d for d in world.bitvavo.deposits(later) if "txId" in d}
    bv_withdrawals = {w["txId"].strip(): w for w in world.bitvavo.withdrawals(later) if "txId" in w}
    seen = set()
    for tx in crypto["withdrawals"]:
        deposit = bv_deposits.get(tx["txid"])
        if deposit is None:
            continue  # sent to an outside wallet
        ledger = [
            r
            for r in bs_rows
            if str(r["type"]) == "1"
            and tx["currency"].lower() in bitstamp_movements(r)[0]
            and abs(
                datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC).timestamp()
                - tx["datetime"]
            )
            <= 1
        ]
        (row,) = ledger
        gross = -bitstamp_movements(row)[0][tx["currency"].lower()]
        assert Decimal(deposit["amount"]) == gross - num(row["fee"]) == num(tx["amount"])
        assert num(row["fee"]) > 0
        assert deposit["symbol"] == tx["currency"] and deposit["timestamp"] > tx["datetime"] * 1000
        seen.add(("bitstamp->bitvavo", tx["currency"]))
    for tx in crypto["deposits"]:
        withdrawal = bv_withdrawals.get(tx["txid"])
        if withdrawal is None:
            continue
        assert Decimal(withdrawal["amount"]) == num(tx["amount"])
        assert Decimal(withdrawal["fee"]) > 0
        assert withdrawal["timestamp"] < tx["datetime"] * 1000
        assert tx["destinationAddress"] == withdrawal["address"]
        seen.add(("bitvavo->bitstamp", tx["currency"]))
    assert seen == {
        ("bitstamp->bitvavo", "BTC"),
        ("bitstamp->bitvavo", "ETH"),
        ("bitvavo->bitstamp", "BTC"),
        ("bitvavo->bitstamp", "ETH"),
    }


# --- quirks -------------------------------------------------------------------------------


def test_bitstamp_quirks_are_on_by_default(world: World) -> None:
    rows = world.bitstamp.user_transactions
    assert world.quirks
    old = [r for r in rows if r["datetime"] < "2021-06-01"]
    new = [r for r in rows if r["datetime"] >= "2021-06-01"]
    assert old and all(isinstance(r["type"], int) for r in old)
    assert new and all(isinstance(r["type"], str) for r in new)
    zeros = [r[c] for r in rows for c in ("usd", "eur", "btc", "eth") if num(r[c]) == 0]
    assert any(type(z) is int for z in zeros)
    assert any(isinstance(z, Decimal) for z in zeros)
    assert any(isinstance(z, str) for z in zeros)
    assert any(r["fee"] == "None" and str(r["type"]) != "2" for r in rows)
    trades = [r for r in rows if str(r["type"]) == "2"]
    assert all(isinstance(r[traded_pair(r)], Decimal) for r in trades)
    assert all(r["btc_usd"] == "0.00" for r in rows if str(r["type"]) != "2")
    assert any("." in r["datetime"] for r in rows)
    assert any("." not in r["datetime"] for r in rows)
    assert {"33", "99"} <= {str(r["type"]) for r in rows}
    assert any(
        d["txId"] != d["txId"].strip() for d in world.bitvavo.deposits(FROZEN_MS) if "txId" in d
    )


def test_quirks_off_gives_plain_shapes(plain_world: World) -> None:
    rows = plain_world.bitstamp.user_transactions
    assert not plain_world.quirks
    assert all(isinstance(r["type"], str) for r in rows)
    assert all(
        isinstance(v, str) for r in rows for k, v in r.items() if k not in ("id", "order_id")
    )
    assert all(r["fee"] != "None" for r in rows)
    assert all("." in r["datetime"] for r in rows)
    assert not {"33", "99"} & {str(r["type"]) for r in rows}
    assert all(
        d["txId"] == d["txId"].strip()
        for d in plain_world.bitvavo.deposits(FROZEN_MS)
        if "txId" in d
    )
    final, history = replay_bitstamp(rows)
    assert all(v >= 0 for snapshot in history for v in snapshot.values())
    reported = {r["currency"]: num(r["total"]) for r in plain_world.bitstamp.balances(FROZEN_MS)}
    assert all(reported[c] == v for c, v in final.items())


def test_market_surface(world: World) -> None:
    keys = set(world.markets)
    assert {("bitstamp", s) for s in ("btcusd", "btceur", "ethusd", "etheur", "eurusd")} | {
        ("bitvavo", s) for s in ("BTC-EUR", "ETH-EUR", "ADA-EUR")
    } <= keys
    market: Market = world.markets[("bitstamp", "eurusd")]
    assert (market.symbol, market.base, market.quote) == ("eurusd", "EUR", "USD")
    assert market.price_decimals == 5
    trade = market.trades(day_start(FROZEN_MS) - DAY_MS, day_start(FROZEN_MS))[0]
    assert trade.price == trade.price.quantize(Decimal(1).scaleb(-5))
    assert trade.side in ("buy", "sell") and trade.amount > 0
    with pytest.raises(ValueError):
        market.candles(90, 0, FROZEN_MS)
    assert MINUTE_MS == 60_000
