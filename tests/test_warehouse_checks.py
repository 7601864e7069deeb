"""The checking views over a lake synced from the sandbox (the simulated accounts are the truth):
`internal_transfers` matches every coin the two accounts sent each other exactly once and lists
the rest; `fees` adds up, per month, to an independent sum over the lake's fills, valued exactly;
`fill_checks` passes every synced fill and flags a planted bad quote, duplicate, orphan and a fee
above the schedule in force; the arithmetic stays exact where DECIMAL(38,18) products overflow."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lake_edits import lake_copy, rewrite
from sandbox_fixtures import world_fixture
from synced_lake import Accounts, Candles, SyncedLakeFactory
from warehouse_build import build
from warehouse_query import rows

from pipelines.config import Settings
from pipelines.datasets import BITSTAMP_LEDGER, FEE_SCHEDULES, FILLS
from pipelines.exchanges.bitstamp_parse import classify_entry, parse_user_transactions
from pipelines.exchanges.records import FeeSchedule, Fill
from pipelines.lake import Lake
from pipelines.sandbox.world import World

NOW = datetime(2024, 6, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 60
SEED = 7
QUANTUM = Decimal("1e-18")


def quote_plus_one_euro(fill_id: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """A change that adds 1 EUR to the quote amount of the fill `fill_id`."""

    def change(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.when(pl.col("fill_id") == fill_id)
            .then(pl.col("quote_amount") + Decimal(1))
            .otherwise(pl.col("quote_amount"))
            .alias("quote_amount")
        )

    return change


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


def month(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


# --- the synced lake ---------------------------------------------------------------------------


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module")
def synced(synced_lake: SyncedLakeFactory) -> Settings:
    """Both accounts and 1h candles of every configured market synced at a frozen NOW, built
    (shared: the tests change copies of it only)."""
    return synced_lake(seed=SEED, days=DAYS, now=NOW, what=(Accounts(), Candles())).settings


# --- truth from the simulated accounts -------------------------------------------------------


def transfers_between_accounts(world: World) -> dict[str, tuple[str, str, Decimal]]:
    """txid → (sending exchange, asset, amount on chain) for every transfer between the two
    accounts, found by matching txids across the accounts' own listings."""
    crypto = world.bitstamp.crypto_transactions
    bitstamp_out = {w["txid"]: w for w in crypto["withdrawals"]}
    bitstamp_in = {d["txid"]: d for d in crypto["deposits"]}
    bitvavo_in = {r["txId"].strip(): r for r in world.bitvavo.deposits(NOW_MS) if "txId" in r}
    bitvavo_out = {r["txId"].strip(): r for r in world.bitvavo.withdrawals(NOW_MS) if "txId" in r}
    pairs = {}
    for txid in bitstamp_out.keys() & bitvavo_in.keys():
        row = bitstamp_out[txid]
        pairs[txid.lower()] = ("bitstamp", row["currency"], Decimal(str(row["amount"])))
    for txid in bitvavo_out.keys() & bitstamp_in.keys():
        row = bitvavo_out[txid]
        pairs[txid.lower()] = ("bitvavo", row["symbol"], Decimal(row["amount"]))
    return pairs


# --- internal_transfers ------------------------------------------------------------------------


