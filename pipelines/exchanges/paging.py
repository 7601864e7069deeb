"""What a client hands back for one request, and the guard that stops a paging walk from looping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """The typed rows of one response, with the request that fetched them.

    `records` may be a filtered subset of what came back (a window's edges); `received` is how
    many rows the exchange actually sent, which is what paging decisions use.
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
