"""Paging: what a client hands back for one request, and the one driver that walks the pages.

A paginator (`Paginator`) is a small stateful object that knows one endpoint's paging rule:
which request comes first, what a response adds to the walk, which request comes next. It is
declared once per walk and copied by `walk` for each run, so that it can be walked again.

`walk` is the only loop: it asks the paginator for a request, fetches it, hands the response
back, yields the page the paginator makes of it, and asks for the next request only when the
consumer wants more. It holds the loop guard, written once for every walk: a request asked twice
in one walk, or a paginator's `NoProgress` verdict (a page that did not move the cursor), is a
`PagingLoopError` naming the exchange and the endpoint, never an endless walk.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")
Q = TypeVar("Q", bound=Hashable)  # one request of a walk
P = TypeVar("P")  # what fetching one request returns
R = TypeVar("R")  # one row of a page


@dataclass(frozen=True)
class Page(Generic[T]):
    """The typed rows of one response, with the request that fetched them.

    `records` may be a filtered subset of what came back (a window's edges); `received` is how
    many rows the exchange actually sent, which is what paging decisions use. A page of market
    data may hold its records as columns (`frames.FrameRows`: read them with `frames.values`,
    `earliest` and `latest`, cut them with `frames.subset` and `between`, so that they are made
    only where a consumer needs them).
    """

    records: Sequence[T]
    endpoint: str
    params: Mapping[str, object]
    fetched_at: datetime
    received: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.received < 0:
            object.__setattr__(self, "received", len(self.records))


class PagingLoopError(RuntimeError):
    """A paging walk stopped making progress (the exchange returned the same cursor again)."""

    def __init__(self, exchange: str, endpoint: str, detail: str) -> None:
        super().__init__(f"{exchange} {endpoint}: paging loop detected: {detail}")
        self.exchange = exchange
        self.endpoint = endpoint


class NoProgress(Exception):
    """A paginator's verdict that its walk cannot move on; `walk` raises it as a
    `PagingLoopError` of the walk's exchange and endpoint with `detail`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Paginator(ABC, Generic[Q, P, R]):
    """One endpoint's paging rule, as a small state machine driven by `walk`.

    Settings go in `__init__`; the walk's state is (re)made by `init_request`, so that the
    shallow copy `walk` takes of a paginator starts afresh. A request may also be a probe whose
    response the paginator keeps to itself (`update_state` returns None).
    """

    @abstractmethod
    def init_request(self) -> Q | None:
        """Start the walk: its first request, or None when there is nothing to ask for."""

    @abstractmethod
    def update_state(self, response: P) -> Page[R] | None:
        """Take the response to the last request; return the page to yield, if any."""

    @abstractmethod
    def next_request(self) -> Q | None:
        """The next request, or None when the walk is done. Called only once the consumer
        asks for more, so that a walk stopped early sends nothing beyond its last page."""

    def describe(self, request: Q) -> str:
        """How a request reads in a `PagingLoopError`."""
        return str(request)


def walk(
    fetch: Callable[[Q], P],
    paginator: Paginator[Q, P, R],
    *,
    exchange: str,
    endpoint: str,
) -> Iterator[Page[R]]:
    """Every page of one walk: `fetch` each request of (a copy of) `paginator` in turn.

    Lazy: nothing is fetched before the first page is asked for. Raises `PagingLoopError` when
    a request would be sent a second time or the paginator finds that it cannot move on.
    """
    run = copy.copy(paginator)
    asked: set[Q] = set()
    request = _guarded(exchange, endpoint, run.init_request)
    while request is not None:
        if request in asked:
            detail = f"the walk would ask again for {run.describe(request)}"
            raise PagingLoopError(exchange, endpoint, detail)
        asked.add(request)
        response = fetch(request)
        page = _guarded(exchange, endpoint, run.update_state, response)
        if page is not None:
            yield page
        request = _guarded(exchange, endpoint, run.next_request)


def _guarded(exchange: str, endpoint: str, step: Callable[..., T], *args: object) -> T:
    try:
        return step(*args)
    except NoProgress as stalled:
        raise PagingLoopError(exchange, endpoint, stalled.detail) from None
