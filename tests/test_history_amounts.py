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
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.config import Settings, load_settings
from pipelines.config_file import write_config
from pipelines.datasets import BITVAVO_HISTORY, BITVAVO_HISTORY_MATCHES, FILLS
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.bitvavo_parse import parse_account_history, parse_trades
from pipelines.flows.account_lake import stamped_frame, upsert
from pipelines.flows.account_streams import sync_account
from pipelines.flows.bitvavo_account import derive_bitvavo_history
from pipelines.flows.runtime import Runtime
from pipelines.http import RetryPolicy, WeightBudget
from pipelines.lake import Lake
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document
from warehouse.build import build
from warehouse.connect import connect

NOW = datetime(2024, 5, 14, 16, 20, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 10
SEED = 41
FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)
REALITIES = list(itertools.product(("rounded", "fee"), ("fill", "own", "order")))


def rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    with connect(settings.data_dir) as connection:
        result = connection.execute(query)
        names = [d[0] for d in result.description or ()]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def matches(settings: Settings) -> pl.DataFrame:
    return Lake(settings.lake_dir).scan(BITVAVO_HISTORY_MATCHES.dataset).collect()


# --- the sandbox under each reality ------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module", params=REALITIES, ids=lambda r: f"{r[0]}-{r[1]}")
def synced(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[str, str], Settings]:
    amounts, ids = request.param
    directory = tmp_path_factory.mktemp(f"amounts-{amounts}-{ids}")
    variants = Variants(bitvavo_history_amounts=amounts, bitvavo_history_ids=ids)
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        config = directory / "tally.toml"
        write_config(config, sandbox_document(sandbox))
        settings = load_settings(config)
        rt = Runtime(
            settings,
            retry=FAST_RETRY,
            clock=lambda: NOW,
            limiters={"bitvavo": WeightBudget(headers=WEIGHT_HEADERS)},
        )
        try:
            sync_account(rt, "bitvavo")
        finally:
            rt.close()
    build(settings)
    return (amounts, ids), settings


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
    assert set(links["status"].to_list()) == {"matched"}
    linked: dict[str, list[str]] = defaultdict(list)
    for link in links.iter_rows(named=True):
        linked[link["transaction_id"]].append(link["fill_id"])
    assert {i: sorted(f) for i, f in linked.items()} == {i: sorted(f) for i, f in listed.items()}
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