def test_every_transfer_between_the_accounts_is_matched_exactly_once(
    synced: Settings, world: World
) -> None:
    truth = transfers_between_accounts(world)
    assert {sender for sender, _, _ in truth.values()} == {"bitstamp", "bitvavo"}
    found = rows(synced, "select * from internal_transfers")
    matched = [r for r in found if r["status"] == "matched"]
    assert sorted(r["txid"] for r in matched) == sorted(truth)
    assert len({r["withdrawal_id"] for r in matched}) == len(matched)
    assert len({r["deposit_id"] for r in matched}) == len(matched)
    for row in matched:
        sender, asset, on_chain = truth[row["txid"]]
        assert (row["withdrawal_exchange"], row["asset"], row["match_rule"]) == (
            sender,
            asset,
            "txid",
        )
        assert row["deposit_exchange"] != sender
        assert row["sent"] == row["deposited"] == on_chain
        assert row["difference"] == 0
        assert row["withdrawn"] == on_chain + row["withdrawal_fee"]
        assert row["deposited_at"] > row["withdrawn_at"]

    # everything else that moved a balance is listed once, as unmatched
    moved = rows(synced, "select exchange, transfer_id, kind from transfers where in_ledger")
    paired = {(r["withdrawal_exchange"], r["withdrawal_id"]) for r in matched}
    paired |= {(r["deposit_exchange"], r["deposit_id"]) for r in matched}
    unmatched = sorted(
        (r["withdrawal_exchange"] or r["deposit_exchange"], r["withdrawal_id"] or r["deposit_id"])
        for r in found
        if r["status"] != "matched"
    )
    assert unmatched == sorted(
        (r["exchange"], r["transfer_id"])
        for r in moved
        if (r["exchange"], r["transfer_id"]) not in paired
    )
    assert {r["status"] for r in found} == {"matched", "unmatched_deposit", "unmatched_withdrawal"}


def test_a_withdrawal_nobody_received_is_listed_unmatched(
    synced: Settings, world: World, tmp_path: Path
) -> None:
    copy = lake_copy(synced, tmp_path)
    path = copy.lake_dir / "transfers/exchange=bitvavo/account=main/withdrawal-history.parquet"
    txid = "feed" + "0" * 60
    sent_at = NOW - timedelta(days=3)

    def plant(frame: pl.DataFrame) -> pl.DataFrame:
        template = frame.filter(pl.col("asset") == "BTC").head(1)
        planted = template.with_columns(
            pl.lit(txid).alias("transfer_id"),
            pl.lit(txid).alias("txid"),
            pl.lit(Decimal("0.01234567")).cast(template.schema["amount"]).alias("amount"),
            pl.lit(sent_at).cast(template.schema["executed_at"]).alias("executed_at"),
        )
        return pl.concat([frame, planted])

    rewrite(path, plant)
    build(copy)
    (planted,) = rows(copy, "select * from internal_transfers where txid = ?", txid)
    assert planted["status"] == "unmatched_withdrawal"
    assert (planted["withdrawal_exchange"], planted["asset"]) == ("bitvavo", "BTC")
    assert planted["sent"] == Decimal("0.01234567") and planted["deposit_id"] is None
    matched = rows(copy, "select txid from internal_transfers where status = 'matched'")
    assert sorted(r["txid"] for r in matched) == sorted(transfers_between_accounts(world))


def test_a_deposit_without_txid_is_matched_on_amount_and_time(
    synced: Settings, world: World, tmp_path: Path
) -> None:
    sent = {t: v for t, v in transfers_between_accounts(world).items() if v[0] == "bitstamp"}
    txid = sorted(sent)[0]
    copy = lake_copy(synced, tmp_path)
    path = copy.lake_dir / "transfers/exchange=bitvavo/account=main/deposit-history.parquet"
    rewrite(
        path,
        lambda f: f.with_columns(
            pl.when(pl.col("txid").str.to_lowercase() == txid)
            .then(None)
            .otherwise(pl.col("txid"))
            .alias("txid")
        ),
    )
    build(copy)
    found = rows(copy, "select * from internal_transfers where status = 'matched'")
    (pair,) = [r for r in found if r["txid"] == txid]
    assert pair["match_rule"] == "amount and time"
    assert pair["deposit_exchange"] == "bitvavo" and pair["deposited"] == sent[txid][2]
    assert len(found) == len(transfers_between_accounts(world))


# --- fees --------------------------------------------------------------------------------------


def lake_fills(settings: Settings) -> list[dict[str, Any]]:
    return Lake(settings.lake_dir).scan(FILLS.dataset).collect().to_dicts()


