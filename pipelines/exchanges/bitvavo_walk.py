"""Bitvavo's time-windowed walks: every row of `[start, end)` once, whichever way `end` is read.

Trades (public and account), deposits and withdrawals come newest first, at most `limit` rows a
page, and many trades share a millisecond. Whether a request's `end` includes the rows at
exactly `end` is not settled (docs/exchanges.md, tagged open), so every request asks for
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

A walk may cap the span of its requests (`span`: Bitvavo refuses public trades requests whose
`end - start` exceeds 24 h). Each request then asks `start` = the later of the walk's start
- 1 ms and its `end - span`, so that a walk of any length pages on across days with full pages.
A short (or empty) page of such a capped window does not end the walk: every row of the window
is read, and the walk goes on below it with `end` = the window's start + 1 ms (which reads the
rows at exactly that start whichever way `start` and `end` are read; rows seen are dropped by
the key). Only a short page of a window that starts before the walk's start ends the walk:
whether a request's `start` is inclusive is not settled either (`bitvavo-trades-start`), and a
window from the walk's start - 1 ms holds the rows at exactly the walk's start either way (the
rows before the start are dropped).

Every page by time (no `tradeIdTo`) leaves every row of the walk later than its oldest row read
(`read_after`), so that a caller may use the rows above it before the walk ends: every row after
its request's `end` was read before it was asked (and the rows at `end` too, unless the page
holds them), and the page holds every row from its oldest up to `end`. A page by `tradeIdTo`
tells nothing of the kind: it may have skipped rows of older milliseconds.

What no walk could page is an error: a full page that brings no new row, or a request asked
twice (`PagingLoopError`, e.g. `tradeIdTo` ignored); a page by `tradeIdTo` that ends on a row
newer than the one it names (`TradeIdToError`); and ids compared as strings while the pages list
a millisecond's trades otherwise than by id (`TradeIdToError`), checked once per walk, when a
page by `tradeIdTo` reads that way, with two ids that name no trade. That last check can only go
by the order the pages show: paging by `tradeIdTo` alone, nothing could tell a trade whose id is
greater than every id seen from one that does not exist.

The walk is the paginator `Backwards`, driven by `paging.walk`; candles (`CandlesBackwards`) and
`/account/history` (`HistoryPages`) are paginators here too.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import compress, islice
from typing import Any, NamedTuple, TypeVar

from pipelines.exchanges.frames import between, earliest, subset
from pipelines.exchanges.paging import NoProgress, Page, Paginator, walk
from pipelines.exchanges.records import BitvavoHistoryItem, Candle
from pipelines.exchanges.values import from_epoch_us, to_epoch_us
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


@dataclass(frozen=True)
class TradeQuery:
    """One request of a backwards walk: rows from `start` up to `end`, before `trade_id_to` when
    given. A probe asks how `tradeIdTo` compares ids; a refusal of it is an answer (None)."""

    start: datetime
    end: datetime
    trade_id_to: str | None = None
    probe: bool = False


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
    columns: Columns[R] | None = None,
    span: timedelta | None = None,
) -> Iterator[Page[R]]:
    """Every row with `start <= moment < end`, each once (by `key`), newest page first.

    `trade_id` gives the id to send as `tradeIdTo`; None for an endpoint without one (then a
    page's worth of rows in one millisecond is a `PagingLoopError`). `columns`, when given,
    reads the same keys, moments and ids a page at a time (`Backwards`). `span`, when given, is
    the longest `end - start` one request may ask for (None: every request asks from `start`).
    """

    def ask(query: TradeQuery) -> Page[R] | None:
        if not query.probe:
            return fetch(query.start, query.end, query.trade_id_to)
        try:
            return fetch(query.start, query.end, query.trade_id_to)
        except (InvalidRequestError, NotFoundError):  # an id that names no trade, refused
            return None

    paginator = Backwards(
        start,
        end,
        key=key,
        moment=moment,
        limit=limit,
        trade_id=trade_id,
        exchange=exchange,
        endpoint=endpoint,
        columns=columns,
        span=span,
    )
    return walk(ask, paginator, exchange=exchange, endpoint=endpoint)


def read_after(page: Page[Any], moment: str) -> datetime | None:
    """Once `page` of a backwards walk is yielded, every row of the walk whose field `moment`
    is later than this has been yielded (rows at it may still come); None when the page does not
    tell (a page by `tradeIdTo`, or one that brought no new row)."""
    if "tradeIdTo" in page.params:
        return None
    return earliest(page.records, moment)


class PageColumns(NamedTuple):
    """What a walk reads of a page's rows, a list per field: their keys, their moments (in
    microseconds since the epoch: integers hash and compare faster than datetimes) and their
    trade ids (None for rows without one)."""

    keys: list[Hashable]
    moments: list[int]
    ids: list[str] | None


Columns = Callable[[Sequence[R]], PageColumns]
"""`columns(rows)`: the `PageColumns` of a page's rows (from its columns, when it has them)."""


