"""The account streams against the sandbox over real HTTP: what lands is exactly the simulated
accounts (the world is the truth), once each, through re-runs, settlement, crashes and faults."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests
from sandbox_fixtures import sandbox_fixture, world_fixture
from sandbox_runtime import ClockedWorld

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.datasets import (
    BALANCE_SNAPSHOTS,
    BITSTAMP_LEDGER,
    BITVAVO_HISTORY,
    FEE_SCHEDULES,
    FILLS,
    GAPS,
    OTHER_EVENTS,
    TRANSFERS,
    WITHDRAWAL_FEES,
    RecordDataset,
)
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.values import RowParseError
from pipelines.flows.account_lake import Meter
from pipelines.flows.account_streams import sync_account
from pipelines.flows.bitstamp_account import (
    bitstamp_ledger,
    derive_ledger_file,
    ledger_stem,
)
from pipelines.flows.bitvavo_account import bitvavo_history, bitvavo_trades
from pipelines.flows.runtime import Runtime, StreamResult
from pipelines.http import InvalidRequestError, RequestBudget, RetryPolicy, WeightBudget
from pipelines.sandbox.catalog import DELISTED
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

NOW = datetime(2024, 3, 31, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 45
FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)
SNAPSHOTS = (BALANCE_SNAPSHOTS, FEE_SCHEDULES, WITHDRAWAL_FEES)
ACCOUNT_DATASETS = (
    BITSTAMP_LEDGER,
    BITVAVO_HISTORY,
    FILLS,
    TRANSFERS,
    OTHER_EVENTS,
    *SNAPSHOTS,
)
BS = {"exchange": "bitstamp", "account": "main"}
BV = {"exchange": "bitvavo", "account": "main"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def make_runtime(
    sandbox: Sandbox,
    directory: Path,
    *,
    clock: Callable[[], datetime] | None = None,
    bitvavo_markets: tuple[str, ...] | None = None,
) -> Runtime:
    """A runtime on the sandbox with its data under `directory`, as `tally sandbox` configures."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tally.toml"
    write_config(config, sandbox_document(sandbox))
    settings = load_settings(config)
    if bitvavo_markets is not None:
        bitvavo = dataclasses.replace(settings.exchange("bitvavo"), markets=bitvavo_markets)
        settings = dataclasses.replace(
            settings, exchanges={**settings.exchanges, "bitvavo": bitvavo}
        )
    return Runtime(
        settings,
        retry=FAST_RETRY,
        clock=clock or (lambda: NOW),
        limiters={
            "bitstamp": RequestBudget(*BITSTAMP_PACING),
            "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
        },
    )


def sync_all(rt: Runtime) -> list[StreamResult]:
    return [*sync_account(rt, "bitstamp"), *sync_account(rt, "bitvavo")]


def table(rt: Runtime, source: RecordDataset, **partition: str) -> pl.DataFrame:
    return rt.lake.scan(source.dataset, **partition).collect()


def file_digests(rt: Runtime) -> dict[Path, str]:
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in rt.lake.root.rglob("*.parquet")
    }


def counts(rt: Runtime) -> dict[str, int]:
    return {d.dataset.name: table(rt, d).height for d in ACCOUNT_DATASETS}


def latest_totals(rt: Runtime, partition: dict[str, str]) -> dict[str, Decimal]:
    frame = table(rt, BALANCE_SNAPSHOTS, **partition)
    latest = frame.filter(pl.col("taken_at") == pl.col("taken_at").max())
    return dict(zip(latest["asset"].to_list(), latest["total"].to_list(), strict=True))


def truth_fees(rows: list[dict[str, Any]]) -> dict[str, Decimal | None]:
    return {str(r["id"]): Decimal(r["fee"]) if "fee" in r else None for r in rows}


def landed_fees(frame: pl.DataFrame) -> dict[str, Decimal | None]:
    ids = frame["fill_id"].to_list()
    assert len(ids) == len(set(ids)), "a fill landed twice"
    return dict(zip(ids, frame["fee"].to_list(), strict=True))


