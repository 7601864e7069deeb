"""Bitstamp `crypto-transactions` paging under both readings of `limit`/`offset`
(variant `bitstamp-crypto-limit`): per list, or over deposits + withdrawals together.

The sandbox plays each reading (checked against the world with the test-local signer); the
client's walk reads every row exactly once under both, at every page size, even when a new
transaction shifts the newest-first lists mid-walk; a server that ignores `offset` is a clear
error; and a full Bitstamp account sync that pages in small steps lands exactly the account.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pytest_httpserver import HTTPServer
from sandbox_clients import bitstamp_client
from sandbox_runtime import ClockedWorld, sandbox_runtime
from test_sandbox_helpers import BitstampClient as SignedRequests
from test_sandbox_helpers import loads
from warehouse_build import build

from pipelines.credentials import Credentials
from pipelines.datasets import TRANSFERS
from pipelines.exchanges.bitstamp import BitstampClient
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.paging import PagingLoopError
from pipelines.exchanges.records import OtherEvent, Transfer
from pipelines.flows.bitstamp_account import (
    bitstamp_crypto_transactions,
    bitstamp_ledger,
    bitstamp_snapshots,
)
from pipelines.http import RequestBudget, RetryPolicy
from pipelines.lake import Lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World
from warehouse.connect import connect

NOW = datetime(2024, 3, 31, 13, 7, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SEED = 13
DAYS = 14
READINGS = ("per-list", "combined")
LISTS = ("deposits", "withdrawals")
ENDPOINT = "/api/v2/crypto-transactions/"
FAST_RETRY = RetryPolicy(
    max_attempts=6, max_total_seconds=30, base_seconds=0.01, max_backoff_seconds=0.05
)


@pytest.fixture(scope="module")
def world() -> ClockedWorld:
    """A world whose clock the test sets (the accounts are generated up to NOW)."""
    return ClockedWorld(seed=SEED, days=DAYS, now=NOW)


@pytest.fixture(scope="module", params=READINGS)
def sandbox(request: pytest.FixtureRequest, world: ClockedWorld) -> Iterator[Sandbox]:
    variants = Variants(bitstamp_crypto_limit=request.param)
    with start_sandbox(seed=SEED, world=world, variants=variants, rate_scale=100.0) as running:
        yield running


@pytest.fixture()
def now(world: ClockedWorld) -> Iterator[ClockedWorld]:
    """The world at NOW, put back after a test that moves its clock."""
    world.set(NOW)
    yield world
    world.set(NOW)


def truth(world: World, until_ms: int = NOW_MS) -> dict[str, list[dict[str, Any]]]:
    """What the account holds: each list's rows visible at `until_ms`, newest first."""
    found = {}
    for name in LISTS:
        rows = world.bitstamp.crypto_transactions[name]
        visible = [r for r in rows if int(r["datetime"]) * 1000 <= until_ms]
        found[name] = sorted(visible, key=lambda r: int(r["datetime"]), reverse=True)
    return found


Row = tuple[str, str, Decimal]  # kind, txid, amount (Decimal: equal values compare equal)


def as_read(record: Transfer | OtherEvent) -> Row:
    assert isinstance(record, Transfer)
    return (record.kind, record.txid or "", record.amount)


def as_sent(truth_lists: dict[str, list[dict[str, Any]]]) -> Counter[Row]:
    kinds = {"deposits": "deposit", "withdrawals": "withdrawal"}
    return Counter(
        (kinds[name], str(row["txid"]), abs(Decimal(str(row["amount"]))))
        for name, rows in truth_lists.items()
        for row in rows
    )


# --- the sandbox plays each reading -----------------------------------------------------------


def test_the_world_needs_several_small_pages(world: ClockedWorld) -> None:
    """A precondition of the tests below: small pages meet both lists on one page."""
    lists = truth(world)
    assert all(len(rows) >= 2 for rows in lists.values()), lists
    # Newest first over both lists, a page of two holds one deposit and one withdrawal
    # somewhere: there, per-list stop rules that look at one list at a time stop too early.
    merged = sorted(
        ((name, int(r["datetime"])) for name, rows in lists.items() for r in rows),
        key=lambda item: item[1],
        reverse=True,
    )
    pairs = [{merged[i][0], merged[i + 1][0]} for i in range(0, len(merged) - 1, 2)]
    assert set(LISTS) in pairs


@pytest.mark.parametrize("limit", [1, 2, 3, 1000])
def test_sandbox_pages_as_its_reading_says(sandbox: Sandbox, now: ClockedWorld, limit: int) -> None:
    signed = SignedRequests(
        sandbox.bitstamp.base_url, sandbox.bitstamp.key, sandbox.bitstamp.secret
    )
    lists = truth(now)
    merged = sorted(
        ((name, row) for name, rows in lists.items() for row in rows),
        key=lambda item: int(item[1]["datetime"]),
        reverse=True,
    )
    total = len(merged)
    for offset in range(0, total + limit, limit):
        response = signed.post(ENDPOINT, {"offset": offset, "limit": limit})
        assert response.status_code == 200, response.text
        page = loads(response.text)
        if sandbox.variants.bitstamp_crypto_limit == "per-list":
            for name in LISTS:
                assert page[name] == lists[name][offset : offset + limit]
        else:
            window = merged[offset : offset + limit]
            for name in LISTS:
                assert page[name] == [row for owner, row in window if owner == name]
            assert sum(len(page[name]) for name in LISTS) == len(window)
        assert page["ripple_iou_transactions"] == []