def price_lookup(settings: Settings) -> Callable[[str, datetime], Decimal | None]:
    """The newest hourly price at or before a moment (EUR: 1)."""
    series: dict[str, tuple[list[datetime], list[Decimal]]] = defaultdict(lambda: ([], []))
    eur = "select asset, priced_at, price from prices where currency = 'EUR' order by priced_at"
    for row in rows(settings, eur):
        series[row["asset"]][0].append(row["priced_at"])
        series[row["asset"]][1].append(row["price"])

    def price(asset: str, at: datetime) -> Decimal | None:
        if asset == "EUR":
            return Decimal(1)
        times, prices = series[asset]
        index = bisect_right(times, at)
        return prices[index - 1] if index else None

    return price


def test_trade_fees_per_month_add_up_to_the_fills_and_are_valued_exactly(
    synced: Settings,
) -> None:
    fills = lake_fills(synced)
    keys = [(f["exchange"], f["account"], f["market"], f["fill_id"]) for f in fills]
    assert len(keys) == len(set(keys))
    price = price_lookup(synced)
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for fill in fills:
        if not fill["fee"]:
            continue
        when = month(fill["executed_at"])
        group = expected[
            (fill["exchange"], fill["account"], fill["fee_asset"], fill["market"], when)
        ]
        rate = price(fill["fee_asset"], fill["executed_at"])
        assert rate is not None, fill
        group[0] += 1
        group[1] += fill["fee"]
        with localcontext(prec=100):  # a product of 18-decimal values: more than 28 digits
            group[2] += (fill["fee"] * rate).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    found = {
        (r["exchange"], r["account"], r["asset"], r["market"], r["month"]): [
            r["fees"],
            r["fee"],
            r["value"],
        ]
        for r in rows(synced, "select * from fees where fee_type = 'trade'")
    }
    assert found == dict(expected)
    assert {asset for _, _, asset, _, _ in found} == {"EUR", "USD"}  # USD valued via EUR-USD
    rebates = rows(synced, "select sum(rebated) as r from fees where market = 'ADA-EUR'")
    assert rebates[0]["r"] > 0


def test_transfer_fees_are_the_accounts_own(synced: Settings, world: World) -> None:
    expected: dict[tuple[str, str, str, date], Decimal] = defaultdict(Decimal)
    for entry in world.bitstamp.entries:
        if entry.fee and entry.type_code in (0, 1):
            kind = "deposit" if entry.type_code == 0 else "withdrawal"
            (currency,) = entry.moves
            moment = datetime.fromtimestamp(entry.ts_ms / 1000, tz=UTC)
            expected[("bitstamp", currency.upper(), kind, month(moment))] += entry.fee
    for transfer in world.bitvavo.transfers:
        if transfer.fee and transfer.ts_ms <= NOW_MS:
            moment = datetime.fromtimestamp(transfer.ts_ms / 1000, tz=UTC)
            expected[("bitvavo", transfer.symbol, transfer.kind, month(moment))] += transfer.fee
    found = rows(synced, "select * from fees where fee_type in ('deposit', 'withdrawal')")
    assert {
        (r["exchange"], r["asset"], r["fee_type"], r["month"]): r["fee"] for r in found
    } == dict(expected)
    assert all(r["market"] is None for r in found)


# --- fill_checks -------------------------------------------------------------------------------