def truth_statuses(rows: list[dict[str, Any]]) -> list[tuple[int, Decimal, str]]:
    return sorted((int(r["timestamp"]), Decimal(r["amount"]), r["status"]) for r in rows)


def landed_statuses(rt: Runtime, source: str) -> list[tuple[int, Decimal, str]]:
    frame = table(rt, TRANSFERS, **BV).filter(pl.col("source") == source)
    return sorted(
        (ms(t), a, s) for t, a, s in frame.select("executed_at", "amount", "status").iter_rows()
    )


world = world_fixture(seed=7, days=DAYS, now_ms=NOW_MS)
sandbox = sandbox_fixture()


@pytest.fixture(scope="module")
def synced(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Runtime, list[StreamResult]]:
    """One full sync into a fresh lake; Bitvavo configured with BTC-EUR only, so that the other
    traded markets must be found from the history and the balance."""
    rt = make_runtime(sandbox, tmp_path_factory.mktemp("synced"), bitvavo_markets=("BTC-EUR",))
    return rt, sync_all(rt)


# --- completeness --------------------------------------------------------------------------


def test_bitstamp_ledger_lands_and_classifies_every_row_once(
    synced: tuple[Runtime, list[StreamResult]], world: World
) -> None:
    rt, _ = synced
    truth = world.bitstamp.user_transactions
    ledger = table(rt, BITSTAMP_LEDGER)
    assert ledger["entry_id"].to_list() == sorted(int(r["id"]) for r in truth)
    assert ledger["entry_id"].n_unique() == len(truth)

    derived = {
        "fills": table(rt, FILLS, **BS).filter(pl.col("source") == "user_transactions"),
        "transfers": table(rt, TRANSFERS, **BS).filter(pl.col("source") == "user_transactions"),
        "other_events": table(rt, OTHER_EVENTS, **BS).filter(
            pl.col("source") == "user_transactions"
        ),
    }
    id_column = {"fills": "fill_id", "transfers": "transfer_id", "other_events": "event_id"}
    placed = Counter(
        int(i) for name, frame in derived.items() for i in frame[id_column[name]].to_list()
    )
    assert sorted(placed) == sorted(int(r["id"]) for r in truth)
    assert set(placed.values()) == {1}, "an entry was classified twice"

    # Where each row belongs follows from its type code in the world: 2 → fill, 0/1 → transfer,
    # anything else (staking, rewards, the undocumented 99) → other event.
    expected = {
        int(r["id"]): "fills"
        if str(r["type"]) == "2"
        else "transfers"
        if str(r["type"]) in ("0", "1")
        else "other_events"
        for r in truth
    }
    for name, frame in derived.items():
        assert {int(i) for i in frame[id_column[name]].to_list()} == {
            i for i, where in expected.items() if where == name
        }, name
    assert "99" in set(derived["other_events"]["event_type"].to_list())
    unknown = derived["other_events"].filter(pl.col("event_type") == "99")
    assert unknown["kind"].to_list() == ["unknown"]
    trade_fees = sum(Decimal(str(r["fee"])) for r in truth if str(r["type"]) == "2")
    assert derived["fills"]["fee"].sum() == trade_fees

    crypto = table(rt, TRANSFERS, **BS).filter(pl.col("source") == "crypto-transactions")
    sent = [*world.bitstamp.crypto_transactions["deposits"]]
    sent += world.bitstamp.crypto_transactions["withdrawals"]
    assert sorted(crypto["txid"].to_list()) == sorted(r["txid"] for r in sent)


