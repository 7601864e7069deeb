"""Bitvavo's time-windowed walks: every row of `[start, end)` once, whichever way `end` is read.

Trades (public and account), deposits and withdrawals come newest first, at most `limit` rows a
page, and many trades share a millisecond. Whether a request's `end` includes the rows at
exactly `end` is not settled (EXCHANGES.md, open points), so every request asks for
`end` = the oldest millisecond seen so far + 1: read inclusively, that also returns rows of the
millisecond after it (already seen: dropped by their key); read exclusively, it returns exactly
the rows at or before the oldest millisecond seen. Either way no row at a page boundary is lost.

When the rows already seen in those one or two milliseconds fill a page, paging by time would
return them again and again. Trades then page by `tradeIdTo` = the id of the oldest row seen (the
last row of the last page): inclusive or exclusive, the next page starts at or right after it.
A full page that brings no new row is a `PagingLoopError`: the walk never loops.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from pipelines.exchanges.paging import Page, PagingLoopError
from pipelines.http import InvalidRequestError

R = TypeVar("R")

ONE_MS = timedelta(milliseconds=1)

Fetch = Callable[[datetime, datetime, str | None], Page[R]]
"""`fetch(start, end, trade_id_to)`: one page, newest first, of the rows between `start` and
`end` (before `trade_id_to` when it is not None)."""


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
    request_end, id_to = end, None
    while request_end > start:
        page = fetch(start, request_end, id_to)
        new = [row for row in page.records if key(row) not in seen]
        seen.update(key(row) for row in new)
        per_ms.update(moment(row) for row in new)
        inside = [row for row in new if start <= moment(row) < end]
        yield Page(inside, page.endpoint, page.params, page.fetched_at, page.received)
        if page.received < limit or not page.records:
            return
        if not new:
            how = f"tradeIdTo {id_to}" if id_to is not None else f"end {request_end.isoformat()}"
            raise PagingLoopError(exchange, endpoint, f"a full page at {how} brought no new row")
        oldest = min(per_ms)
        request_end = oldest + ONE_MS
        crowded = per_ms[oldest] + per_ms[oldest + ONE_MS] >= limit
        id_to = trade_id(page.records[-1]) if crowded and trade_id is not None else None


# --- account trades: the span one request may cover -----------------------------------------

MIN_SPAN = timedelta(minutes=1)
_SPAN_WORDS = re.compile(r"\b(start|end|span|hours?)\b", re.IGNORECASE)


def is_span_refusal(error: Exception) -> bool:
    """An errorCode 205 about `start`/`end` (e.g. "end parameter is invalid: end - start exceeds
    24 hours.", "start parameter is invalid."): the window may be too long. A 205 about any
    other parameter (market, limit, tradeIdTo) is not."""
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
