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

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bitvavo_lakes import T0, HandLake, fill_row, history_item, matched_fills, matches, sync_account
from sandbox_fixtures import world_fixture
from warehouse_query import rows

from pipelines.config import Settings
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 5, 14, 16, 20, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 12
SEED = 29
REALITIES = ("fill", "own", "order")


# --- a sandbox sync under each reality ---------------------------------------------------------


world = world_fixture(seed=SEED, days=DAYS, now_ms=NOW_MS)


@pytest.fixture(scope="module", params=REALITIES)
def synced(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Settings]:
    """The Bitvavo account synced from a sandbox playing `bitvavo-history-ids=<param>`, built."""
    reality: str = request.param
    directory = tmp_path_factory.mktemp(f"history-{reality}")
    variants = Variants(bitvavo_history_ids=reality)
    return reality, sync_account(world, variants, directory, NOW)


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
    assert matched_fills(links) == {item: sorted(ids) for item, ids in listed.items()}
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


# two fills that only their ids (and orders) tell apart: 0.01 BTC at 40000 EUR, fee 1 EUR
TWO_EQUAL_FILLS = tuple(
    fill_row(fill_id, T0, "0.01", "40000", fee="1", order_id=order_id)
    for fill_id, order_id in (("fill-a", "order-a"), ("fill-b", "order-b"))
)


def test_two_equal_fills_make_one_item_ambiguous_and_fill_checks_says_so(
    tmp_path: Path,
) -> None:
    lake = HandLake(tmp_path)
    lake.sync(
        trades=TWO_EQUAL_FILLS,
        history=[history_item("item-x", T0, "0.01", "400", "1")],
    )
    assert lake.fills() == [("trades", "fill-a"), ("trades", "fill-b")]  # item-x: no app trade
    for check in lake.ambiguous("item-x", ["fill-a", "fill-b"]):
        assert "fill-a or fill-b" in check["history_problem"]
        assert check["history_items"] is None
        assert check["orphan"] is None  # one of them is unlisted, but which cannot be told


def test_two_equal_fills_listed_by_two_items_are_matched_together(tmp_path: Path) -> None:
    lake = HandLake(tmp_path)
    lake.sync(
        trades=TWO_EQUAL_FILLS,
        history=[
            history_item("item-x", T0, "0.01", "400", "1"),
            history_item("item-y", T0 + timedelta(milliseconds=1), "0.01", "400", "1"),
        ],
    )
    assert lake.fills() == [("trades", "fill-a"), ("trades", "fill-b")]
    for check in lake.checks().values():
        assert (check["status"], check["orphan"]) == ("ok", False), check
        assert check["history_items"] == "item-x, item-y"
    assert set(matches(lake.settings)["signal"].to_list()) == {"group"}


def test_an_order_item_whose_fills_land_on_a_later_sync_ends_matched(tmp_path: Path) -> None:
    lake = HandLake(tmp_path)
    first = fill_row("fill-a", T0, "0.03", "40000", order_id="order-o")  # not settled yet: no fee
    second = fill_row(
        "fill-b", T0 + timedelta(seconds=2), "0.02", "40010", fee="2", order_id="order-o"
    )
    app = history_item("app-1", T0 + timedelta(minutes=30), "0.001", "50", "0.13")
    # the order as one history item (its own id, dated at its last fill): 0.05 BTC for
    # 0.03 × 40000 + 0.02 × 40010 = 2000.2 EUR
    order = history_item("item-o", T0 + timedelta(seconds=2), "0.05", "2000.2", "5")

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
        trades=[fill_row("fill-a", T0, "0.01", "40000", fee="1", order_id="order-a")],
        history=[history_item("fill-a", T0, "0.01", "400.01", "1")],
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
        trades=[fill_row("fill-a", T0, "0.01", "40000", fee="1", order_id="order-a")],
        history=[
            history_item("item-x", T0, "0.01", "400", "1"),
            history_item("item-y", T0 + timedelta(seconds=1), "0.01", "400", "1"),
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