def test_bitvavo_fills_history_and_transfers_land_once(
    synced: tuple[Runtime, list[StreamResult]], world: World
) -> None:
    rt, _ = synced
    account = world.bitvavo
    assert len(account.markets_traded) > 1, "one market: discovery is not exercised"
    fills = table(rt, FILLS, **BV)
    book = fills.filter(pl.col("source") == "trades")
    unsettled = 0
    for market in account.markets_traded:
        truth = account.trades(market, NOW_MS)
        assert landed_fees(book.filter(pl.col("market") == market)) == truth_fees(truth), market
        unsettled += sum("fee" not in r for r in truth)
    assert unsettled > 0, "no unsettled fill at NOW: the fee-less case is not exercised"
    assert set(book["market"].to_list()) == set(account.markets_traded)

    app = fills.filter(pl.col("source") == "account/history")
    app_ids = {i.transaction_id for i in account.items if i.type in ("buy", "sell")}
    assert app_ids, "the world has no app trades"
    assert sorted(app["fill_id"].to_list()) == sorted(app_ids)
    assert not set(app["fill_id"].to_list()) & set(book["fill_id"].to_list())

    history = table(rt, BITVAVO_HISTORY)
    truth_history = [str(item["transactionId"]) for item in account.history(NOW_MS)]
    assert sorted(history["transaction_id"].to_list()) == sorted(truth_history)
    staking = table(rt, OTHER_EVENTS, **BV).filter(pl.col("source") == "account/history")
    assert staking.height == sum(i.type == "staking" for i in account.items)

    assert landed_statuses(rt, "depositHistory") == truth_statuses(account.deposits(NOW_MS))
    assert landed_statuses(rt, "withdrawalHistory") == truth_statuses(account.withdrawals(NOW_MS))


def test_balance_snapshots_equal_the_worlds_balances(
    synced: tuple[Runtime, list[StreamResult]], world: World
) -> None:
    rt, _ = synced
    bitstamp = {r["currency"].upper(): Decimal(r["total"]) for r in world.bitstamp.balances(NOW_MS)}
    bitvavo = {
        r["symbol"]: Decimal(r["available"]) + Decimal(r["inOrder"])
        for r in world.bitvavo.balance(NOW_MS)
    }
    assert latest_totals(rt, BS) == bitstamp
    assert latest_totals(rt, BV) == bitvavo
    assert any(total > 0 for total in bitvavo.values())
    fees = table(rt, FEE_SCHEDULES, **BV)
    listed = {symbol for exchange, symbol in world.markets if exchange == "bitvavo"}
    assert set(fees["market"].to_list()) == set(world.bitvavo.markets_traded) & listed


# --- re-runs, settlement, crashes ------------------------------------------------------------


def test_second_run_adds_nothing_and_reads_the_ledger_once(
    synced: tuple[Runtime, list[StreamResult]], world: World
) -> None:
    rt, _ = synced
    before, digests = counts(rt), file_digests(rt)
    results = {r.stream: r for r in sync_all(rt)}
    after = counts(rt)
    snapshot_names = {d.dataset.name for d in SNAPSHOTS}
    for name, rows in before.items():
        assert after[name] == (2 * rows if name in snapshot_names else rows), name
    assert results["ledger bitstamp"].requests == 1
    assert results["ledger bitstamp"].rows == {}
    changed = {p for p, digest in file_digests(rt).items() if digests.get(p) != digest}
    assert changed == {p for p in changed if p.stem == "snapshots"}
    assert changed, "the snapshots did not land again"
    # the markets the account traded, from the world: its fills' markets and the catalog's
    # delisted ones (PHA-EUR still served by /v2/trades, NEO-EUR refused); the configured
    # BTC-EUR and the EUR market of every asset held are among them
    traded = set(world.bitvavo.markets_traded) | {spec.symbol for spec in DELISTED}
    listed = {symbol for exchange, symbol in world.markets if exchange == "bitvavo"}
    held = {
        f"{r['symbol']}-EUR"
        for r in world.bitvavo.balance(NOW_MS)
        if r["symbol"] != "EUR" and Decimal(r["available"]) + Decimal(r["inOrder"]) != 0
    }
    assert {"BTC-EUR"} | (held & listed) <= traded
    read = table(rt, FILLS, **BV).filter(pl.col("source") == "trades")["market"].to_list()
    refused = rt.lake.scan(GAPS, exchange="bitvavo").collect()["market"].to_list()
    assert set(read) | set(refused) == traded
    # one request per traded market (listed, delisted, or refused as delisted), plus the market
    # list
    assert results["trades bitvavo"].requests == len(traded) + 1
    assert results["trades bitvavo"].weight == 5 * len(traded) + 1