def expected_fee_checks(world: World) -> dict[tuple[str, str], str]:
    """(exchange, fill id) → 'ok' when the fee is at most the fill's value × the current
    schedule's rate (maker/taker; the higher one for Bitstamp, whose ledger does not say) plus
    a unit of the fee's last decimal as sent, else 'above_later_schedule'."""
    checks = {}
    bitstamp = {r["market"]: r["fees"] for r in world.bitstamp.trading_fees}
    wire = dict(zip(world.bitstamp.ids, world.bitstamp.user_transactions, strict=True))
    for entry, entry_id in zip(world.bitstamp.entries, world.bitstamp.ids, strict=True):
        if entry.type_code != 2 or entry.pair is None:
            continue
        fees = bitstamp["".join(entry.pair)]
        rate = max(Decimal(fees["maker"]), Decimal(fees["taker"])) / 100
        quote = abs(entry.moves[entry.pair[1]])
        unit = Decimal(1).scaleb(-decimals(str(wire[entry_id]["fee"])))
        ok = entry.fee <= quote * rate + unit
        checks[("bitstamp", str(entry_id))] = "ok" if ok else "above_later_schedule"
    for fill in world.bitvavo.fills:
        if fill.ts_ms > NOW_MS:
            continue
        if fill.settle_ms > NOW_MS:
            checks[("bitvavo", fill.fill_id)] = "unsettled"
            continue
        if ("bitvavo", fill.market) not in world.markets:  # delisted: no fees to snapshot
            checks[("bitvavo", fill.fill_id)] = "no_schedule"
            continue
        fees = world.bitvavo.fees(fill.market)
        rate = Decimal(fees["taker" if fill.taker else "maker"])
        exponent = fill.fee.normalize().as_tuple().exponent
        assert isinstance(exponent, int), fill  # a fee is finite
        unit = Decimal(1).scaleb(min(0, exponent))
        ok = fill.fee <= fill.quote_amount * rate + unit
        checks[("bitvavo", fill.fill_id)] = "ok" if ok else "above_later_schedule"
    for item in world.bitvavo.items:
        if item.type in ("buy", "sell"):
            checks[("bitvavo", item.transaction_id)] = "not_applicable"
    return checks


def test_every_synced_fill_passes_its_checks(synced: Settings, world: World) -> None:
    checks = rows(synced, "select * from fill_checks")
    (fills,) = rows(synced, "select count(*) as n from fills")
    assert len(checks) == fills["n"] > 0
    for row in checks:
        assert row["quote_ok"] is True, row
        assert (row["status"], row["problems"]) == ("ok", None), row
        assert (row["landed_copies"], row["duplicate"]) == (1, False)
        assert row["orphan"] is (None if not row["settled"] else False)
    rules = {(r["exchange"], r["source"]): r["quote_rule"] for r in checks}
    assert rules == {
        ("bitstamp", "user_transactions"): "quote rounded",
        ("bitvavo", "trades"): "exact",
        ("bitvavo", "account/history"): "leg rounded",
    }
    assert {r["quote_decimals"] for r in checks if r["exchange"] == "bitstamp"} == {2}
    # Bitstamp quotes are rounded: some differ from base × price, all by at most half a cent
    bitstamp = [r["quote_difference"] for r in checks if r["exchange"] == "bitstamp"]
    assert any(bitstamp) and max(map(abs, bitstamp)) <= Decimal("0.005")

    expected = expected_fee_checks(world)
    found = {(r["exchange"], r["fill_id"]): r["fee_check"] for r in checks}
    assert found == expected
    assert {"ok", "above_later_schedule", "unsettled"} <= set(found.values())
    rebate = [r for r in checks if r["fee"] is not None and r["fee"] < 0]
    assert rebate and {r["fee_check"] for r in rebate} == {"ok"}
    for row in checks:
        if row["fee"] is not None:
            exact = row["fee"] / row["quote_amount"]
            assert abs(row["effective_rate"] - exact) <= Decimal("0.5e-12"), row


def test_a_quote_off_by_one_euro_is_flagged(synced: Settings, tmp_path: Path) -> None:
    copy = lake_copy(synced, tmp_path)
    bitvavo = copy.lake_dir / "fills/exchange=bitvavo/account=main/trades-BTC-EUR.parquet"
    bitstamp = sorted((copy.lake_dir / "fills/exchange=bitstamp/account=main").glob("*.parquet"))
    planted = set()
    for path in (bitvavo, bitstamp[-1]):
        frame = pl.read_parquet(path)
        fill_id = frame.filter(pl.col("quote_asset") == "EUR")["fill_id"][0]
        planted.add(fill_id)
        rewrite(path, quote_plus_one_euro(fill_id))
    build(copy)
    flagged = rows(copy, "select * from fill_checks where status <> 'ok'")
    assert {r["fill_id"] for r in flagged} == planted
    for row in flagged:
        assert (row["quote_ok"], row["problems"], row["status"]) == (False, "quote", "problem")
        assert Decimal("0.995") <= row["quote_difference"] <= Decimal("1.005")
    (book,) = [r for r in flagged if r["exchange"] == "bitvavo"]
    assert book["quote_difference"] == 1 and book["computed_exact"]


