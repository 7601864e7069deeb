"""Bitvavo lakes for the history-matching tests, fed through the real parsers, derivation and
warehouse.

`sync_account(world, variants, directory, now)` syncs the Bitvavo account from a sandbox
playing `variants` and builds the warehouse. For what the sandbox cannot play: `fill_row` is a
`/v2/trades` BTC-EUR row, `history_item` an `/account/history` BTC-EUR buy or sell, and
`HandLake` a data directory whose account the test lands page by page as a sync would (`sync`),
then reads back (`fills`, `checks`, `ambiguous`); `matches` reads the derived history matches of
any data directory, `matched_fills` groups them by item.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
from sandbox_runtime import sandbox_runtime
from warehouse_build import build
from warehouse_query import rows

from pipelines.config import Settings
from pipelines.datasets import BITVAVO_HISTORY, BITVAVO_HISTORY_MATCHES, FILLS
from pipelines.exchanges.bitvavo_parse import parse_account_history, parse_trades
from pipelines.flows.account_lake import stamped_frame, upsert
from pipelines.flows.account_streams import sync_account as sync_exchange_account
from pipelines.flows.bitvavo_account import derive_bitvavo_history
from pipelines.flows.runtime import Runtime
from pipelines.lake import Lake
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

T0 = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
MAIN = {"account": "main"}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def sync_account(world: World, variants: Variants, directory: Path, now: datetime) -> Settings:
    with start_sandbox(seed=world.seed, world=world, variants=variants) as sandbox:
        rt = sandbox_runtime(sandbox, directory, now=now)
        try:
            sync_exchange_account(rt, "bitvavo")
        finally:
            rt.close()
    build(rt.settings)
    return rt.settings


def fill_row(
    fill_id: str,
    at: datetime,
    amount: str,
    price: str,
    fee: str | None = None,
    side: str = "buy",
    *,
    order_id: str | None = None,
) -> dict[str, Any]:
    """A `/v2/trades` BTC-EUR row (of order `order-<fill_id>` unless `order_id` is given);
    without `fee` it is not settled yet."""
    row: dict[str, Any] = {
        "id": fill_id,
        "orderId": order_id if order_id is not None else f"order-{fill_id}",
        "timestamp": ms(at),
        "market": "BTC-EUR",
        "side": side,
        "amount": amount,
        "price": price,
        "taker": True,
    }
    if fee is not None:
        row |= {"fee": fee, "feeCurrency": "EUR"}
    row["settled"] = fee is not None
    return row


def history_item(
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


def matches(settings: Settings) -> pl.DataFrame:
    return Lake(settings.lake_dir).scan(BITVAVO_HISTORY_MATCHES.dataset).collect()


def matched_fills(links: pl.DataFrame) -> dict[str, list[str]]:
    """History item → the ids of its fills, sorted, from the matches `links`, every one of
    which must be 'matched'."""
    assert set(links["status"].to_list()) == {"matched"}
    linked: dict[str, list[str]] = defaultdict(list)
    for link in links.iter_rows(named=True):
        linked[link["transaction_id"]].append(link["fill_id"])
    return {item: sorted(fill_ids) for item, fill_ids in linked.items()}


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

    def ambiguous(self, item_id: str, fill_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The checks of `fill_ids`, which history item `item_id` fits equally, after asserting
        what such an item always shows: each check is a history problem that names the item
        and says "equally", and the matches are those fills, every one ambiguous."""
        checks = self.checks()
        found = [checks[fill_id] for fill_id in fill_ids]
        for check in found:
            assert (check["status"], check["problems"]) == ("problem", "history"), check
            problem = check["history_problem"]
            assert item_id in problem and "equally" in problem
        links = matches(self.settings)
        assert sorted(links["fill_id"].to_list()) == sorted(fill_ids)
        assert set(links["status"].to_list()) == {"ambiguous"}
        return found