def test_settlement_txids_and_statuses_replace_rows(tmp_path: Path) -> None:
    world = ClockedWorld(seed=7, days=DAYS, now=NOW)
    crypto_out = next(
        t for t in world.bitvavo.transfers if t.kind == "withdrawal" and t.crypto is not None
    )
    # before its txid shows; then NOW (fills of the last minutes unsettled, a EUR withdrawal
    # approved); then half an hour later (all settled, all completed)
    clocks = [crypto_out.ts_ms + 5 * 60_000, NOW_MS, NOW_MS + 30 * 60_000]
    with start_sandbox(seed=21, world=world) as sandbox:
        rt = make_runtime(sandbox, tmp_path, clock=world.clock.utc)
        seen_unsettled = seen_pending = False
        for clock in clocks:
            world.clock.set(clock / 1000)
            sync_all(rt)
            book = table(rt, FILLS, **BV).filter(pl.col("source") == "trades")
            for market in world.bitvavo.markets_traded:
                truth = world.bitvavo.trades(market, clock)
                got = landed_fees(book.filter(pl.col("market") == market))
                assert got == truth_fees(truth), (clock, market)
                seen_unsettled |= None in got.values()
            # history lists a fill once settled, dated when it executed: the re-read finds it
            history = table(rt, BITVAVO_HISTORY)["transaction_id"].to_list()
            assert sorted(history) == sorted(
                str(i["transactionId"]) for i in world.bitvavo.history(clock)
            )
            app = table(rt, FILLS, **BV).filter(pl.col("source") == "account/history")
            assert sorted(app["fill_id"].to_list()) == sorted(
                i.transaction_id
                for i in world.bitvavo.items
                if i.type in ("buy", "sell") and i.ts_ms <= clock
            )
            withdrawals = world.bitvavo.withdrawals(clock)
            assert landed_statuses(rt, "withdrawalHistory") == truth_statuses(withdrawals)
            seen_pending |= any(r["status"] != "completed" for r in withdrawals)
            txids = table(rt, TRANSFERS, **BV).filter(pl.col("source") == "withdrawalHistory")
            assert sorted(txids["txid"].drop_nulls().to_list()) == sorted(
                r["txId"].strip() for r in withdrawals if "txId" in r
            )
            ledger_ids = table(rt, BITSTAMP_LEDGER)["entry_id"].to_list()
            visible = [
                int(r["id"])
                for r in world.bitstamp.user_transactions
                if ms(datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC)) <= clock
            ]
            assert ledger_ids == visible
        assert seen_unsettled and seen_pending, "the moving states were not exercised"
        final_fills = table(rt, FILLS, **BV).filter(pl.col("source") == "trades")
        assert final_fills["fee"].null_count() == 0
        # the newest ledger page was read again and replaced, not stacked
        assert len(rt.lake.stems(BITSTAMP_LEDGER.dataset, account="main")) == 1


