"""Bitvavo `/account/history` buys and sells whose amounts are not the fills' exactly.

Nothing proves that history shows an order-book trade's quote amount as its fills' amount ×
price exactly: it may be rounded to the quote currency's decimals, or hold the fee (sandbox
variant `bitvavo-history-amounts`). Such an item must not become an app trade (its trade would
count twice): it is matched to its fills when one candidate fits (signal 'rounded' or 'fee'),
or reported ambiguous in `fill_checks`. Under every combination with `bitvavo-history-ids` a
sync of the sandbox matches every listed order-book item to exactly its own fills; hand-made
lakes fed through the real parsers, derivation and warehouse show one rounded item, one with
its fee inside, one that two fills fit equally, and an app trade that only looks alike.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bitvavo_lakes import T0, HandLake, fill_row, history_item, matched_fills, matches, sync_account
from sandbox_fixtures import world_fixture
from warehouse_query import rows

from pipelines.config import Settings
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 5, 14, 16, 20, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 10
SEED = 41
REALITIES = list(itertools.product(("rounded", "fee"), ("fill", "own", "order")))


# --- the sandbox under each reality ------------------------------------------------------------


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module", params=REALITIES, ids=lambda r: f"{r[0]}-{r[1]}")
def synced(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[str, str], Settings]:
    amounts, ids = request.param
    directory = tmp_path_factory.mktemp(f"amounts-{amounts}-{ids}")
    variants = Variants(bitvavo_history_amounts=amounts, bitvavo_history_ids=ids)
    return (amounts, ids), sync_account(world, variants, directory, NOW)


def test_the_sandbox_shows_history_amounts_as_each_reality_says(world: World) -> None:
    account = world.bitvavo
    fills = {f.fill_id: f for f in account.fills}
    exact = account.history(NOW_MS, amounts="exact")
    for amounts in ("rounded", "fee"):
        shown = account.history(NOW_MS, amounts=amounts)
        assert [i["transactionId"] for i in shown] == [i["transactionId"] for i in exact]
        differ = 0
        for before, after in zip(exact, shown, strict=True):
            fill = fills.get(before["transactionId"])
            if fill is None:  # app trades, transfers and rewards are shown as they are
                assert after == before
                continue
            leg = "sentAmount" if fill.side == "buy" else "receivedAmount"
            quote = fill.amount * fill.price
            assert Decimal(before[leg]) == quote
            if amounts == "rounded":
                assert Decimal(after[leg]) == quote.quantize(Decimal("0.01"))
            else:
                assert Decimal(after[leg]) == quote + (
                    fill.fee if fill.side == "buy" else -fill.fee
                )
            assert {k: v for k, v in after.items() if k != leg} == {
                k: v for k, v in before.items() if k != leg
            }
            differ += after[leg] != before[leg]
        assert differ, f"{amounts}: no history amount differs from its fill's"


def test_every_order_book_item_is_matched_to_its_own_fills_and_counted_once(
    synced: tuple[tuple[str, str], Settings], world: World
) -> None:
    (amounts, ids), settings = synced
    listed = world.bitvavo.history_fills(NOW_MS, ids=ids)
    links = matches(settings)
    assert matched_fills(links) == {i: sorted(f) for i, f in listed.items()}
    # a quote that needs no rounding fits exactly; a fee under a cent is within rounding
    allowed = {"amounts", "rounded"} if amounts == "rounded" else {"amounts", "rounded", "fee"}
    suffix = "+id" if ids == "fill" else ""
    signals = links["signal"].to_list()
    assert set(signals) <= {f"{signal}{suffix}" for signal in allowed}
    assert signals.count(f"{amounts}{suffix}") > len(signals) / 2, "the reality is not played"

    fills = rows(settings, "select * from fills where exchange = 'bitvavo'")
    book = sorted(f["fill_id"] for f in fills if f["source"] == "trades")
    assert book == sorted(f.fill_id for f in world.bitvavo.fills if f.ts_ms <= NOW_MS)
    app = sorted(f["fill_id"] for f in fills if f["source"] == "account/history")
    truth = sorted(i.transaction_id for i in world.bitvavo.items if i.type in ("buy", "sell"))
    assert app == truth
    checks = rows(settings, "select * from fill_checks where exchange = 'bitvavo'")
    assert all(c["history_problem"] is None for c in checks)
    verdicts = rows(settings, "select * from reconcile_balances where exchange = 'bitvavo'")
    assert verdicts
    assert {(v["status"], v["difference"]) for v in verdicts} == {("ok", 0)}


# --- hand-made lakes through the real parsers, derivation and warehouse -----------------------


# 0.0123 BTC bought at 40123.45 EUR, and 0.0077 sold an hour later at 40200.13
A_BUY_AND_A_SELL = (
    fill_row("fill-a", T0, "0.0123", "40123.45", "1.23"),
    fill_row("fill-b", T0 + timedelta(hours=1), "0.0077", "40200.13", "0.77", "sell"),
)


def synced_with_a_buy_and_a_sell(directory: Path, *history: dict[str, Any]) -> HandLake:
    """A lake with `A_BUY_AND_A_SELL` and `history` landed, whose fills both land from
    `/v2/trades` (neither item counts as an app trade)."""
    lake = HandLake(directory)
    lake.sync(trades=A_BUY_AND_A_SELL, history=history)
    assert lake.fills() == [("trades", "fill-a"), ("trades", "fill-b")]
    return lake


def test_an_item_with_its_quote_rounded_to_cents_is_matched_not_counted_again(
    tmp_path: Path,
) -> None:
    # 0.0123 × 40123.45 = 493.518435 EUR; history shows 493.52; a sell the same way
    lake = synced_with_a_buy_and_a_sell(
        tmp_path,
        history_item("item-a", T0 + timedelta(seconds=3), "0.0123", "493.52", "1.23"),
        history_item("item-b", T0 + timedelta(hours=1), "0.0077", "309.54", "0.77", "sell"),
    )
    links = matches(lake.settings).sort("fill_id")
    assert links["transaction_id"].to_list() == ["item-a", "item-b"]
    assert set(links["status"].to_list()) == {"matched"}
    assert set(links["signal"].to_list()) == {"rounded"}
    for check in lake.checks().values():
        assert (check["status"], check["orphan"], check["history_problem"]) == ("ok", False, None)


def test_an_item_with_the_fee_inside_its_quote_is_matched_not_counted_again(
    tmp_path: Path,
) -> None:
    # a buy's sentAmount 493.518435 + 1.23 fee; a sell's receivedAmount 309.541001 - 0.77 fee
    lake = synced_with_a_buy_and_a_sell(
        tmp_path,
        history_item("item-a", T0, "0.0123", "494.748435", "1.23"),
        history_item("item-b", T0 + timedelta(hours=1), "0.0077", "308.771001", "0.77", "sell"),
    )
    links = matches(lake.settings)
    assert sorted(links["transaction_id"].to_list()) == ["item-a", "item-b"]
    assert set(links["signal"].to_list()) == {"fee"}
    assert {c["problems"] for c in lake.checks().values()} == {None}


def test_a_rounded_item_two_fills_fit_equally_is_ambiguous_not_an_app_trade(
    tmp_path: Path,
) -> None:
    # both 400.004 and 399.996 round to 400.00; an app trade a minute later, a different amount
    lake = HandLake(tmp_path)
    lake.sync(
        trades=[
            fill_row("fill-a", T0, "0.01", "40000.4", "1"),
            fill_row("fill-b", T0 + timedelta(seconds=5), "0.01", "39999.6", "1"),
        ],
        history=[
            history_item("item-x", T0 + timedelta(seconds=2), "0.01", "400.00", "1"),
            history_item("app-1", T0 + timedelta(seconds=30), "0.011", "440.00", "1.1"),
        ],
    )
    assert lake.fills() == [
        ("account/history", "app-1"),
        ("trades", "fill-a"),
        ("trades", "fill-b"),
    ]
    for check in lake.ambiguous("item-x", ["fill-a", "fill-b"]):
        assert check["orphan"] is None
        assert "fill-a (rounded) or fill-b (rounded)" in check["history_problem"]


def test_an_exact_item_keeps_its_fill_from_an_earlier_rounded_one(tmp_path: Path) -> None:
    # 0.01 × 40000.2 = 400.002: item-y shows it exactly, the earlier item-x rounded
    lake = HandLake(tmp_path)
    lake.sync(
        trades=[fill_row("fill-b", T0 + timedelta(seconds=1), "0.01", "40000.2", "1")],
        history=[
            history_item("item-x", T0, "0.01", "400.00", "1"),
            history_item("item-y", T0 + timedelta(seconds=1), "0.01", "400.002", "1"),
        ],
    )
    assert lake.fills() == [("trades", "fill-b")]  # item-x is no app trade either
    links = {
        (r["transaction_id"], r["status"], r["signal"])
        for r in matches(lake.settings).iter_rows(named=True)
    }
    assert links == {("item-y", "matched", "amounts"), ("item-x", "ambiguous", "rounded")}
    (check,) = lake.checks().values()
    assert check["history_items"] == "item-y"
    assert "item-x" in check["history_problem"]
    assert "already matched to item-y" in check["history_problem"]