def test_a_fill_landed_twice_is_flagged_as_a_duplicate(synced: Settings, tmp_path: Path) -> None:
    copy = lake_copy(synced, tmp_path)
    directory = copy.lake_dir / "fills/exchange=bitvavo/account=main"
    copied = pl.read_parquet(directory / "trades-ETH-EUR.parquet").tail(1)
    copied.write_parquet(directory / "trades-ETH-EUR-overlap.parquet")
    build(copy)
    flagged = rows(copy, "select * from fill_checks where status <> 'ok'")
    assert [r["fill_id"] for r in flagged] == [copied["fill_id"][0]]
    (row,) = flagged
    assert (row["landed_copies"], row["duplicate"], row["problems"]) == (2, True, "duplicate")
    assert row["landed_sources"] == "trades"
    (count,) = rows(copy, "select count(*) as n from fills where fill_id = ?", row["fill_id"])
    assert count["n"] == 1


def test_a_fill_missing_from_the_account_history_is_an_orphan(
    synced: Settings, tmp_path: Path
) -> None:
    copy = lake_copy(synced, tmp_path)
    book = pl.read_parquet(
        copy.lake_dir / "fills/exchange=bitvavo/account=main/trades-ADA-EUR.parquet"
    )
    fill_id = book.filter(pl.col("settled"))["fill_id"][0]
    history = copy.lake_dir / "bitvavo_history/account=main/history.parquet"
    rewrite(history, lambda f: f.filter(pl.col("transaction_id") != fill_id))
    build(copy)
    flagged = rows(copy, "select * from fill_checks where status <> 'ok'")
    assert [(r["fill_id"], r["orphan"], r["problems"]) for r in flagged] == [
        (fill_id, True, "orphan")
    ]


def test_a_fee_above_the_schedule_in_force_is_flagged(synced: Settings, tmp_path: Path) -> None:
    copy = lake_copy(synced, tmp_path)
    taken_at = NOW - timedelta(days=30)
    cheap = FeeSchedule(
        "bitvavo", "main", "BTC-EUR", Decimal("0.0001"), Decimal("0.0001"), taken_at
    )
    Lake(copy.lake_dir).land(
        FEE_SCHEDULES.dataset,
        FEE_SCHEDULES.frame([cheap], fetched_at=taken_at),
        stem="planted",
    )
    build(copy)
    checks = rows(
        copy,
        "select * from fill_checks where exchange = 'bitvavo' and market = 'BTC-EUR' "
        "and source = 'trades' and fee > 0",
    )
    after = [r for r in checks if r["executed_at"] >= taken_at]
    before = [r for r in checks if r["executed_at"] < taken_at]
    assert after and before
    for row in after:
        assert row["schedule_in_force"] and row["schedule_taken_at"] == taken_at
        assert row["schedule_rate"] == Decimal("0.0001")
        assert (row["fee_check"], row["problems"]) == ("above_schedule", "fee")
    # before it, the planted snapshot is the oldest: it judges them, but was not yet in force
    assert {(r["fee_check"], r["schedule_in_force"], r["status"]) for r in before} == {
        ("above_later_schedule", False, "ok")
    }


# --- exactness --------------------------------------------------------------------------------