class Backwards(Paginator[TradeQuery, Page[R] | None, R]):
    """The backwards walk of the module docstring, as a paginator (`walk_backwards` drives it).

    Two probes, requests with ids that name no trade (`HIGHEST_ID`, `LOWEST_ID`), answer once
    per walk whether `tradeIdTo` compares ids as strings (`_probe_answered`); their pages are
    never yielded, and a refusal of one is an answer, not an error.

    The walk reads a page's keys, moments and ids a field at a time (`columns`, when given, else
    `key`, `moment` and `trade_id` row by row): a page kept as columns is not made into records.

    With a `span`, no request asks for more than `span` between its `start` and its `end`.
    """

    def __init__(
        self,
        start: datetime,
        end: datetime,
        *,
        key: Callable[[R], Hashable],
        moment: Callable[[R], datetime],
        limit: int,
        trade_id: Callable[[R], str] | None,
        exchange: str,
        endpoint: str,
        columns: Columns[R] | None = None,
        span: timedelta | None = None,
    ) -> None:
        if span is not None and span <= ONE_MS:
            raise ValueError(f"{exchange} {endpoint}: a request span must exceed 1 ms")
        self.start, self.end, self.limit, self.span = start, end, limit, span
        self.key, self.moment, self.trade_id = key, moment, trade_id
        self.exchange, self.endpoint = exchange, endpoint
        self.columns = columns

    def init_request(self) -> TradeQuery | None:
        if self.trade_id is not None and self.limit < 2:
            raise ValueError(
                f"{self.exchange} {self.endpoint}: paging by tradeIdTo needs a limit of 2 or more"
            )
        self._seen: set[Hashable] = set()
        self._start, self._end = to_epoch_us(self.start), to_epoch_us(self.end)
        self._span = None if self.span is None else self.span // _US
        # the pages whose keys `_seen` holds, newest first: their oldest moment, their keys and
        # how many of their new rows each millisecond holds
        self._recent: deque[tuple[int, list[Hashable], Counter[int]]] = deque()
        self._inclusive = False  # a page held a row at exactly its `end`
        self._end_read = True  # every row at exactly `request_end` is read (or outside)
        self._request_end = self._end  # (µs, as every moment here)
        self._anchor: tuple[str, int] | None = None  # (id, moment): its id goes as tradeIdTo
        # on the pages by time so far: two rows of one ms side by side, and all id-descending
        self._tie_seen, self._ties_descending = False, True
        self._checked = False  # whether tradeIdTo compares ids as strings is checked
        self._id_to: str | None = None  # the last request's tradeIdTo
        self._page: Page[R] | None = None  # the last page
        self._read = PageColumns([], [], [])  # its columns
        self._new = 0  # how many of its rows were not seen before
        self._probing: list[PageColumns] | None = None  # the probes' pages, while probing
        # (crowded, within, last) after a crowded page, while probing
        self._after_probe: tuple[int, bool, tuple[str, int]] | None = None
        if self.end <= self.start:
            return None
        return self._request()

    def describe(self, request: TradeQuery) -> str:
        if request.trade_id_to is not None:
            return f"tradeIdTo {request.trade_id_to}"
        return f"end {request.end.isoformat()}"

    def _columns(self, rows: Sequence[R]) -> PageColumns:
        if self.columns is not None:
            return self.columns(rows)
        trade_id = self.trade_id
        return PageColumns(
            list(map(self.key, rows)),
            [to_epoch_us(moment) for moment in map(self.moment, rows)],
            None if trade_id is None else list(map(trade_id, rows)),
        )

    def _request(self) -> TradeQuery:
        anchor = self._anchor
        self._id_to = None if anchor is None or self.trade_id is None else anchor[0]
        return self._query(self._id_to)

    def _query(self, trade_id_to: str | None, *, probe: bool = False) -> TradeQuery:
        """The request up to `_request_end`, from the start of its window."""
        end = self._request_end
        return TradeQuery(
            from_epoch_us(self._window_start(end)), from_epoch_us(end), trade_id_to, probe
        )

    def _window_start(self, end: int) -> int:
        """The `start` of a request up to `end`: the walk's, or with a span the later of the
        walk's - 1 ms and `end - span`."""
        if self._span is None:
            return self._start
        return max(self._start - _MS, end - self._span)

    def update_state(self, response: Page[R] | None) -> Page[R] | None:
        if self._probing is not None:
            self._probe_answered(response)
            return None
        assert response is not None
        rows = response.records
        read = self._columns(rows)
        self._forget_above(self._request_end + _MS)
        seen = self._seen
        fresh = [key not in seen for key in read.keys]
        seen.update(compress(read.keys, fresh))
        if read.moments:
            per_ms = Counter(compress(read.moments, fresh))
            self._recent.append((min(read.moments), read.keys, per_ms))
        self._page, self._read, self._new = response, read, sum(fresh)
        start, end = self._start, self._end
        moments = read.moments
        if moments and start <= min(moments) and max(moments) < end:
            keep = fresh  # (the usual page: every row inside the span)
        else:
            keep = [
                unseen and start <= moment < end
                for unseen, moment in zip(fresh, moments, strict=True)
            ]
        inside = subset(rows, keep)  # still columns, when the page came as columns
        return Page(
            inside, response.endpoint, response.params, response.fetched_at, response.received
        )

    def _forget_above(self, bound: int) -> None:
        """Forget the keys and millisecond counts of pages wholly later than `bound`: no request
        from here on asks for rows after `_request_end`, which never grows, so they cannot come
        again. The walk then holds a page or two of keys, however long its span."""
        recent = self._recent
        while recent and recent[0][0] > bound:
            self._seen.difference_update(recent.popleft()[1])

    def _rows_at(self, moment: int) -> int:
        """How many distinct rows the walk has read at `moment` (on the pages it holds)."""
        return sum(per_ms[moment] for _, _, per_ms in self._recent)

    def _note_ties(self, moments: Sequence[int], ids: Sequence[str]) -> None:
        """Note how a page by time lists the rows of one millisecond, until the probe that needs
        it is done, or an id-ascending pair has settled its answer."""
        if self._checked or not self._ties_descending:
            return
        order = _tie_order(moments, ids)
        self._tie_seen = self._tie_seen or bool(order)
        self._ties_descending = all(order)

    def next_request(self) -> TradeQuery | None:
        if self._probing is not None:
            if len(self._probing) == 1:  # the highest id selected trades: ask the lowest
                return self._query(LOWEST_ID, probe=True)
            self._probing = None
        if self._after_probe is not None:
            crowded, within, last = self._after_probe
            self._after_probe = None
            return self._after_crowded(crowded, within, last)
        if self._anchor is not None and self._id_to is not None:
            return self._next_in_crowd(self._anchor, self._id_to)
        return self._next_by_time()

    def _next_in_crowd(self, anchor: tuple[str, int], id_to: str) -> TradeQuery | None:
        """After a page by `tradeIdTo` through the crowded millisecond of `anchor`."""
        assert self._page is not None and self._read.ids is not None
        moments, ids, page = self._read.moments, self._read.ids, self._page
        crowded = anchor[1]
        full = bool(ids) and page.received >= self.limit
        within = full and min(moments) >= crowded
        last = (ids[-1], moments[-1]) if ids else anchor
        if within and last[1] > crowded:
            detail = (
                f"the page before tradeIdTo {id_to} ends on a newer trade "
                f"({last[0]} at {from_epoch_us(last[1]).isoformat()})"
            )
            raise TradeIdToError(self.exchange, self.endpoint, detail)
        if within and not self._new and last[0] == id_to:
            raise NoProgress(f"a full page at tradeIdTo {id_to} brought no new row")
        if not self._checked and all(trade_id <= id_to for trade_id in ids):
            self._checked = True  # the page reads as if ids were compared as strings: are they?
            self._probing, self._after_probe = [], (crowded, within, last)
            return self._query(HIGHEST_ID, probe=True)
        return self._after_crowded(crowded, within, last)

    def _after_crowded(
        self, crowded: int, within: bool, last: tuple[str, int]
    ) -> TradeQuery | None:
        if within:
            self._anchor = last  # rows read before (ids compared as strings) are no loop
            self._request_end = _id_end(crowded, self._inclusive)
            return self._request()
        # every row of the crowded millisecond is read: on by time, below it
        self._anchor = None
        if crowded <= self._start:
            return None
        if self._inclusive:
            self._request_end, self._end_read = crowded - _MS, False
        else:
            self._request_end, self._end_read = crowded, True
        return self._request()

    def _next_by_time(self) -> TradeQuery | None:
        """After a page by time."""
        assert self._page is not None
        limit, page = self.limit, self._page
        moments, ids = self._read.moments, self._read.ids
        if ids is not None:
            self._note_ties(moments, ids)
        at_end = self._request_end in moments
        self._inclusive = self._inclusive or at_end
        if page.received < limit or not moments:  # every row of the request's window is read
            window_start = self._window_start(self._request_end)
            if self._span is None or window_start < self._start:
                return None
            # a capped window: on below it, its start read again (inclusive or not)
            self._request_end, self._end_read = window_start + _MS, True
            return self._request()
        oldest = min(moments)
        if oldest < self._start:  # the exchange ignored `start`: the page reached below it
            return None
        if self._new:
            self._request_end, self._end_read = oldest + _MS, True
            crowded = self._rows_at(oldest) + self._rows_at(oldest + _MS) >= limit
            if crowded and ids is not None:
                self._anchor = (ids[-1], moments[-1])
                self._request_end = _id_end(moments[-1], self._inclusive)
            return self._request()
        if at_end and self._end_read:  # read inclusively, every row at `end` read: step back
            self._request_end, self._end_read = self._request_end - _MS, False
            if self._request_end < self._start:
                return None
            return self._request()
        if ids is None:
            end = from_epoch_us(self._request_end).isoformat()
            raise NoProgress(f"a full page at end {end} brought no new row")
        self._anchor = (ids[-1], moments[-1])  # more rows in one millisecond than a page holds
        self._request_end = _id_end(moments[-1], self._inclusive)
        return self._request()

    def _probe_answered(self, response: Page[R] | None) -> None:
        """Raise `TradeIdToError` when `tradeIdTo` compares ids as strings while the exchange
        lists a millisecond's trades in another order than by id (descending): no walk could
        then read every trade of a crowded millisecond, nor tell that it missed one. Ids that
        name no trade tell it: read as a string bound, the highest selects trades and the
        lowest none; looked up, they are refused or select nothing (or are ignored: then both
        select the same)."""
        assert self._probing is not None and self.trade_id is not None
        if response is None:  # refused
            self._probing = None
            return
        if not self._probing:  # the highest id's page
            if response.records:
                self._probing.append(self._columns(response.records))  # ask the lowest id
            else:
                self._probing = None
            return
        if response.records:  # the lowest id selects trades too
            self._probing = None
            return
        highest = self._probing[0]
        self._probing = None
        assert highest.ids is not None
        ties = _tie_order(highest.moments, highest.ids)
        if not (self._tie_seen or ties) or not (self._ties_descending and all(ties)):
            detail = (
                "tradeIdTo compares trade ids as strings, but the trades of one millisecond "
                "are not listed by id"
            )
            raise TradeIdToError(self.exchange, self.endpoint, detail)


