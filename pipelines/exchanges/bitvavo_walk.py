"""Bitvavo's time-windowed walks: every row of `[start, end)` once, whichever way `end` is read.

Trades (public and account), deposits and withdrawals come newest first, at most `limit` rows a
page, and many trades share a millisecond. Whether a request's `end` includes the rows at
exactly `end` is not settled (EXCHANGES.md, open points), so every request asks for
`end` = the oldest millisecond seen so far + 1: read inclusively, that also returns rows of the
millisecond after it (already seen: dropped by their key); read exclusively, it returns exactly
the rows at or before the oldest millisecond seen. Either way no row at a page boundary is lost.
A page that holds a row at exactly its `end` shows the inclusive reading: when such a page
brings nothing new, the next one asks for `end` one millisecond earlier.

When the rows already seen in those one or two milliseconds fill a page (a crowded
millisecond), paging by time would return them again and again. Trades then page by
`tradeIdTo` = the id of the oldest row seen (the last row of the last page). What `tradeIdTo`
does is not documented beyond its name: inclusive or exclusive, in the server's newest-first
order or comparing ids as strings, honouring `start`/`end` or not. So the walk pages by it only
through the crowded millisecond, never ends on its short page, and trusts none of its other
rows: once a page by `tradeIdTo` comes back short or reaches an older millisecond, every row
of the crowded millisecond is read, and the walk goes on by time from `end` = that millisecond
(deduplicated on the key), so that rows a string-ordered `tradeIdTo` skipped are read too.
What no walk could page is an error: a full page that brings no new row, or a request asked
twice (`PagingLoopError`, e.g. `tradeIdTo` ignored); a page by `tradeIdTo` that ends on a row
newer than the one it names (`TradeIdToError`); and ids compared as strings while the pages list
a millisecond's trades otherwise than by id (`TradeIdToError`), checked once per walk, when a
page by `tradeIdTo` reads that way, with two ids that name no trade. That last check can only go
by the order the pages show: paging by `tradeIdTo` alone, nothing could tell a trade whose id is
greater than every id seen from one that does not exist.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TypeVar

from pipelines.exchanges.paging import Page, PagingLoopError
from pipelines.http import InvalidRequestError, NotFoundError

R = TypeVar("R")

ONE_MS = timedelta(milliseconds=1)

Fetch = Callable[[datetime, datetime, str | None], Page[R]]
"""`fetch(start, end, trade_id_to)`: one page, newest first, of the rows between `start` and
`end` (before `trade_id_to` when it is not None)."""


class TradeIdToError(RuntimeError):
    """`tradeIdTo` does not page the way a crowded millisecond can be read by: its page ends on
    a row newer than the one it names, or it compares ids as strings while the exchange lists a
    millisecond's trades in another order."""

    def __init__(self, exchange: str, endpoint: str, detail: str) -> None:
        super().__init__(
            f"{exchange} {endpoint}: {detail}: cannot read a millisecond that holds more trades "
            "than a page"
        )
        self.exchange = exchange
        self.endpoint = endpoint


def walk_backwards(
    fetch: Fetch[R],
    start: datetime,
    end: datetime,
    *,
    key: Callable[[R], Hashable],
    moment: Callable[[R], datetime],
    exchange: str,
    endpoint: str,
    limit: int,
    trade_id: Callable[[R], str] | None = None,
) -> Iterator[Page[R]]:
    """Every row with `start <= moment < end`, each once (by `key`), newest page first.

    `trade_id` gives the id to send as `tradeIdTo`; None for an endpoint without one (then a
    page's worth of rows in one millisecond is a `PagingLoopError`).
    """
    if trade_id is not None and limit < 2:
        raise ValueError(f"{exchange} {endpoint}: paging by tradeIdTo needs a limit of 2 or more")
    seen: set[Hashable] = set()
    per_ms: Counter[datetime] = Counter()
    asked: set[tuple[datetime, str | None]] = set()
    inclusive = False  # a page held a row at exactly its `end`
    end_read = True  # every row at exactly `request_end` is read (or outside the window)
    request_end, anchor = end, None  # anchor: the row whose id goes as tradeIdTo
    ties: list[bool] = []  # per two rows of one millisecond on a page by time: id-descending?
    checked = False  # whether tradeIdTo compares ids as strings is checked
    if end <= start:
        return
    while True:
        id_to = None if anchor is None or trade_id is None else trade_id(anchor)
        if (request_end, id_to) in asked:
            how = f"tradeIdTo {id_to}" if id_to is not None else f"end {request_end.isoformat()}"
            raise PagingLoopError(exchange, endpoint, f"the walk would ask again for {how}")
        asked.add((request_end, id_to))
        page = fetch(start, request_end, id_to)
        rows = page.records
        new = [row for row in rows if key(row) not in seen]
        seen.update(key(row) for row in new)
        per_ms.update(moment(row) for row in new)
        inside = [row for row in new if start <= moment(row) < end]
        yield Page(inside, page.endpoint, page.params, page.fetched_at, page.received)

        if anchor is not None and id_to is not None:  # paged through a crowded millisecond
            assert trade_id is not None
            crowded = moment(anchor)
            full = bool(rows) and page.received >= limit
            within = full and min(moment(row) for row in rows) >= crowded
            last = rows[-1] if rows else anchor
            if within and moment(last) > crowded:
                detail = (
                    f"the page before tradeIdTo {id_to} ends on a newer trade "
                    f"({trade_id(last)} at {moment(last).isoformat()})"
                )
                raise TradeIdToError(exchange, endpoint, detail)
            if within and not new and trade_id(last) == id_to:
                detail = f"a full page at tradeIdTo {id_to} brought no new row"
                raise PagingLoopError(exchange, endpoint, detail)
            if not checked and all(trade_id(row) <= id_to for row in rows):
                checked = True  # the page reads as if ids were compared as strings: are they?
                _check_id_order(
                    fetch, start, request_end, ties, moment, trade_id, exchange, endpoint
                )
            if within:
                anchor = last  # rows read before (ids compared as strings) are no loop
                request_end = _id_end(crowded, inclusive)
                continue
            # every row of the crowded millisecond is read: on by time, below it
            anchor = None
            if crowded <= start:
                return
            request_end, end_read = (crowded - ONE_MS, False) if inclusive else (crowded, True)
            continue

        if trade_id is not None:
            ties += _tie_order(rows, moment, trade_id)
        at_end = any(moment(row) == request_end for row in rows)
        inclusive = inclusive or at_end
        if page.received < limit or not rows:
            return
        oldest = min(moment(row) for row in rows)
        if oldest < start:  # the exchange ignored `start`: the page reached below it
            return
        if new:
            request_end, end_read = oldest + ONE_MS, True
            crowded = per_ms[oldest] + per_ms[oldest + ONE_MS] >= limit
            if crowded and trade_id is not None:
                anchor = rows[-1]
                request_end = _id_end(moment(anchor), inclusive)
            continue
        if at_end and end_read:  # read inclusively, and every row at `end` is read: step back
            request_end, end_read = request_end - ONE_MS, False
            if request_end < start:
                return
            continue
        if trade_id is None:
            detail = f"a full page at end {request_end.isoformat()} brought no new row"
            raise PagingLoopError(exchange, endpoint, detail)
        anchor = rows[-1]  # more rows in one millisecond than a page holds
        request_end = _id_end(moment(anchor), inclusive)


