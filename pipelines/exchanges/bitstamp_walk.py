"""Bitstamp's paging rules as paginators, driven by `paging.walk` (see `bitstamp` for the API).

- `OhlcBackwards`: OHLC walks backwards by `end` only (inclusive on the open time, `start`
  ignored when `end` is given), with a one-candle probe when a page holds only candles after
  the asked `end`.
- `LedgerSinceId`: `user_transactions` ascending from `since_id` (inclusive), on past the page's
  largest id; a short page is the last.
- `CryptoOffsets`: `crypto-transactions` by offset, right whether `limit`/`offset` apply to each
  list or to the lists together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.exchanges.frames import between, earliest, latest
from pipelines.exchanges.paging import NoProgress, Page, Paginator
from pipelines.exchanges.records import Candle, LedgerEntry, OtherEvent, Transfer
from pipelines.exchanges.values import EPOCH

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class OhlcRequest:
    """One OHLC request: the last `limit` candles with open time ≤ `end`."""

    end: datetime
    limit: int


class OhlcBackwards(Paginator[OhlcRequest, Page[Candle], Candle]):
    """Every candle with open time in [start, end), newest window first, walking back by `end`.

    Each page is filtered to the window. The walk stops at `start` or when the exchange has
    nothing at or before the cursor. Before a pair's listing that is an empty page, or [open] a
    page of the first candles after the listing, all opening after the requested `end`: those
    were seen already or lie past the window, so they are dropped and the walk ends, once a
    probe has confirmed that the page's oldest candle is the pair's first (a server that ignores
    or clamps `end` sends such pages too, and nothing older may then be taken for "before the
    listing"). The probe asks for the one newest candle at `end` = that oldest candle: an
    exchange that honours `end` returns exactly it. Any other answer (the newest candles again,
    or those at a clamped `end`) means `end` was not honoured: `NoProgress`.
    """

    def __init__(self, pair: str, step: int, start: datetime, end: datetime, limit: int) -> None:
        self.pair, self.step, self.start, self.end, self.limit = pair, step, start, end, limit

    def init_request(self) -> OhlcRequest | None:
        self._cursor = _last_open_before(self.end, self.step)  # window end exclusive, `end` not
        self._oldest: datetime | None = None
        self._held: Page[Candle] | None = None  # the page waiting for the probe's verdict
        self._done = False
        return OhlcRequest(self._cursor, self.limit) if self._cursor >= self.start else None

    def update_state(self, response: Page[Candle]) -> Page[Candle] | None:
        if self._held is not None:
            return self._verdict(response)
        cursor = self._cursor
        self._oldest = earliest(response.records, "open_time")
        inside = between(response.records, "open_time", self.start, cursor, high_included=True)
        page = Page(
            inside, response.endpoint, response.params, response.fetched_at, response.received
        )
        if self._oldest is None:  # nothing at or before `end`, nor older
            self._done = True
        elif self._oldest > cursor:  # only candles after `end`: is the oldest the first?
            self._held = page
            return None
        return page

    def next_request(self) -> OhlcRequest | None:
        if self._held is not None:
            assert self._oldest is not None
            return OhlcRequest(self._oldest, 1)
        if self._done or self._oldest is None:
            return None
        self._cursor = self._oldest - timedelta(seconds=self.step)
        return OhlcRequest(self._cursor, self.limit) if self._cursor >= self.start else None

    def _verdict(self, probe: Page[Candle]) -> Page[Candle]:
        """The held page, once the probe shows that its oldest candle is the pair's first."""
        held, oldest, asked = self._held, self._oldest, self._cursor
        assert held is not None and oldest is not None
        newest = latest(probe.records, "open_time")
        if newest != oldest:
            got = newest.isoformat() if newest is not None else "nothing"
            raise NoProgress(
                f"pair {self.pair} step {self.step}: end {int(asked.timestamp())}"
                f" ({asked.isoformat()}) returned only candles after it, the oldest at"
                f" {oldest.isoformat()}, yet end {int(oldest.timestamp())} returned {got} as"
                " the newest: the server ignores or clamps `end`, so the candles before"
                f" {oldest.isoformat()} cannot be read (this is not the pair's listing)"
            )
        self._held, self._done = None, True
        return held


def _last_open_before(moment: datetime, step: int) -> datetime:
    """The latest open time before `moment` of candles of `step` seconds (opening on multiples
    of `step` since the epoch): `moment` less a step when it is one, else the open time of the
    candle it falls in."""
    step_us = step * 1_000_000
    micros = (moment - EPOCH) // _MICROSECOND
    return EPOCH + _MICROSECOND * ((micros - 1) // step_us * step_us)


class LedgerSinceId(Paginator[int, Page[LedgerEntry], LedgerEntry]):
    """Every ledger row with id ≥ `since_id`, oldest first; a page of fewer than `page_size`
    rows is the last, and a page whose largest id lies below the asked `since_id` cannot go
    on (`NoProgress`)."""

    def __init__(self, since_id: int, page_size: int) -> None:
        self.since_id, self.page_size = since_id, page_size

    def init_request(self) -> int:
        self._cursor = self.since_id
        self._rows: list[LedgerEntry] = []
        return self._cursor

    def update_state(self, response: Page[LedgerEntry]) -> Page[LedgerEntry]:
        self._rows = list(response.records)
        return response

    def next_request(self) -> int | None:
        if len(self._rows) < self.page_size:
            return None
        top = max(entry.entry_id for entry in self._rows)
        if top < self._cursor:
            raise NoProgress(f"since_id {self._cursor} returned max id {top}")
        self._cursor = top + 1
        return self._cursor

    def describe(self, request: int) -> str:
        return f"since_id {request}"


class CryptoOffsets(
    Paginator[int, Page[Transfer | OtherEvent], Transfer | OtherEvent],
):
    """Every crypto deposit, withdrawal and ripple IOU row, each once, by offset.

    Whether `limit`/`offset` slice each list (deposits, withdrawals, …) on its own or several
    lists together as one newest-first sequence is not settled (docs/exchanges.md, tagged open).
    This walk is right either way, for any grouping of the lists: the offset moves on by
    `limit`, and the walk ends at the first page whose lists hold fewer than `limit` rows
    together. Why: every group of lists is one sequence sliced at [offset, offset + limit), so
    moving every group on by `limit` skips and repeats nothing; a page with fewer than `limit`
    rows in all has fewer than `limit` in each group, so every group is exhausted; a page with
    `limit` or more rows in all goes on, which costs per-list paging at most one request that
    comes back empty.

    A row identical to one of an earlier page (a new transaction shifted the newest-first lists
    between two requests) is dropped. A full page that holds no row the earlier pages did not
    (the same page again: the server ignores `offset`) is `NoProgress` naming the offset.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def init_request(self) -> int:
        self._seen: set[tuple[str, str]] = set()
        self._offset = 0
        self._received = 0
        return self._offset

    def update_state(self, response: Page[Transfer | OtherEvent]) -> Page[Transfer | OtherEvent]:
        keys = [(row.kind, row.raw) for row in response.records]
        fresh = [
            row for row, key in zip(response.records, keys, strict=True) if key not in self._seen
        ]
        if response.received >= self.limit and not fresh:
            raise NoProgress(
                f"offset {self._offset} (limit {self.limit}) returned only rows of earlier "
                "pages: the server seems to ignore `offset`"
            )
        self._seen.update(keys)
        self._received = response.received
        return Page(
            fresh, response.endpoint, response.params, response.fetched_at, response.received
        )

    def next_request(self) -> int | None:
        if self._received < self.limit:
            return None
        self._offset += self.limit
        return self._offset

    def describe(self, request: int) -> str:
        return f"offset {request}"
