"""Bitvavo `/account/history` buys and sells matched to `/v2/trades` fills without trusting ids.

Whether a history item that is an order-book trade carries the fill's id, an id of its own, or
stands for a whole order is an open point (sandbox variant `bitvavo-history-ids`). Under each
reality a sync of the sandbox counts every trade once: order-book fills from `/v2/trades`, app
trades from the history, and every listed order-book item is matched to exactly its own fills.
Hand-made lakes, fed through the real parsers, derivation and warehouse, show what the sandbox
cannot play: two equal fills that make an item ambiguous (reported in `fill_checks`, not
guessed), and an order item whose fills land on a later sync than the item itself.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import polars as pl
import pytest
from sandbox_runtime import sandbox_runtime

from pipelines.config import Settings
from pipelines.datasets import BITVAVO_HISTORY, BITVAVO_HISTORY_MATCHES, FILLS
from pipelines.exchanges.bitvavo_parse import parse_account_history, parse_trades
from pipelines.flows.account_lake import stamped_frame, upsert
from pipelines.flows.account_streams import sync_account
from pipelines.flows.bitvavo_account import derive_bitvavo_history
from pipelines.flows.runtime import Runtime
from pipelines.lake import Lake
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from warehouse.build import build
from warehouse.connect import connect

NOW = datetime(2024, 5, 14, 16, 20, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 12
SEED = 29
REALITIES = ("fill", "own", "order")


def rows(settings: Settings, query: str, *params: Any) -> list[dict[str, Any]]:
    with connect(settings.data_dir) as connection:
        result = connection.execute(query, list(params))
        names = [d[0] for d in result.description or ()]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def matches(settings: Settings) -> pl.DataFrame:
    return Lake(settings.lake_dir).scan(BITVAVO_HISTORY_MATCHES.dataset).collect()


# --- a sandbox sync under each reality ---------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module", params=REALITIES)
def synced(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Settings]:
    """The Bitvavo account synced from a sandbox playing `bitvavo-history-ids=<param>`, built."""
    reality: str = request.param
    directory = tmp_path_factory.mktemp(f"history-{reality}")
    variants = Variants(bitvavo_history_ids=reality)
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        rt = sandbox_runtime(sandbox, directory, now=NOW)
        settings = rt.settings
        try:
            sync_account(rt, "bitvavo")
        finally:
            rt.close()
    build(settings)
    return reality, settings


def listed_trades(world: World, reality: str) -> dict[str, tuple[str, ...]]:
    """The history's order-book items at NOW under `reality`: transaction id → the ids of
    the fills the sandbox rendered it from (the truth)."""
    return world.bitvavo.history_fills(NOW_MS, ids=reality)


def test_the_sandbox_plays_each_reality(world: World) -> None:
    listed = {reality: listed_trades(world, reality) for reality in REALITIES}
    fills = {f.fill_id: f for f in world.bitvavo.fills}
    assert all(ids == (item,) for item, ids in listed["fill"].items())
    assert sorted(listed["own"].values()) == sorted(listed["fill"].values())
    assert not set(listed["own"]) & set(fills), "own ids must not be fill ids"
    # one item per order, covering exactly that order's fills
    orders = {fills[ids[0]].order_id: ids for ids in listed["order"].values()}
    assert len(orders) == len(listed["order"])
    for order_id, ids in orders.items():
        assert sorted(ids) == sorted(f.fill_id for f in fills.values() if f.order_id == order_id)
    assert any(len(ids) > 1 for ids in listed["order"].values()), "no order with several fills"
    again = World(seed=SEED, days=DAYS, now_ms=NOW_MS).bitvavo
    for reality in REALITIES:
        assert again.history(NOW_MS, ids=reality) == world.bitvavo.history(NOW_MS, ids=reality)


def test_every_trade_is_counted_once(synced: tuple[str, Settings], world: World) -> None:
    _, settings = synced
    account = world.bitvavo
    fills = rows(settings, "select * from fills where exchange = 'bitvavo'")
    book = sorted(f["fill_id"] for f in fills if f["source"] == "trades")
    assert book == sorted(f.fill_id for f in account.fills if f.ts_ms <= NOW_MS)
    app = {f["fill_id"]: f for f in fills if f["source"] == "account/history"}
    truth = {i.transaction_id: i for i in account.items if i.type in ("buy", "sell")}
    assert truth and set(app) == set(truth)
    for item_id, item in truth.items():
        assert (app[item_id]["side"], app[item_id]["base_amount"]) == (item.type, item.base_amount)
    verdicts = rows(settings, "select * from reconcile_balances where exchange = 'bitvavo'")
    assert verdicts
    assert {(v["status"], v["difference"]) for v in verdicts} == {("ok", 0)}


def test_every_listed_order_book_trade_is_matched_to_its_own_fills(
    synced: tuple[str, Settings], world: World
) -> None:
    reality, settings = synced
    listed = listed_trades(world, reality)
    item_of = {fill_id: item for item, ids in listed.items() for fill_id in ids}
    links = matches(settings)
    assert set(links["status"].to_list()) == {"matched"}
    linked: dict[str, list[str]] = defaultdict(list)
    for link in links.iter_rows(named=True):
        linked[link["transaction_id"]].append(link["fill_id"])
    assert {item: sorted(ids) for item, ids in linked.items()} == {
        item: sorted(ids) for item, ids in listed.items()
    }
    # the id agrees where it is the fill's; elsewhere the amounts alone decide
    signal = "amounts+id" if reality == "fill" else "amounts"
    assert set(links["signal"].to_list()) == {signal}

    checks = rows(
        settings, "select * from fill_checks where exchange = 'bitvavo' and source = 'trades'"
    )
    assert len(checks) == sum(f.ts_ms <= NOW_MS for f in world.bitvavo.fills)
    for check in checks:
        item = item_of.get(check["fill_id"])
        assert check["history_items"] == item, check
        assert check["history_problem"] is None
        expected_orphan = None if not check["settled"] else item is None
        assert check["orphan"] is expected_orphan, check
        assert check["problems"] == ("orphan" if expected_orphan else None), check


# --- hand-made lakes through the real parsers, derivation and warehouse -----------------------


T0 = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
MAIN = {"account": "main"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FillShape(TypedDict):
    """The shape `fill_row` gives two fills that only their ids tell apart."""

    at: datetime
    amount: str
    price: str
    fee: str


def fill_row(
    fill_id: str, order_id: str, at: datetime, amount: str, price: str, fee: str | None = None
) -> dict[str, Any]:
    """A `/v2/trades` BTC-EUR buy row; without `fee` it is not settled yet."""
    row: dict[str, Any] = {
        "id": fill_id,
        "orderId": order_id,
        "timestamp": ms(at),
        "market": "BTC-EUR",
        "side": "buy",
        "amount": amount,
        "price": price,
        "taker": True,
    }
    if fee is not None:
        row |= {"fee": fee, "feeCurrency": "EUR"}
    row["settled"] = fee is not None
    return row


def buy_item(
    transaction_id: str, at: datetime, received: str, sent: str, fee: str
) -> dict[str, Any]:
    """An `/account/history` BTC-EUR buy: `sent` EUR for `received` BTC."""
    price = (Decimal(sent) / Decimal(received)).quantize(Decimal("0.01"))
    return {
        "transactionId": transaction_id,
        "executedAt": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z",
        "type": "buy",
        "priceCurrency": "EUR",
        "priceAmount": str(price),
        "sentCurrency": "EUR",
        "sentAmount": sent,
        "receivedCurrency": "BTC",
        "receivedAmount": received,
        "feesCurrency": "EUR",
        "feesAmount": fee,
    }


class HandLake:
    """A data directory whose Bitvavo account the test lands page by page, as a sync would."""

    def __init__(self, directory: Path) -> None:
        self.settings = Settings(data_dir=directory / "data")
        self.rt = Runtime(self.settings)

    def sync(
        self,
        *,
        trades: Sequence[dict[str, Any]] = (),
        history: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Land `/v2/trades` rows and `/account/history` items, derive, build the warehouse."""
        lake = self.rt.lake
        fetched = T0 + timedelta(days=1)
        payload = json.loads(json.dumps(list(trades)), parse_float=Decimal)
        fills = parse_trades(payload, account="main")
        if fills:
            frame = stamped_frame(FILLS, ((f, fetched) for f in fills))
            upsert(lake, FILLS.dataset, frame, "trades-BTC-EUR", {"exchange": "bitvavo"} | MAIN)
        page = {"items": list(history), "currentPage": 1, "totalPages": 1, "maxItems": 100}
        items = parse_account_history(page, account="main").items
        if items:
            frame = stamped_frame(BITVAVO_HISTORY, ((i, fetched) for i in items))
            upsert(lake, BITVAVO_HISTORY.dataset, frame, "history", MAIN)
        derive_bitvavo_history(self.rt)
        build(self.settings)

    def fills(self) -> list[tuple[str, str]]:
        found = rows(self.settings, "select source, fill_id from fills order by all")
        return [(r["source"], r["fill_id"]) for r in found]

    def checks(self) -> dict[str, dict[str, Any]]:
        return {r["fill_id"]: r for r in rows(self.settings, "select * from fill_checks")}


