"""`ExchangeClient`: what every exchange's client offers the code that is the same for all.

Made by the adapter's client factory (`Exchange.ingestion.client`) and handed out by
`Runtime.client(name)`. Code written for one exchange (its account streams, its behaviour
probes) asks `Runtime.client_as(name, ItsClient)` for the class it knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from pipelines.exchanges.records import MarketInfo
    from pipelines.http import HttpClient, Limiter


class ExchangeClient(Protocol):
    """A read-only client of one exchange, for one account."""

    @property
    def account(self) -> str: ...

    @property
    def http(self) -> HttpClient:
        """Its HTTP layer: requests, their stats and the exchange's label."""
        ...

    @property
    def limiter(self) -> Limiter:
        """The rate budget it paces by (shared by the processes using its key)."""
        ...

    def markets(self) -> list[MarketInfo]:
        """Every market the exchange lists."""
        ...

    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=ExchangeClient)
"""One exchange's client class: what its adapter's factory makes and its walks and checks take."""
