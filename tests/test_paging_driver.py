"""The one paging driver (`paging.walk`) and every paginator it drives.

The driver in process, with paginators written here: its loop guard (a request asked twice, or
a paginator's `NoProgress`, is a `PagingLoopError` naming exchange and endpoint, raised before
anything is sent twice), its stop conditions, its laziness, probe pages kept from the consumer,
and a paginator walked twice starting afresh.

Each client paginator against the sandbox over real HTTP on loopback: the requests it sends,
in order and with their parameters (the pages' `params`), and how many the sandbox counted
(`/_sandbox/stats`, probes included), are exactly those the walks sent before they became
paginators (recorded at a1411c0 on this world).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import requests
from sandbox_clients import bitstamp_client as bitstamp
from sandbox_clients import bitvavo_client as bitvavo

from pipelines.exchanges.bitstamp import BitstampClient
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.paging import NoProgress, Page, Paginator, PagingLoopError, walk
from pipelines.sandbox.server import ExchangeEndpoint, Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

NOW = datetime(2024, 3, 31, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
FETCHED = datetime(2024, 1, 1, tzinfo=UTC)


# --- the driver, in process ------------------------------------------------------------------


@dataclass
class Counting(Paginator[int, list[int], int]):
    """Asks for `requests` in turn (a repeat included if listed twice); yields each response
    as a page; `stall_after` makes the n-th response a `NoProgress`; `probes` are requests
    whose responses are kept from the consumer."""

    requests: tuple[int, ...]
    stall_after: int | None = None
    probes: frozenset[int] = frozenset()

    def init_request(self) -> int | None:
        self._left = list(self.requests)
        self._answered = 0
        self._last = -1
        return self._left.pop(0) if self._left else None

    def update_state(self, response: list[int]) -> Page[int] | None:
        self._answered += 1
        if self.stall_after is not None and self._answered >= self.stall_after:
            raise NoProgress(f"cursor {response[0]} did not move")
        if response[0] in self.probes:
            return None
        return Page(response, "numbers", {"at": response[0]}, FETCHED)

    def next_request(self) -> int | None:
        return self._left.pop(0) if self._left else None

    def describe(self, request: int) -> str:
        return f"cursor {request}"


class Server:
    """Answers request n with [n]; counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, request: int) -> list[int]:
        self.asked.append(request)
        return [request]


def pages_of(paginator: Counting, server: Server) -> Iterator[Page[int]]:
    return walk(server, paginator, exchange="testex", endpoint="numbers")


def test_a_request_asked_twice_is_a_loop_error_naming_exchange_and_endpoint() -> None:
    server = Server()
    walked = pages_of(Counting((3, 2, 3, 1)), server)
    assert next(walked).records == [3]
    assert next(walked).records == [2]
    with pytest.raises(PagingLoopError) as caught:
        next(walked)
    assert str(caught.value) == (
        "testex numbers: paging loop detected: the walk would ask again for cursor 3"
    )
    assert (caught.value.exchange, caught.value.endpoint) == ("testex", "numbers")
    assert server.asked == [3, 2], "the repeated request was sent"


def test_a_paginator_that_cannot_move_on_is_a_loop_error_with_its_detail() -> None:
    server = Server()
    with pytest.raises(PagingLoopError) as caught:
        list(pages_of(Counting((5, 4, 3), stall_after=2), server))
    assert str(caught.value) == "testex numbers: paging loop detected: cursor 4 did not move"
    assert caught.value.__cause__ is None
    assert server.asked == [5, 4]


def test_the_walk_stops_when_the_paginator_has_no_request() -> None:
    server = Server()
    assert list(pages_of(Counting(()), server)) == []
    assert server.asked == []
    pages = list(pages_of(Counting((7, 6, 5)), server))
    assert [page.records for page in pages] == [[7], [6], [5]]
    assert server.asked == [7, 6, 5]


def test_the_walk_is_lazy_and_asks_nothing_beyond_the_last_page_taken() -> None:
    server = Server()
    walked = pages_of(Counting((9, 8, 7)), server)
    assert server.asked == []
    assert next(walked).records == [9]
    assert server.asked == [9]


def test_probe_pages_are_kept_from_the_consumer() -> None:
    server = Server()
    pages = list(pages_of(Counting((4, 40, 3), probes=frozenset({40})), server))
    assert [page.records for page in pages] == [[4], [3]]
    assert server.asked == [4, 40, 3]