HIGHEST_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
LOWEST_ID = "00000000-0000-0000-0000-000000000000"


def _check_id_order(
    fetch: Fetch[R],
    start: datetime,
    end: datetime,
    ties: list[bool],
    moment: Callable[[R], datetime],
    trade_id: Callable[[R], str],
    exchange: str,
    endpoint: str,
) -> None:
    """Raise `TradeIdToError` when `tradeIdTo` compares ids as strings while the exchange lists
    a millisecond's trades in another order than by id (descending): no walk could then read
    every trade of a crowded millisecond, nor tell that it missed one. Ids that name no trade
    tell it: read as a string bound, the highest selects trades and the lowest none; looked up,
    they are refused or select nothing (or are ignored: then both select the same)."""
    try:
        highest = fetch(start, end, HIGHEST_ID)
        if not highest.records or fetch(start, end, LOWEST_ID).records:
            return
    except (InvalidRequestError, NotFoundError):  # an id that names no trade, refused
        return
    ties = ties + _tie_order(highest.records, moment, trade_id)
    if not ties or not all(ties):
        detail = (
            "tradeIdTo compares trade ids as strings, but the trades of one millisecond are "
            "not listed by id"
        )
        raise TradeIdToError(exchange, endpoint, detail)


def _tie_order(
    rows: Sequence[R], moment: Callable[[R], datetime], trade_id: Callable[[R], str]
) -> list[bool]:
    """For every two neighbouring rows of one millisecond: is the first one's id the greater?"""
    return [trade_id(a) > trade_id(b) for a, b in pairwise(rows) if moment(a) == moment(b)]


def _id_end(crowded: datetime, inclusive: bool) -> datetime:
    """The `end` sent with `tradeIdTo` while paging through `crowded`: no later millisecond
    where the reading of `end` is known, so that a string-ordered `tradeIdTo` sends no newer
    row already read."""
    return crowded if inclusive else crowded + ONE_MS


# --- account trades: the span one request may cover -----------------------------------------

MIN_SPAN = timedelta(minutes=1)
_SPAN_WORDS = re.compile(r"\b(start|end|span|hours?)\b", re.IGNORECASE)


def is_span_refusal(error: Exception) -> bool:
    """An errorCode 205 about `start`/`end` (e.g. "end parameter is invalid: end - start exceeds
    24 hours.", "start parameter is invalid.", "Invalid parameter: end"): the window may be too
    long. A 205 about any other parameter (market, limit, tradeIdTo) is not."""
    if not isinstance(error, InvalidRequestError) or error.code != "205":
        return False
    text = str(error)
    reason = text.partition("): ")[2] or text  # after "bitvavo trades: … (code 205, HTTP 400)"
    return bool(_SPAN_WORDS.search(reason))


class TradeSpan:
    """The longest `start`–`end` span that account trades accept, learnt during one run.

    Unknown (None: any span) until a request is refused: then 24 h (the public trades' cap), then
    halves while refusals go on; below one minute the refusal is not about the span after all
    and is raised. What was accepted is kept for the rest of the run (the client holds it).
    """

    def __init__(self, cap: timedelta) -> None:
        self.cap = cap
        self.span: timedelta | None = None

    def piece_end(self, start: datetime, end: datetime) -> datetime:
        """Where the first piece of `[start, end)` that may be asked for in one walk ends."""
        return end if self.span is None else min(end, start + self.span)

    def refused(self, span: timedelta, error: Exception) -> None:
        """`span` was refused with `error`: shrink, or raise `error` when it cannot help."""
        if span > self.cap:
            self.span = self.cap
            return
        half = (span // 2) // ONE_MS * ONE_MS
        if half < MIN_SPAN:
            error.add_note(f"still refused over a span of {span}: not a span limit")
            raise error
        self.span = half