def test_the_recorded_bitstamp_fills_pass_the_quote_identity(
    samples_dir: Path, tmp_path: Path
) -> None:
    text = (samples_dir / "recorded" / "bitstamp_user_transactions.json").read_text()
    entries = parse_user_transactions(json.loads(text, parse_float=Decimal), account="main")
    fills = [f for f in map(classify_entry, entries) if isinstance(f, Fill)]
    settings = Settings(data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    fetched = datetime(2024, 1, 1, tzinfo=UTC)
    lake.land(BITSTAMP_LEDGER.dataset, BITSTAMP_LEDGER.frame(entries, fetched_at=fetched), stem="r")
    lake.land(FILLS.dataset, FILLS.frame(fills, fetched_at=fetched), stem="r")
    build(settings)
    checks = rows(settings, "select * from fill_checks")
    assert len(checks) == len(fills) > 5
    for row in checks:
        assert (row["quote_ok"], row["quote_decimals"], row["status"]) == (True, 2, "ok"), row
        assert row["fee_check"] == "no_schedule" and row["orphan"] is False
    assert any(r["quote_difference"] for r in checks)


def test_products_stay_exact_far_beyond_where_decimal_products_overflow(tmp_path: Path) -> None:
    base = Decimal("123456.123456789012345678")
    price = Decimal("98765.987654321098765432")
    rate = Decimal("0.002345678901234567")
    with localcontext(prec=100):
        exact = base * price
        quote = exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        allowed = quote * rate
        fee = allowed.quantize(Decimal("0.01"), rounding=ROUND_UP)
        effective = (fee / quote).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)
        exact_18 = exact.quantize(QUANTUM, rounding=ROUND_HALF_UP)
        allowed_18 = allowed.quantize(QUANTUM, rounding=ROUND_HALF_UP)
    at = datetime(2024, 3, 1, tzinfo=UTC)

    def fill(fill_id: str, quote_amount: Decimal) -> Fill:
        raw = json.dumps({"id": fill_id, "eur": f"-{quote_amount}", "fee": f"{fee}"})
        return Fill(
            "bitstamp", "main", "BTC-EUR", "BTC", "EUR", fill_id, None, "buy", base,
            quote_amount, price, fee, "EUR", None, True, at, "user_transactions", raw=raw,
        )  # fmt: skip

    settings = Settings(data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    lake.land(
        FILLS.dataset,
        FILLS.frame([fill("1", quote), fill("2", quote + Decimal("0.01"))], fetched_at=at),
        stem="hand",
    )
    schedule = FeeSchedule("bitstamp", "main", "BTC-EUR", rate, rate - Decimal("1e-18"), at)
    lake.land(FEE_SCHEDULES.dataset, FEE_SCHEDULES.frame([schedule], fetched_at=at), stem="s")
    build(settings)
    first, second = rows(settings, "select * from fill_checks order by fill_id")
    assert first["computed_quote"] == exact_18 != exact
    assert first["computed_exact"] is False and second["computed_exact"] is False
    assert first["quote_difference"] == quote - first["computed_quote"]
    assert (first["quote_ok"], second["quote_ok"]) == (True, False)
    assert first["schedule_rate"] == rate  # the higher of maker and taker
    assert first["allowed_fee"] == allowed_18
    assert first["fee_check"] == "ok"
    assert first["effective_rate"] == effective


def test_no_checking_view_has_a_floating_point_column(synced: Settings) -> None:
    columns = rows(
        synced,
        "select table_name, column_name, data_type from duckdb_columns() "
        "where table_name in ('internal_transfers', 'fees', 'fill_checks')",
    )
    assert {c["table_name"] for c in columns} == {"internal_transfers", "fees", "fill_checks"}
    assert [c for c in columns if c["data_type"] in ("DOUBLE", "FLOAT", "REAL")] == []
    money = {"withdrawn", "withdrawal_fee", "sent", "deposited", "deposit_fee", "received"}
    money |= {"difference", "fee", "paid", "rebated", "value", "base_amount", "price"}
    money |= {"quote_amount", "computed_quote", "quote_difference", "effective_rate"}
    money |= {"schedule_rate", "allowed_fee"}
    typed = {c["column_name"]: c["data_type"] for c in columns if c["column_name"] in money}
    assert set(typed) == money
    assert set(typed.values()) == {"DECIMAL(38,18)"}