def test_crash_between_ledger_and_derived_writes_is_repaired_locally(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    rt = make_runtime(sandbox, tmp_path)
    bitstamp_ledger(rt)
    (stem,) = rt.lake.stems(BITSTAMP_LEDGER.dataset, account="main")
    (fills_file,) = [p for p in rt.lake.files(FILLS.dataset, **BS) if p.stem.endswith(stem)]
    original = pl.read_parquet(fills_file)
    fills_file.unlink()  # the crash: the ledger page landed, its fills did not

    # and an overlap: a shorter page, as if its replacement landed but it was not deleted yet
    ledger = table(rt, BITSTAMP_LEDGER)
    ids = ledger["entry_id"].to_list()
    short = ledger.filter(pl.col("entry_id") <= ids[len(ids) // 2])
    short_stem = ledger_stem(ids[0], ids[len(ids) // 2])
    rt.lake.land(BITSTAMP_LEDGER.dataset, short, stem=short_stem)
    derive_ledger_file(rt.lake, short_stem, Meter("test", "bitstamp"))
    assert len(rt.lake.stems(FILLS.dataset, **BS)) == 1  # the overlap's fills, not the lost ones

    result = bitstamp_ledger(rt)
    assert result.requests == 1  # the one "nothing new" page
    assert pl.read_parquet(fills_file).equals(original)
    assert rt.lake.stems(BITSTAMP_LEDGER.dataset, account="main") == {stem}
    assert {p.stem for p in rt.lake.files(FILLS.dataset, **BS)} == {f"user_transactions-{stem}"}
    placed = table(rt, FILLS, **BS)["fill_id"]
    assert placed.n_unique() == placed.len()


# --- bad input and faults ----------------------------------------------------------------


def test_a_failing_market_does_not_hold_back_the_others(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    rt = make_runtime(sandbox, tmp_path, bitvavo_markets=("AAA-EUR", "BTC-EUR"))
    bitvavo_history(rt)
    with pytest.raises(InvalidRequestError) as failure:
        bitvavo_trades(rt)  # AAA-EUR, first in order, is unknown to the exchange
    assert (failure.value.exchange, failure.value.endpoint) == ("bitvavo", "trades")
    book = table(rt, FILLS, **BV)
    assert set(book["market"].to_list()) == set(world.bitvavo.markets_traded)
    assert book.height == sum(
        len(world.bitvavo.trades(m, NOW_MS)) for m in world.bitvavo.markets_traded
    )


def test_malformed_ledger_row_fails_and_changes_no_file(
    sandbox: Sandbox, world: World, tmp_path: Path
) -> None:
    rt = make_runtime(sandbox, tmp_path)
    sync_account(rt, "bitstamp")
    digests = file_digests(rt)
    # fault seed 2 breaks the shape of one row of the first page (other seeds may drop an
    # optional key, which no parser can tell from a row without it)
    with start_sandbox(seed=2, world=world, faults=1.0, fault_kinds="malformed_row") as broken:
        rt = make_runtime(broken, tmp_path)
        with pytest.raises(RowParseError) as failure:
            bitstamp_ledger(rt)
        faults = requests.get(broken.bitstamp.stats_url, timeout=5).json()["faults"]
    assert faults.get("malformed_row", 0) >= 1
    assert failure.value.exchange == "bitstamp"
    assert failure.value.endpoint == "user_transactions"
    assert failure.value.row_index is not None
    assert f"bitstamp user_transactions: row {failure.value.row_index}" in str(failure.value)
    assert file_digests(rt) == digests


def canonical(rt: Runtime) -> dict[str, pl.DataFrame]:
    """Every account dataset without the moments of fetching, one row per distinct content."""
    out = {}
    for source in ACCOUNT_DATASETS:
        frame = table(rt, source).drop("fetched_at")
        if "taken_at" in frame.columns:
            frame = frame.drop("taken_at")
        frame = frame.unique()
        out[source.dataset.name] = frame.sort([c for c in frame.columns if c != "movements"])
    return out


def test_faults_leave_the_same_lake(
    synced: tuple[Runtime, list[StreamResult]], world: World, tmp_path: Path
) -> None:
    clean, _ = synced
    with start_sandbox(seed=11, world=world, faults=0.2, slow_seconds=0.1) as faulty:
        rt = make_runtime(faulty, tmp_path, bitvavo_markets=("BTC-EUR",))
        results = sync_all(rt)
        injected = {
            name: sum(requests.get(side.stats_url, timeout=5).json()["faults"].values())
            for name, side in (("bitstamp", faulty.bitstamp), ("bitvavo", faulty.bitvavo))
        }
    assert injected["bitstamp"] > 0 and injected["bitvavo"] > 0, injected
    assert sum(r.retries for r in results) > 0
    expected, got = canonical(clean), canonical(rt)
    for name, frame in expected.items():
        assert frame.height > 0, name
        assert got[name].equals(frame), name
