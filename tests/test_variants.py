"""Every sandbox reality of an open API behaviour (`pipelines/sandbox/variants.py`): a full sync
lands exactly the simulated accounts and every balance reconciles to the last decimal.

The world (the truth) is the same for every variant; only what the emulated APIs show of it
changes, so one set of expected values serves them all. No variant is skipped.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from sandbox_fixtures import world_fixture
from synced_lake import Accounts, Candles, SyncedLakeFactory
from warehouse_query import rows

from pipelines.config import Settings
from pipelines.datasets import FILLS, OTHER_EVENTS, TRANSFERS
from pipelines.sandbox.variants import Variants, every_variant, parse_variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 21
SEED = 13
VARIANTS = [Variants(), *every_variant()]


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module", params=VARIANTS, ids=str)
def synced(
    request: pytest.FixtureRequest, synced_lake: SyncedLakeFactory
) -> tuple[Variants, Settings]:
    """Both accounts and the account window's 1h candles, synced from a sandbox playing
    `variants`, then the warehouse built. The candles first: the variants that the candle
    endpoints do not read share one candles lake (`Candles.options`), and sync only accounts."""
    variants: Variants = request.param
    lake = synced_lake(
        seed=SEED, days=DAYS, now=NOW, what=(Candles(), Accounts()), variants=variants
    )
    return variants, lake.settings


def lake(settings: Settings, dataset: Any, exchange: str) -> pl.DataFrame:
    from pipelines.lake import Lake

    return Lake(settings.lake_dir).scan(dataset.dataset, exchange=exchange).collect()


# --- the variants themselves -----------------------------------------------------------------


def test_every_option_value_is_played_once() -> None:
    changed = Counter(name for v in every_variant() for name in v.changed())
    assert set(changed) == {
        "bitvavo-history-ids",
        "bitstamp-crypto-limit",
        "bitvavo-trades-span",
        "bitvavo-trades-end",
        "bitvavo-trades-start",
        "bitstamp-ohlc-before-listing",
        "bitvavo-candles-settle",
        "bitstamp-perps",
        "bitvavo-withdrawal-amount",
        "bitvavo-history-amounts",
        "bitvavo-error-text",
        "bitstamp-json-spacing",
        "bitvavo-json-spacing",
    }
    assert all(len(v.changed()) == 1 for v in every_variant())


def test_parse_variants_reads_options_and_names_bad_ones() -> None:
    parsed = parse_variants(["bitvavo-history-ids=order", "bitvavo-candles-settle=30"])
    assert parsed.bitvavo_history_ids == "order"
    assert parsed.bitvavo_candles_settle == 30
    assert str(parsed) == "bitvavo-history-ids=order bitvavo-candles-settle=30"
    with pytest.raises(ValueError, match="bitvavo-history-ids"):
        parse_variants(["bitvavo-history-ids=some"])
    with pytest.raises(ValueError, match="unknown sandbox variant 'nope'"):
        parse_variants(["nope=1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_variants(["bitstamp-perps"])


# --- a full sync under every reality ----------------------------------------------------------


def test_every_balance_reconciles_exactly(synced: tuple[Variants, Settings]) -> None:
    _, settings = synced
    verdicts = rows(settings, "select * from reconcile_balances")
    assert {r["exchange"] for r in verdicts} == {"bitstamp", "bitvavo"}
    for verdict in verdicts:
        assert verdict["status"] == "ok", verdict
        assert verdict["difference"] == 0, verdict


def test_bitvavo_fills_land_exactly_once(synced: tuple[Variants, Settings], world: World) -> None:
    _, settings = synced
    account = world.bitvavo
    fills = rows(settings, "select * from fills where exchange = 'bitvavo'")
    book = [f for f in fills if f["source"] == "trades"]
    app = [f for f in fills if f["source"] == "account/history"]
    executed = [f for f in account.fills if f.ts_ms <= NOW_MS]
    assert sorted(f["fill_id"] for f in book) == sorted(f.fill_id for f in executed)
    app_truth = [i for i in account.items if i.type in ("buy", "sell") and i.ts_ms <= NOW_MS]
    assert app_truth, "the world has no app trades"
    assert len(app) == len(app_truth)
    assert sorted(Decimal(f["base_amount"]) for f in app) == sorted(
        Decimal(i.base_amount) for i in app_truth
    )


def test_transfers_and_other_events_land_exactly_once(
    synced: tuple[Variants, Settings], world: World
) -> None:
    _, settings = synced
    bitvavo = rows(settings, "select * from transfers where exchange = 'bitvavo'")
    assert len(bitvavo) == sum(t.ts_ms <= NOW_MS for t in world.bitvavo.transfers)
    crypto = lake(settings, TRANSFERS, "bitstamp").filter(pl.col("source") == "crypto-transactions")
    sent = [
        *world.bitstamp.crypto_transactions["deposits"],
        *world.bitstamp.crypto_transactions["withdrawals"],
    ]
    assert sorted(crypto["txid"].to_list()) == sorted(r["txid"] for r in sent)
    staking = lake(settings, OTHER_EVENTS, "bitvavo")
    assert staking.height == sum(
        i.type not in ("buy", "sell") and i.ts_ms <= NOW_MS for i in world.bitvavo.items
    )
    ledger_fills = lake(settings, FILLS, "bitstamp")
    trades = [r for r in world.bitstamp.user_transactions if str(r["type"]) == "2"]
    assert ledger_fills.height == len(trades)


def test_a_bitvavo_withdrawal_fee_is_inside_its_amount_exactly_when_the_data_says_so(
    synced: tuple[Variants, Settings],
) -> None:
    variants, settings = synced
    withdrawals = rows(
        settings,
        "select fee_in_amount, fee_basis from transfers "
        "where exchange = 'bitvavo' and kind = 'withdrawal'",
    )
    assert withdrawals, "the world has no Bitvavo withdrawal"
    inside = variants.bitvavo_withdrawal_amount in ("gross", "mixed")  # as withdrawalHistory
    assert {w["fee_in_amount"] for w in withdrawals} == {inside}
    assert all(w["fee_basis"].startswith("txid evidence") for w in withdrawals), withdrawals
    assert not rows(
        settings,
        "select * from transfers where exchange = 'bitvavo' and source = 'account/history' "
        "and in_ledger",
    ), "an account/history transfer was not matched to its deposit/withdrawal listing"
    moved = rows(
        settings,
        "select * from internal_transfers where status = 'matched' "
        "and withdrawal_exchange = 'bitvavo'",
    )
    assert moved, "no coins moved from Bitvavo to Bitstamp: the evidence is not exercised"
    assert all(m["difference"] == 0 for m in moved), moved
