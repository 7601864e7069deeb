"""What every ingestion task needs: settings, the lake, and one client per exchange.

Clients are made by each exchange's adapter (`Exchange.ingestion.client`, found through
`pipelines.exchanges.registry`), typed by what every client offers (`ExchangeClient`);
`client_as` gives code written for one exchange its client's own class.

Streams are plain functions of a `Runtime` (testable without Prefect); the Prefect flows in
`pipelines.flows.sync` only wrap them. Clients share one limiter per exchange and key: one
object per process (`pipelines.http.shared_limiter`) whose state lives in a file under
`Settings.budget_dir` (`SharedRequestBudget`, `SharedWeightBudget`), so that concurrent tasks,
and other processes using the same key and directory (`tally sync`, Prefect flow runs in a
process worker), pace together.

A key pair kept in Prefect Secret blocks is read when the first client of its exchange is made
(`ExchangeSettings.load_credentials`, once per process), never before: a runtime that asks only
one exchange, or none, never asks Prefect for the other's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from pipelines import progress
from pipelines.config import ExchangeSettings, Settings
from pipelines.exchanges.client import ExchangeClient
from pipelines.exchanges.ingestion import Connection
from pipelines.exchanges.registry import get
from pipelines.http import (
    DEFAULT_RETRY,
    BudgetPlace,
    BudgetRow,
    Limiter,
    RetryPolicy,
    Usage,
    budget_name,
)

if TYPE_CHECKING:
    from pipelines.lake import Lake

ACCOUNT = "main"
C = TypeVar("C", bound=ExchangeClient)


@dataclass
class Runtime:
    """Settings, lake and clients for one sync process."""

    settings: Settings
    retry: RetryPolicy = DEFAULT_RETRY
    # The present: an explicit clock wins, then the config's frozen `now`, then the wall clock.
    clock: Callable[[], datetime] | None = None
    # Explicit limiters by exchange name (tests, benchmarks); absent: the one shared through
    # the budget directory (`shared_budget`).
    limiters: Mapping[str, Limiter] = field(default_factory=dict)
    timeout: tuple[float, float] = (5.0, 30.0)  # the clients' (connect, read) seconds
    _clients: dict[str, ExchangeClient] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lake(self) -> Lake:
        # imported here: asking an exchange alone (`tally sync`'s market check) needs no polars
        from pipelines.lake import Lake

        return Lake.of(self.settings)

    def now(self) -> datetime:
        if self.clock is not None:
            return self.clock()
        return self.settings.now or datetime.now(UTC)

    def client(self, name: str) -> ExchangeClient:
        """The client of exchange `name` (made by its adapter on first use, then kept)."""
        with self._lock:
            if name not in self._clients:
                config = self.settings.exchange(name)
                credentials = config.load_credentials()
                how = Connection(
                    credentials, ACCOUNT, self._limiter(config), self.retry, self.timeout
                )
                self._clients[name] = get(name).ingestion.client(config, how)
            return self._clients[name]

    def client_as(self, name: str, kind: type[C]) -> C:
        """`client(name)` as the class its adapter makes, for code written for that exchange."""
        client = self.client(name)
        if not isinstance(client, kind):
            raise TypeError(f"{name}'s client is a {type(client).__name__}, not a {kind.__name__}")
        return client

    def _limiter(self, config: ExchangeSettings) -> Limiter:
        explicit = self.limiters.get(config.name)
        return explicit if explicit is not None else self.shared_budget(config)

    def shared_budget(self, config: ExchangeSettings) -> Limiter:
        """The limiter of `config`'s exchange and key shared by every process using the same
        budget directory, or the same database when `rate_budget_url` is set (one object per
        process and file or row), as its adapter makes it. Named by the key's fingerprint, the
        same whether the key came from the environment, the file or a Prefect Secret block."""
        credentials = config.load_credentials()
        name = budget_name(config.name, credentials.fingerprint if credentials else None)
        url = self.settings.rate_budget_url
        where: BudgetPlace = (
            BudgetRow(url, name) if url else self.settings.budget_dir / f"{name}.json"
        )
        return get(config.name).ingestion.budget(config, where)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


@dataclass(frozen=True)
class StreamResult:
    """The small summary a task returns (never data frames)."""

    stream: str  # e.g. "candles bitvavo BTC-EUR 1m"
    exchange: str
    rows: dict[str, int] = field(default_factory=dict)  # rows landed per dataset
    windows: int = 0  # windows (files) landed
    requests: int = 0
    weight: int = 0
    retries: int = 0
    gaps: tuple[str, ...] = ()  # human-readable descriptions of gaps found
    first: datetime | None = None  # range of what the stream holds after the run
    last: datetime | None = None


def finish(
    stream: str,
    exchange: str,
    used: Usage,
    *,
    rows: Mapping[str, int],
    windows: int,
    gaps: Sequence[str] = (),
    first: datetime | None = None,
    last: datetime | None = None,
) -> StreamResult:
    """The result of `stream`, which sent `used` (its share of its client's usage) and landed
    `rows` per dataset in `windows` files; told to the progress channel as finished."""
    result = StreamResult(
        stream,
        exchange,
        dict(rows),
        windows,
        used.requests,
        used.weight,
        used.retries,
        tuple(gaps),
        first,
        last,
    )
    progress.stream_finished(
        stream,
        exchange,
        rows=result.rows,
        windows=windows,
        requests=used.requests,
        weight=used.weight,
        retries=used.retries,
        gaps=len(gaps),
    )
    return result