# --- the client's walk -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6, 1000])
def test_walk_reads_every_row_once_under_both_readings(
    sandbox: Sandbox, now: ClockedWorld, limit: int
) -> None:
    lists = truth(now)
    total = sum(len(rows) for rows in lists.values())
    longest = max(len(rows) for rows in lists.values())
    with bitstamp_client(sandbox, retry=FAST_RETRY) as client:
        pages = list(client.all_crypto_transactions(limit=limit))
        requests = client.http.stats.by_endpoint()["crypto_transactions"].requests
    read = Counter(as_read(record) for page in pages for record in page.records)
    assert read == as_sent(lists)
    assert requests == len(pages)
    if sandbox.variants.bitstamp_crypto_limit == "combined":
        # one sequence: full pages, then the first page shorter than the limit ends the walk
        assert requests == total // limit + 1
    else:
        # each list on its own: at most one request more than the longest list needs
        assert requests <= longest // limit + 2
    assert all(page.params["limit"] == limit for page in pages)
    assert [page.params["offset"] for page in pages] == [i * limit for i in range(len(pages))]


def test_a_new_transaction_during_the_walk_is_not_read_twice(
    sandbox: Sandbox, now: ClockedWorld
) -> None:
    """A row arriving between two pages shifts the newest-first lists: the next page repeats
    the previous page's last row, which the walk drops."""
    newest = max(int(r["datetime"]) for rows in truth(now).values() for r in rows)
    before = newest * 1000 - 1
    now.clock.set(before / 1000)
    limit = 2
    with bitstamp_client(sandbox, retry=FAST_RETRY) as client:
        walk = client.all_crypto_transactions(limit=limit)
        first = next(walk)
        now.set(NOW)  # the newest transaction appears
        pages = [first, *walk]
    read = Counter(as_read(record) for page in pages for record in page.records)
    assert read == as_sent(truth(now, before))
    assert max(read.values()) == 1
    # the exchange did send one row twice; the walk kept it once
    assert sum(page.received for page in pages) == sum(read.values()) + 1


def test_an_ignored_offset_is_a_clear_error(httpserver: HTTPServer, samples_dir: Path) -> None:
    """A server that answers every offset with the same page: one repeat, then an error that
    names the exchange, the endpoint and the offset; never an endless walk."""
    sample = samples_dir / "recorded" / "bitstamp_crypto_transactions__doc_example.json"
    body = sample.read_text(encoding="utf-8")
    rows = sum(len(v) for v in json.loads(body).values())
    httpserver.expect_request(ENDPOINT, method="POST").respond_with_data(
        body, content_type="application/json"
    )
    limit = rows - 1  # the sample is a full page
    client = BitstampClient(
        httpserver.url_for("/"),
        Credentials.from_strings("KEY", "SECRET"),
        classify=BITSTAMP.classify,
        limiter=RequestBudget(*BITSTAMP_PACING),
        retry=FAST_RETRY,
    )
    walk = client.all_crypto_transactions(limit=limit)
    first = next(walk)
    assert len(first.records) == rows
    with pytest.raises(PagingLoopError) as caught:
        next(walk)
    message = str(caught.value)
    assert message.startswith("bitstamp crypto_transactions: ")
    assert f"offset {limit} " in message and "ignore `offset`" in message
    assert len(httpserver.log) == 2
    assert [dict(request.form)["offset"] for request, _ in httpserver.log] == ["0", str(limit)]


# --- a whole Bitstamp account sync, in small pages --------------------------------------------


def test_account_sync_in_small_pages_lands_exactly_and_reconciles(
    sandbox: Sandbox, now: ClockedWorld, tmp_path: Path
) -> None:
    rt = sandbox_runtime(sandbox, tmp_path, now=NOW, retry=FAST_RETRY)
    settings = rt.settings
    try:
        bitstamp_ledger(rt)
        result = bitstamp_crypto_transactions(rt, limit=2)
        bitstamp_snapshots(rt)
    finally:
        rt.close()
    assert result.requests > 1  # paged
    landed = (
        Lake(settings.lake_dir)
        .scan(TRANSFERS.dataset, exchange="bitstamp")
        .collect()
        .filter(pl.col("source") == "crypto-transactions")
    )
    got = Counter(
        (kind, txid, Decimal(str(amount)))
        for kind, txid, amount in zip(landed["kind"], landed["txid"], landed["amount"], strict=True)
    )
    assert got == as_sent(truth(now))
    build(settings)
    with connect(settings.data_dir) as connection:
        verdicts = connection.execute(
            "select asset, status, difference from reconcile_balances where exchange = 'bitstamp'"
        ).fetchall()
    assert verdicts
    for asset, status, difference in verdicts:
        assert status == "ok" and difference == 0, (asset, status, difference)
