"""The request pipeline both emulators share: route → rate limit → fault → auth → handler.

Each exchange subclasses `ExchangeApp` and fills in its routes, its limiter, its verifier and
its error bodies; the order of the steps (and the stats kept on the way) lives here once, and
so do what both are built from (`AppSetup`) and the lookups both make (their own markets).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.sandbox.auth import AuthFailure, Clock, KeyPair
from pipelines.sandbox.faults import Fault, FaultConfig, FaultPlan, malform_rows
from pipelines.sandbox.listing import listed
from pipelines.sandbox.ratelimit import RateLimits
from pipelines.sandbox.routing import ApiError, Reply, Request, Route, match
from pipelines.sandbox.stats import ServerStats
from pipelines.sandbox.tape import MarketLike
from pipelines.sandbox.variants import Variants

log = logging.getLogger(__name__)

IMMEDIATE_FAULTS = frozenset({"rate_limited", "server_error", "error_body"})
STATS_PATH = "/_sandbox/stats"


@dataclass(slots=True)
class Outcome:
    """What the HTTP layer must do: send `reply` (after `delay` s), possibly cut; None = reset."""

    reply: Reply | None
    delay: float = 0.0
    truncate: str | None = None  # "early_close" | "short_body"


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's verdict: a refusal reply (or None) and the headers every reply carries."""

    refusal: Reply | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class AppSetup:
    """What one emulator is built from: the world it serves, its keys and the server's choices.

    `clock` is the server's own epoch seconds (auth, rate windows, `Date`); `seed` labels the
    server's own draws (Bitstamp's duplicated day).
    """

    world: Any
    keys: KeyPair
    limits: RateLimits
    faults: FaultConfig
    quirks: bool = True
    variants: Variants = field(default_factory=Variants)
    seed: int = 1
    clock: Clock = time.time
    missing_permissions: frozenset[str] = frozenset()


class ExchangeApp(ABC):
    """One exchange's emulator behind one HTTP server."""

    exchange: str
    routes: tuple[Route, ...]
    clock: Callable[[], float]  # the server's own epoch seconds: auth, rate windows, `Date`

    def __init__(self, setup: AppSetup) -> None:
        self.setup = setup
        self.world = setup.world  # the choices the handlers read most, by their own names
        self.quirks = setup.quirks
        self.variants = setup.variants
        self.clock = setup.clock
        self.stats = ServerStats(self.exchange)
        self.fault_plan = FaultPlan(setup.faults, self.exchange)

    # --- hooks ---------------------------------------------------------------------------

    @abstractmethod
    def admit(self, request: Request, route: Route | None) -> Admission: ...

    @abstractmethod
    def authenticate(self, request: Request, route: Route) -> Reply | None: ...

    @abstractmethod
    def fault_reply(self, fault: Fault) -> Reply: ...

    @abstractmethod
    def not_found(self, request: Request) -> Reply: ...

    @abstractmethod
    def method_not_allowed(self, request: Request) -> Reply: ...

    @abstractmethod
    def internal_error(self) -> Reply: ...

    # --- shared steps --------------------------------------------------------------------

    def refused(self, failure: AuthFailure | None) -> Reply | None:
        """The reply to a failed authentication (counted in the stats), None when it passed."""
        if failure is None:
            return None
        self.stats.auth_failure(failure.code)
        return Reply(failure.status, dict(failure.body))

    def own_markets(self) -> list[MarketLike]:
        """This exchange's markets in the world, by symbol."""
        found = [m for (ex, _), m in self.world.markets.items() if ex == self.exchange]
        return sorted(found, key=lambda m: m.symbol)

    def listed_market(self, symbol: str, unknown: Callable[[], Reply]) -> MarketLike:
        """The market `symbol` as served (nothing before a late listing); an unknown symbol
        raises `ApiError(unknown())`."""
        market = self.world.markets.get((self.exchange, symbol))
        if market is None:
            raise ApiError(unknown())
        return listed(self.world, self.exchange, market)

    # --- pipeline ------------------------------------------------------------------------

    def handle(self, request: Request) -> Outcome:
        if request.path == STATS_PATH and request.method == "GET":
            return Outcome(Reply(200, self.stats.snapshot()))
        found = match(self.routes, request.method, request.path)
        route = found.route
        name = route.name if route else "(unknown)"
        self.stats.request(name, route.weight if route else 1)

        admission = self.admit(request, route)
        outcome = self._respond(request, route, found.path_params, found.path_known, admission)
        if outcome.reply is not None:
            for key, value in admission.headers.items():
                outcome.reply.headers.setdefault(key, value)
            self.stats.response(outcome.reply.status)
        return outcome

    def _respond(
        self,
        request: Request,
        route: Route | None,
        path_params: Mapping[str, str],
        path_known: bool,
        admission: Admission,
    ) -> Outcome:
        if admission.refusal is not None:
            return Outcome(admission.refusal)
        if route is None:
            return Outcome(
                self.method_not_allowed(request) if path_known else self.not_found(request)
            )
        fault = self.fault_plan.draw() if route.faultable else None
        if fault is not None and fault.kind in IMMEDIATE_FAULTS:
            self.stats.fault(fault.kind)
            return Outcome(self.fault_reply(fault))
        if fault is not None and fault.kind == "reset":
            self.stats.fault("reset")
            return Outcome(None)
        failure = self.authenticate(request, route)
        if failure is not None:
            return Outcome(failure)
        try:
            reply = route.handler(request, path_params)
        except ApiError as error:
            reply = error.reply
        except Exception:
            log.exception("%s sandbox: handler for %s failed", self.exchange, route.name)
            reply = self.internal_error()
        return self._late_fault(reply, fault)

    def _late_fault(self, reply: Reply, fault: Fault | None) -> Outcome:
        if fault is None:
            return Outcome(reply)
        if fault.kind == "slow":
            self.stats.fault("slow")
            return Outcome(reply, delay=self.fault_plan.config.slow_seconds)
        if fault.kind == "truncated":
            self.stats.fault("truncated")
            return Outcome(reply, truncate=("early_close", "short_body")[fault.variant % 2])
        if fault.kind == "malformed_row" and reply.status == 200 and reply.rows_path is not None:
            broken = malform_rows(reply.payload, reply.rows_path, fault.variant)
            if broken is not None:
                self.stats.fault("malformed_row")
                reply.payload = broken[0]
        return Outcome(reply)