def test_two_equal_fills_make_one_item_ambiguous_and_fill_checks_says_so(
    tmp_path: Path,
) -> None:
    lake = HandLake(tmp_path)
    equal: FillShape = {"at": T0, "amount": "0.01", "price": "40000", "fee": "1"}
    lake.sync(
        trades=[fill_row("fill-a", "order-a", **equal), fill_row("fill-b", "order-b", **equal)],
        history=[buy_item("item-x", T0, "0.01", "400", "1")],
    )
    assert lake.fills() == [("trades", "fill-a"), ("trades", "fill-b")]  # item-x: no app trade
    checks = lake.checks()
    for fill_id in ("fill-a", "fill-b"):
        check = checks[fill_id]
        assert (check["status"], check["problems"]) == ("problem", "history"), check
        problem = check["history_problem"]
        assert "item-x" in problem and "fill-a or fill-b" in problem and "equally" in problem
        assert check["history_items"] is None
        assert check["orphan"] is None  # one of them is unlisted, but which cannot be told
    links = matches(lake.settings)
    assert sorted(links["fill_id"].to_list()) == ["fill-a", "fill-b"]
    assert set(links["status"].to_list()) == {"ambiguous"}


def test_two_equal_fills_listed_by_two_items_are_matched_together(tmp_path: Path) -> None:
    lake = HandLake(tmp_path)
    equal: FillShape = {"at": T0, "amount": "0.01", "price": "40000", "fee": "1"}
    lake.sync(
        trades=[fill_row("fill-a", "order-a", **equal), fill_row("fill-b", "order-b", **equal)],
        history=[
            buy_item("item-x", T0, "0.01", "400", "1"),
            buy_item("item-y", T0 + timedelta(milliseconds=1), "0.01", "400", "1"),
        ],
    )
    assert lake.fills() == [("trades", "fill-a"), ("trades", "fill-b")]
    for check in lake.checks().values():
        assert (check["status"], check["orphan"]) == ("ok", False), check
        assert check["history_items"] == "item-x, item-y"
    assert set(matches(lake.settings)["signal"].to_list()) == {"group"}