T0 = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
MAIN = {"account": "main"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def fill_row(
    fill_id: str, at: datetime, amount: str, price: str, fee: str, side: str = "buy"
) -> dict[str, Any]:
    """A settled `/v2/trades` BTC-EUR row."""
    return {
        "id": fill_id,
        "orderId": f"order-{fill_id}",
        "timestamp": ms(at),
        "market": "BTC-EUR",
        "side": side,
        "amount": amount,
        "price": price,
        "taker": True,
        "fee": fee,
        "feeCurrency": "EUR",
        "settled": True,
    }


def trade_item(
    item_id: str, at: datetime, base: str, quote: str, fee: str, side: str = "buy"
) -> dict[str, Any]:
    """An `/account/history` BTC-EUR buy (or sell) of `base` BTC for `quote` EUR."""
    eur, btc = ("sent", "received") if side == "buy" else ("received", "sent")
    return {
        "transactionId": item_id,
        "executedAt": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
        "type": side,
        "priceCurrency": "EUR",
        "priceAmount": str((Decimal(quote) / Decimal(base)).quantize(Decimal("0.01"))),
        f"{eur}Currency": "EUR",
        f"{eur}Amount": quote,
        f"{btc}Currency": "BTC",
        f"{btc}Amount": base,
        "feesCurrency": "EUR",
        "feesAmount": fee,
    }


def hand_sync(
    directory: Path, trades: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
) -> Settings:
    """Land `/v2/trades` rows and `/account/history` items as a sync would, derive, build."""
    settings = Settings(data_dir=directory / "data")
    rt = Runtime(settings)
    fetched = T0 + timedelta(days=1)
    fills = parse_trades(json.loads(json.dumps(list(trades))), account="main")
    frame = stamped_frame(FILLS, ((f, fetched) for f in fills))
    upsert(rt.lake, FILLS.dataset, frame, "trades-BTC-EUR", {"exchange": "bitvavo"} | MAIN)
    page = {"items": list(history), "currentPage": 1, "totalPages": 1, "maxItems": 100}
    items = parse_account_history(page, account="main").items
    frame = stamped_frame(BITVAVO_HISTORY, ((i, fetched) for i in items))
    upsert(rt.lake, BITVAVO_HISTORY.dataset, frame, "history", MAIN)
    derive_bitvavo_history(rt)
    build(settings)
    return settings


def landed(settings: Settings) -> list[tuple[str, str]]:
    found = rows(settings, "select source, fill_id from fills order by all")
    return [(r["source"], r["fill_id"]) for r in found]


def checks(settings: Settings) -> dict[str, dict[str, Any]]:
    return {r["fill_id"]: r for r in rows(settings, "select * from fill_checks")}


def test_an_item_with_its_quote_rounded_to_cents_is_matched_not_counted_again(
    tmp_path: Path,
) -> None:
    # 0.0123 × 40123.45 = 493.518435 EUR; history shows 493.52; a sell the same way
    settings = hand_sync(
        tmp_path,
        trades=[
            fill_row("fill-a", T0, "0.0123", "40123.45", "1.23"),
            fill_row("fill-b", T0 + timedelta(hours=1), "0.0077", "40200.13", "0.77", "sell"),
        ],
        history=[
            trade_item("item-a", T0 + timedelta(seconds=3), "0.0123", "493.52", "1.23"),
            trade_item("item-b", T0 + timedelta(hours=1), "0.0077", "309.54", "0.77", "sell"),
        ],
    )
    assert landed(settings) == [("trades", "fill-a"), ("trades", "fill-b")]
    links = matches(settings).sort("fill_id")
    assert links["transaction_id"].to_list() == ["item-a", "item-b"]
    assert set(links["status"].to_list()) == {"matched"}
    assert set(links["signal"].to_list()) == {"rounded"}
    for check in checks(settings).values():
        assert (check["status"], check["orphan"], check["history_problem"]) == ("ok", False, None)


def test_an_item_with_the_fee_inside_its_quote_is_matched_not_counted_again(
    tmp_path: Path,
) -> None:
    # a buy's sentAmount 493.518435 + 1.23 fee; a sell's receivedAmount 309.541001 - 0.77 fee
    settings = hand_sync(
        tmp_path,
        trades=[
            fill_row("fill-a", T0, "0.0123", "40123.45", "1.23"),
            fill_row("fill-b", T0 + timedelta(hours=1), "0.0077", "40200.13", "0.77", "sell"),
        ],
        history=[
            trade_item("item-a", T0, "0.0123", "494.748435", "1.23"),
            trade_item("item-b", T0 + timedelta(hours=1), "0.0077", "308.771001", "0.77", "sell"),
        ],
    )
    assert landed(settings) == [("trades", "fill-a"), ("trades", "fill-b")]
    links = matches(settings)
    assert sorted(links["transaction_id"].to_list()) == ["item-a", "item-b"]
    assert set(links["signal"].to_list()) == {"fee"}
    assert {c["problems"] for c in checks(settings).values()} == {None}


def test_a_rounded_item_two_fills_fit_equally_is_ambiguous_not_an_app_trade(
    tmp_path: Path,
) -> None:
    # both 400.004 and 399.996 round to 400.00; an app trade a minute later, a different amount
    settings = hand_sync(
        tmp_path,
        trades=[
            fill_row("fill-a", T0, "0.01", "40000.4", "1"),
            fill_row("fill-b", T0 + timedelta(seconds=5), "0.01", "39999.6", "1"),
        ],
        history=[
            trade_item("item-x", T0 + timedelta(seconds=2), "0.01", "400.00", "1"),
            trade_item("app-1", T0 + timedelta(seconds=30), "0.011", "440.00", "1.1"),
        ],
    )
    assert landed(settings) == [
        ("account/history", "app-1"),
        ("trades", "fill-a"),
        ("trades", "fill-b"),
    ]
    found = checks(settings)
    for fill_id in ("fill-a", "fill-b"):
        check = found[fill_id]
        assert (check["status"], check["problems"], check["orphan"]) == ("problem", "history", None)
        problem = check["history_problem"]
        assert "item-x" in problem and "equally" in problem
        assert "fill-a (rounded) or fill-b (rounded)" in problem
    links = matches(settings)
    assert sorted(links["fill_id"].to_list()) == ["fill-a", "fill-b"]
    assert set(links["status"].to_list()) == {"ambiguous"}


def test_an_exact_item_keeps_its_fill_from_an_earlier_rounded_one(tmp_path: Path) -> None:
    # 0.01 × 40000.2 = 400.002: item-y shows it exactly, the earlier item-x rounded
    settings = hand_sync(
        tmp_path,
        trades=[fill_row("fill-b", T0 + timedelta(seconds=1), "0.01", "40000.2", "1")],
        history=[
            trade_item("item-x", T0, "0.01", "400.00", "1"),
            trade_item("item-y", T0 + timedelta(seconds=1), "0.01", "400.002", "1"),
        ],
    )
    assert landed(settings) == [("trades", "fill-b")]  # item-x is no app trade either
    links = {
        (r["transaction_id"], r["status"], r["signal"])
        for r in matches(settings).iter_rows(named=True)
    }
    assert links == {("item-y", "matched", "amounts"), ("item-x", "ambiguous", "rounded")}
    (check,) = checks(settings).values()
    assert check["history_items"] == "item-y"
    assert "item-x" in check["history_problem"]
    assert "already matched to item-y" in check["history_problem"]