def test_a_paginator_is_copied_per_run_and_starts_afresh() -> None:
    paginator = Counting((2, 1))
    first, second = Server(), Server()
    assert [p.records for p in pages_of(paginator, first)] == [[2], [1]]
    assert [p.records for p in pages_of(paginator, second)] == [[2], [1]]
    assert first.asked == second.asked == [2, 1]
    assert not hasattr(paginator, "_left"), "the declared paginator carried a run's state"


# --- every client paginator against the sandbox ----------------------------------------------

GENESIS = datetime(2024, 1, 1, tzinfo=UTC)  # where the world's account starts
GENESIS_MS = int(GENESIS.timestamp() * 1000)
DAYS = (NOW - timedelta(days=3), NOW - timedelta(days=1))  # two days of 1m candles
BTC_1M, ADA_1M = ("BTC-EUR", "1m"), ("ADA-EUR", "1m")
OTHER_READINGS = Variants(
    bitstamp_crypto_limit="combined",  # limit/offset over the lists together
    bitstamp_ohlc_before_listing="first",  # the pair's first candles for an `end` before it
    bitvavo_trades_span="24h",  # account trades refused over more than 24 h
)


@dataclass(frozen=True)
class Served:
    """One world, served with today's default readings and with `OTHER_READINGS`."""

    default: Sandbox
    other: Sandbox


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    world = World(seed=7, days=60, now_ms=NOW_MS)
    assert world.genesis_ms == GENESIS_MS
    with (
        start_sandbox(seed=7, now_ms=NOW_MS, world=world) as default,
        start_sandbox(seed=7, now_ms=NOW_MS, world=world, variants=OTHER_READINGS) as other,
    ):
        yield Served(default, other)


C = TypeVar("C", BitstampClient, BitvavoClient)


def walked(
    side: ExchangeEndpoint, client: C, walk_of: Callable[[C], Iterable[Page[Any]]]
) -> tuple[list[Page[Any]], dict[str, int]]:
    """The pages of one walk, and the requests per endpoint the sandbox counted meanwhile."""
    before = counted(side.stats_url)
    with client:
        pages = list(walk_of(client))
    after = counted(side.stats_url)
    return pages, {
        name: n - before.get(name, 0) for name, n in after.items() if n > before.get(name, 0)
    }


def counted(stats_url: str) -> dict[str, int]:
    endpoints = requests.get(stats_url, timeout=5).json()["endpoints"]
    return {name: entry["requests"] for name, entry in endpoints.items()}


def asked(pages: Sequence[Page[Any]], *names: str) -> list[tuple[str, ...]]:
    return [tuple(str(page.params[name]) for name in names) for page in pages]


def test_bitstamp_ohlc_walks_back_by_end_as_before(served: Served) -> None:
    side = served.default.bitstamp
    pages, sent = walked(side, bitstamp(served.default), lambda c: c.ohlc_window(*BTC_1M, *DAYS))
    assert asked(pages, "end", "limit", "step") == [
        ("1711756740", "1000", "60"),
        ("1711696740", "1000", "60"),
        ("1711636740", "1000", "60"),
    ]
    assert [(len(p.records), p.received) for p in pages] == [
        (1000, 1000),
        (1000, 1000),
        (880, 1000),
    ]
    assert sent == {"ohlc/{pair}": 3}


def test_bitstamp_ohlc_probes_once_at_a_listing_as_before(served: Served) -> None:
    side = served.other.bitstamp
    start = NOW - timedelta(days=60)
    pages, sent = walked(
        side, bitstamp(served.other), lambda c: c.ohlc_window("LTC-EUR", "1h", start, NOW)
    )
    # ltceur is listed at 2024-03-01 00:00 (1709251200): the second page, asked for an `end`
    # an hour before, holds only the first candles after it; one probe with `limit` 1 at the
    # oldest of them confirms the listing, then that page (nothing inside it) ends the walk
    assert asked(pages, "end", "limit") == [("1711839600", "1000"), ("1709247600", "1000")]
    assert [(len(p.records), p.received) for p in pages] == [(720, 720), (0, 720)]
    assert sent == {"ohlc/{pair}": 3}