def test_an_order_item_whose_fills_land_on_a_later_sync_ends_matched(tmp_path: Path) -> None:
    lake = HandLake(tmp_path)
    first = fill_row("fill-a", "order-o", T0, "0.03", "40000")  # not settled yet: no fee
    second = fill_row("fill-b", "order-o", T0 + timedelta(seconds=2), "0.02", "40010", fee="2")
    app = buy_item("app-1", T0 + timedelta(minutes=30), "0.001", "50", "0.13")
    # the order as one history item (its own id, dated at its last fill): 0.05 BTC for
    # 0.03 × 40000 + 0.02 × 40010 = 2000.2 EUR
    order = buy_item("item-o", T0 + timedelta(seconds=2), "0.05", "2000.2", "5")

    lake.sync(trades=[first], history=[order, app])
    # the order's second fill is not landed yet: the item fits nothing, so it stands alone
    assert lake.fills() == [
        ("account/history", "app-1"),
        ("account/history", "item-o"),
        ("trades", "fill-a"),
    ]

    lake.sync(trades=[second])
    assert lake.fills() == [
        ("account/history", "app-1"),
        ("trades", "fill-a"),
        ("trades", "fill-b"),
    ]
    links = matches(lake.settings)
    assert sorted(links["fill_id"].to_list()) == ["fill-a", "fill-b"]
    assert set(links["transaction_id"].to_list()) == {"item-o"}
    assert set(links["status"].to_list()) == {"matched"}
    checks = lake.checks()
    assert checks["fill-a"]["settled"] is False and checks["fill-a"]["fee"] is None
    assert {f: (c["history_items"], c["problems"]) for f, c in checks.items()} == {
        "fill-a": ("item-o", None),
        "fill-b": ("item-o", None),
        "app-1": (None, None),
    }
    assert checks["fill-b"]["orphan"] is False


def test_an_item_with_a_fill_id_but_other_amounts_is_matched_by_id_and_flagged(
    tmp_path: Path,
) -> None:
    lake = HandLake(tmp_path)
    lake.sync(
        trades=[fill_row("fill-a", "order-a", T0, "0.01", "40000", fee="1")],
        history=[buy_item("fill-a", T0, "0.01", "400.01", "1")],
    )
    assert lake.fills() == [("trades", "fill-a")]
    (check,) = lake.checks().values()
    assert (check["history_items"], check["orphan"], check["problems"]) == (
        "fill-a",
        False,
        "history",
    )
    assert "carries this fill's id" in check["history_problem"]
    assert matches(lake.settings)["signal"].to_list() == ["id"]


def test_a_fill_listed_twice_by_history_counts_once_and_is_flagged(tmp_path: Path) -> None:
    lake = HandLake(tmp_path)
    lake.sync(
        trades=[fill_row("fill-a", "order-a", T0, "0.01", "40000", fee="1")],
        history=[
            buy_item("item-x", T0, "0.01", "400", "1"),
            buy_item("item-y", T0 + timedelta(seconds=1), "0.01", "400", "1"),
        ],
    )
    assert lake.fills() == [("trades", "fill-a")]  # neither item is an app trade
    (check,) = lake.checks().values()
    assert (check["history_items"], check["orphan"], check["problems"]) == (
        "item-x",
        False,
        "history",
    )
    assert "item-y" in check["history_problem"]
    assert "already matched to item-x" in check["history_problem"]
