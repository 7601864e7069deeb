"""Bitvavo trades walks against exchanges that read `tradeIdTo` every plausible way.

Nothing documents `tradeIdTo` beyond its name: it may page on in the exchange's newest-first
order or compare ids as strings, include the named trade or not, and keep to `start`/`end` or
not; a request's `end` may include the trades at exactly `end` or not; and the trades of one
millisecond may be listed by id or in the order they were executed. A fake exchange plays each
combination, over real HTTP on loopback (pytest-httpserver) for the real client
(`BitvavoClient.public_trades_window`; account trades share its walk), and in process for many
random tapes. Its tape has milliseconds that hold more trades than a page, next to each other
and at the window's edges, and trades outside the window on both sides.

Every walk lands every trade of the window exactly once, or stops with a clear error; in time
order, and by id strings where a millisecond is listed by id and the window is kept, it lands
every trade. One reading cannot be walked in general: ids compared as strings while a
millisecond is listed in execution order (a trade with a greater id than every trade seen may
hide behind a page of smaller ones). The walk stops with an error when the pages it reads show
that order, as a dedicated tape checks.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.bitvavo_walk import TradeIdToError, walk_backwards
from pipelines.exchanges.paging import Page, PagingLoopError
from pipelines.http import InvalidRequestError, RetryPolicy, WeightBudget

MARKET = "BTC-EUR"
START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(seconds=2)
START_MS = int(START.timestamp() * 1000)
END_MS = int(END.timestamp() * 1000)
FAST_RETRY = RetryPolicy(
    max_attempts=3, max_total_seconds=10, base_seconds=0.01, max_backoff_seconds=0.05
)
CLEAR_ERRORS = (TradeIdToError, PagingLoopError)
# trades per millisecond: crowded ones (two of them adjacent), the window's first and last
# milliseconds, three trades at exactly `end`, and some outside the window on both sides
CROWDS = {
    START_MS - 700: 2,
    START_MS - 1: 3,
    START_MS: 4,
    START_MS + 1: 1,
    START_MS + 250: 1,
    START_MS + 600: 5,
    START_MS + 601: 3,
    START_MS + 900: 1,
    START_MS + 1200: 4,
    END_MS - 1: 2,
    END_MS: 3,
    END_MS + 40: 2,
}


@dataclass(frozen=True)
class Trade:
    trade_id: str
    ts_ms: int
    seq: int  # the order the exchange executed it in


@dataclass(frozen=True)
class Reading:
    """One way an exchange may read `end` and `tradeIdTo`."""

    end: str  # "inclusive": trades at exactly `end` are returned; "exclusive": not
    order: str  # "time": tradeIdTo pages on in newest-first order; "string": id < tradeIdTo
    ties: str  # a millisecond's trades listed by "id" (descending) or by "execution" order
    id_to: str  # "inclusive": the named trade itself comes back; "exclusive": not
    window: str  # "kept": start/end still apply with tradeIdTo; "ignored": they do not

    def __str__(self) -> str:
        return "/".join(
            (f"end-{self.end}", self.order, f"ties-{self.ties}", f"id-{self.id_to}", self.window)
        )

    @property
    def walkable(self) -> bool:
        """Whether every trade can be read: in time order always; by id strings only where a
        millisecond is listed by id and `tradeIdTo` keeps to the window."""
        return self.order == "time" or (self.ties, self.window) == ("id", "kept")


EVERY_READING = [
    Reading(*values)
    for values in itertools.product(
        ("inclusive", "exclusive"),
        ("time", "string"),
        ("id", "execution"),
        ("inclusive", "exclusive"),
        ("kept", "ignored"),
    )
]
# all but ids compared as strings within the window while a millisecond is listed by execution
READINGS = [
    r for r in EVERY_READING if (r.order, r.ties, r.window) != ("string", "execution", "kept")
]


def tape(seed: int) -> list[Trade]:
    rng = random.Random(seed)
    trades: list[Trade] = []
    for ts_ms, count in CROWDS.items():
        for _ in range(count):
            trade_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            trades.append(Trade(trade_id, ts_ms, len(trades)))
    return trades


class Exchange:
    """`GET /v2/{market}/trades` over `trades`, its parameters read as `reading` says."""

    def __init__(self, trades: list[Trade], reading: Reading) -> None:
        self.reading = reading
        tie = (lambda t: t.trade_id) if reading.ties == "id" else (lambda t: t.seq)
        self.listed = sorted(trades, key=lambda t: (t.ts_ms, tie(t)), reverse=True)
        self.requests = 0

    def answer(self, args: dict[str, str]) -> tuple[int, Any]:
        self.requests += 1
        reading = self.reading
        limit = int(args.get("limit", "500"))
        start, end = int(args["start"]), int(args["end"])
        id_to = args.get("tradeIdTo")

        def in_window(t: Trade) -> bool:
            before_end = t.ts_ms <= end if reading.end == "inclusive" else t.ts_ms < end
            return start <= t.ts_ms and before_end

        if id_to is None:
            chosen = [t for t in self.listed if in_window(t)]
        else:
            if reading.order == "time":
                ids = [t.trade_id for t in self.listed]
                if id_to not in ids:
                    return 400, {"errorCode": 205, "error": "tradeIdTo parameter is invalid."}
                at = ids.index(id_to) + (reading.id_to == "exclusive")
                chosen = self.listed[at:]
            elif reading.id_to == "inclusive":
                chosen = [t for t in self.listed if t.trade_id <= id_to]
            else:
                chosen = [t for t in self.listed if t.trade_id < id_to]
            if reading.window == "kept":
                chosen = [t for t in chosen if in_window(t)]
        return 200, [
            {
                "id": t.trade_id,
                "timestamp": t.ts_ms,
                "amount": "0.01",
                "price": "60000",
                "side": "buy",
            }
            for t in chosen[:limit]
        ]

    def __call__(self, request: Request) -> Response:
        status, body = self.answer(dict(request.args))
        # every other page compact (read from the body as columns), the others spaced
        # (decoded): one walk reads both kinds of page alike
        compact = (",", ":") if self.requests % 2 else None
        text = json.dumps(body, separators=compact)
        return Response(text, status=status, content_type="application/json")


def truth(trades: list[Trade]) -> list[str]:
    return sorted(t.trade_id for t in trades if START_MS <= t.ts_ms < END_MS)


def walk_over_http(httpserver: HTTPServer, exchange: Exchange, limit: int) -> list[str]:
    httpserver.expect_request(f"/v2/{MARKET}/trades").respond_with_handler(exchange)
    client = BitvavoClient(
        httpserver.url_for("/v2"),
        classify=BITVAVO.classify,
        limiter=WeightBudget(headers=WEIGHT_HEADERS),
        retry=FAST_RETRY,
    )
    try:
        pages = list(client.public_trades_window(MARKET, START, END, limit=limit))
    finally:
        client.close()
    return [t.trade_id for page in pages for t in page.records]


def walk_in_process(exchange: Exchange, limit: int) -> list[str]:
    """The same walk without the wire: `fetch` asks `exchange` directly."""

    def fetch(start: datetime, end: datetime, id_to: str | None) -> Page[tuple[str, datetime]]:
        args = {"limit": str(limit), "start": str(ms(start)), "end": str(ms(end))}
        if id_to is not None:
            args["tradeIdTo"] = id_to
        status, body = exchange.answer(args)
        if status != 200:
            raise InvalidRequestError(body["error"], exchange="bitvavo", endpoint="trades")
        rows = [(r["id"], datetime.fromtimestamp(r["timestamp"] / 1000, UTC)) for r in body]
        return Page(rows, "trades", args, START)

    pages = walk_backwards(
        fetch,
        START,
        END,
        key=lambda row: row[0],
        moment=lambda row: row[1],
        trade_id=lambda row: row[0],
        exchange="bitvavo",
        endpoint="trades",
        limit=limit,
    )
    return [row[0] for page in pages for row in page.records]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_the_tape_crowds_milliseconds_beyond_a_page() -> None:
    trades = tape(1)
    assert max(CROWDS.values()) > 3
    assert {t.ts_ms for t in trades} >= {START_MS, END_MS - 1, END_MS}
    assert len(truth(trades)) < len(trades)


@pytest.mark.parametrize("limit", [2, 3])
@pytest.mark.parametrize("reading", READINGS, ids=str)
def test_the_client_lands_every_trade_once_or_says_why_not(
    httpserver: HTTPServer, reading: Reading, limit: int
) -> None:
    trades = tape(seed=limit)
    exchange = Exchange(trades, reading)
    try:
        got = walk_over_http(httpserver, exchange, limit)
    except CLEAR_ERRORS as error:
        assert not reading.walkable, error
        assert str(error).startswith("bitvavo public_trades: ")
        return
    assert len(got) == len(set(got)), "a trade landed twice"
    assert sorted(got) == truth(trades)
    assert exchange.requests < 3 * len(trades), "the walk asked far more than it needed"


@pytest.mark.parametrize("reading", READINGS, ids=str)
def test_the_walk_lands_every_trade_of_many_tapes_once_or_says_why_not(
    reading: Reading,
) -> None:
    errors = 0
    for seed, limit in itertools.product(range(40), (2, 3, 4)):
        trades = tape(seed)
        try:
            got = walk_in_process(Exchange(trades, reading), limit)
        except CLEAR_ERRORS:
            assert not reading.walkable, (seed, limit)
            errors += 1
            continue
        assert len(got) == len(set(got)), (seed, limit)
        assert sorted(got) == truth(trades), (seed, limit)
    if reading.walkable:
        assert errors == 0


@pytest.mark.parametrize("id_to", ["inclusive", "exclusive"])
@pytest.mark.parametrize("end", ["inclusive", "exclusive"])
def test_ids_compared_as_strings_over_a_millisecond_listed_otherwise_is_an_error(
    httpserver: HTTPServer, end: str, id_to: str
) -> None:
    """Execution order runs against the ids: the listing shows it, and the walk stops."""
    trades = [
        Trade(f"{9 - n:x}0000000-0000-4000-8000-000000000000", START_MS + 600, n) for n in range(6)
    ]
    trades += [Trade("a0000000-0000-4000-8000-000000000000", START_MS + 100, 6)]
    reading = Reading(end=end, order="string", ties="execution", id_to=id_to, window="kept")
    with pytest.raises(CLEAR_ERRORS):
        walk_over_http(httpserver, Exchange(trades, reading), limit=2)