def test_bitstamp_ledger_pages_by_since_id_as_before(served: Served) -> None:
    side = served.default.bitstamp
    pages, sent = walked(side, bitstamp(served.default), lambda c: c.ledger_since(1))
    assert asked(pages, "since_id", "limit", "sort") == [("1", "1000", "asc")]
    assert [len(p.records) for p in pages] == [284]  # a short page is the last
    assert sent == {"user_transactions": 1}


@pytest.mark.parametrize(
    ("reading", "received"),
    [("per-list", [2, 2, 1, 0]), ("combined", [1, 1, 1, 1, 1, 0])],
)
def test_bitstamp_crypto_transactions_page_by_offset_as_before(
    served: Served, reading: str, received: list[int]
) -> None:
    server = served.default if reading == "per-list" else served.other
    pages, sent = walked(
        server.bitstamp, bitstamp(server), lambda c: c.all_crypto_transactions(limit=1)
    )
    assert asked(pages, "offset", "limit") == [(str(n), "1") for n in range(len(received))]
    assert [p.received for p in pages] == received
    assert sent == {"crypto-transactions": len(received)}


def test_bitvavo_candles_walk_end_anchored_as_before(served: Served) -> None:
    side = served.default.bitvavo
    pages, sent = walked(side, bitvavo(served.default), lambda c: c.candles_window(*ADA_1M, *DAYS))
    assert asked(pages, "start", "end", "limit") == [
        ("1711584000000", "1711756800000", "1440"),
        ("1711584000000", "1711670400000", "1440"),  # short page: back by 1440 minutes
    ]
    assert [(len(p.records), p.received) for p in pages] == [(769, 769), (732, 733)]
    assert sent == {"{market}/candles": 2}


def test_bitvavo_public_trades_walk_back_by_end_as_before(served: Served) -> None:
    side = served.default.bitvavo
    start, end = NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
    pages, sent = walked(
        side,
        bitvavo(served.default),
        lambda c: c.public_trades_window("BTC-EUR", start, end, limit=2),
    )
    ends = [
        "1711842600000",
        "1711842483299",
        "1711842438755",
        "1711842383109",
        "1711842335644",
        "1711842289073",
        "1711842234324",
        "1711842167360",
        "1711842097501",
        "1711842054047",
    ]
    assert asked(pages, "start", "end", "limit") == [("1711842000000", e, "2") for e in ends]
    assert [p.received for p in pages] == [2] * 9 + [1]
    assert sent == {"{market}/trades": 10}


def test_bitvavo_account_trades_halve_their_span_as_before(served: Served) -> None:
    side = served.other.bitvavo
    pages, sent = walked(
        side, bitvavo(served.other), lambda c: c.trades_window("BTC-EUR", GENESIS, NOW)
    )
    days = (NOW - GENESIS).days
    # the whole window refused (errorCode 205), then one request per 24 h piece, oldest first
    assert asked(pages, "start", "end") == [
        (str(GENESIS_MS + k * 86_400_000), str(GENESIS_MS + (k + 1) * 86_400_000))
        for k in range(days)
    ]
    assert sent == {"trades": days + 1}


def test_bitvavo_history_pages_by_number_as_before(served: Served) -> None:
    side = served.default.bitvavo
    pages, sent = walked(
        side, bitvavo(served.default), lambda c: c.account_history_window(GENESIS, NOW)
    )
    assert asked(pages, "page", "toDate") == [(str(n), str(NOW_MS)) for n in (1, 2, 3)]
    assert [len(p.records) for p in pages] == [100, 100, 86]
    assert sent == {"account/history": 3}


def test_bitvavo_transfers_walk_back_by_end_as_before(served: Served) -> None:
    side = served.default.bitvavo

    def both(client: BitvavoClient) -> Iterator[Page[Any]]:
        yield from client.deposit_history(start=GENESIS, end=NOW)
        yield from client.withdrawal_history(start=GENESIS, end=NOW)

    pages, sent = walked(side, bitvavo(served.default), both)
    assert [(p.endpoint, *asked([p], "start", "end", "limit")[0]) for p in pages] == [
        ("deposit_history", str(GENESIS_MS), str(NOW_MS), "1000"),
        ("withdrawal_history", str(GENESIS_MS), str(NOW_MS), "1000"),
    ]
    assert sent == {"depositHistory": 1, "withdrawalHistory": 1}