HIGHEST_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
LOWEST_ID = "00000000-0000-0000-0000-000000000000"


def _tie_order(moments: Sequence[int], ids: Sequence[str]) -> list[bool]:
    """For every two neighbouring rows of one millisecond: is the first one's id the greater?"""
    # (flat: zip then makes no tuple per row to keep; the later ones are one shorter)
    later_moments = islice(moments, 1, None)
    later_ids = islice(ids, 1, None)
    pairs = zip(
        moments[: len(moments) - 1], later_moments, ids[: len(ids) - 1], later_ids, strict=True
    )
    return [a_id > b_id for a_moment, b_moment, a_id, b_id in pairs if a_moment == b_moment]


def _id_end(crowded: int, inclusive: bool) -> int:
    """The `end` sent with `tradeIdTo` while paging through `crowded`: no later millisecond
    where the reading of `end` is known, so that a string-ordered `tradeIdTo` sends no newer
    row already read."""
    return crowded if inclusive else crowded + _MS


_MS = 1000  # a millisecond in µs
_US = timedelta(microseconds=1)


# --- candles and account history ------------------------------------------------------------


class CandlesBackwards(Paginator[datetime, Page[Candle], Candle]):
    """Every candle with open time in [start, end), newest page first: ask for [start, cursor)
    (the exchange is end-anchored).

    Whether `limit` counts rows or intervals is not documented, and hours without trades have
    no candle: a full page moves the cursor to its oldest candle, a short one moves it back by
    `limit` intervals. Both readings then see every candle exactly once. A full page whose
    oldest candle does not lie before the cursor is `NoProgress`.
    """

    def __init__(self, start: datetime, end: datetime, *, interval: timedelta, limit: int) -> None:
        self.start, self.end, self.interval, self.limit = start, end, interval, limit

    def init_request(self) -> datetime | None:
        self._cursor = self.end
        self._page: Page[Candle] | None = None
        return self._cursor if self._cursor > self.start else None

    def update_state(self, response: Page[Candle]) -> Page[Candle]:
        self._page = response
        inside = between(
            response.records, "open_time", self.start, self._cursor, high_included=False
        )
        return Page(
            inside, response.endpoint, response.params, response.fetched_at, response.received
        )

    def next_request(self) -> datetime | None:
        page = self._page
        assert page is not None
        if page.received >= self.limit and page.records:
            oldest = earliest(page.records, "open_time")
            assert oldest is not None
            if oldest >= self._cursor:
                raise NoProgress(f"cursor {self._cursor} did not move")
            self._cursor = oldest
        else:
            self._cursor -= self.interval * self.limit
        return self._cursor if self._cursor > self.start else None


class HistoryPages(Paginator[int, tuple[Page[BitvavoHistoryItem], int], BitvavoHistoryItem]):
    """`/account/history` page by page number, 1 to the total the last response names (the
    caller pins `toDate` for the whole walk so that new items cannot shift the pages)."""

    def init_request(self) -> int:
        self._number, self._total = 1, 1
        return self._number

    def update_state(
        self, response: tuple[Page[BitvavoHistoryItem], int]
    ) -> Page[BitvavoHistoryItem]:
        page, self._total = response
        return page

    def next_request(self) -> int | None:
        self._number += 1
        return self._number if self._number <= self._total else None

    def describe(self, request: int) -> str:
        return f"page {request}"


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
