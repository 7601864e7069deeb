"""Ask each exchange, concurrently and briefly, whether tally can work with it.

An `ExchangeProbe` holds one exchange's clients (a 3 s timeout, at most one quick retry, rate
limiters of their own: a handful of requests) and the rows found so far. Its steps:

- `reach`: the market list (`GET /api/v2/markets/`, `GET /v2/markets`), which proves the base
  URL answers and gives the listed markets; Bitstamp's `Date` header gives its clock.
- `clock`: Bitvavo's `GET /v2/time`; Bitstamp's reading from `reach`.
- `credentials`: a pair kept in Prefect Secret blocks loaded (a failed row naming each block
  that cannot be, even when the exchange does not answer); then the first of the exchange's
  account reads (the balances), signed: the key and secret are accepted or not; for
  `tally doctor` then every other account read once, one row each, and the warning about trade
  and withdraw rights.

What differs between exchanges (the requests, how the clock is read, how a client is built) is
declared by each exchange's adapter (`ExchangeChecks`); this module is the same for every one.

Public requests are sent unsigned (Bitvavo's client would sign them when a key is configured),
so that a refused key shows in the credentials row and not as an unreachable market list.

`run_steps` runs one step function per exchange in daemon threads and waits for them until a
deadline: an exchange still busy then gets a failed row naming what it was waiting for, and its
thread is left behind (the process exits without it). That bounds the checks of both exchanges
together, whatever the network does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipelines.checks import CheckRow, Status
from pipelines.checks.clock import ClockReading, clock_row, from_date_header, from_server_time
from pipelines.checks.failures import env_names, explain
from pipelines.checks.permissions import trade_withdraw_row
from pipelines.config import ExchangeSettings, Settings
from pipelines.credentials import CredentialsRef
from pipelines.exchanges import registry
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.checks_facts import ExchangeChecks, ReadCall
from pipelines.exchanges.client import ExchangeClient
from pipelines.exchanges.ingestion import Connection
from pipelines.exchanges.records import MarketInfo
from pipelines.flows.markets import MarketProblem, market_problems
from pipelines.flows.runtime import ACCOUNT
from pipelines.http import ExchangeError, PermissionDeniedError, RetryPolicy
from pipelines.secret_refs import SecretUnavailable

TIMEOUT_S = 3.0
LOADING_BLOCKS = "Prefect Secret blocks"  # what a probe waits for while it loads its key pair
# One quick retry of a refused connection or a 5xx; none after a timeout (3 s + a wait > 3 s).
RETRY = RetryPolicy(max_attempts=2, max_total_seconds=TIMEOUT_S, base_seconds=0.2)


@dataclass
class ExchangeProbe:
    """What one exchange answered so far. Steps append rows; `close` freezes them."""

    settings: Settings
    name: str
    wall_clock: Callable[[], float] = time.time
    rows: list[CheckRow] = field(default_factory=list)
    listed: list[MarketInfo] | None = None
    waiting_for: tuple[str, str] = ("reachable", "starting")
    reachable: bool = False
    key_accepted: bool = False
    crashed: Exception | None = None  # a bug in a step, raised again in the main thread
    _listed_clock: ClockReading | None = None  # read from the market list's `Date` header
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _clients: dict[str, ExchangeClient] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> ExchangeSettings:
        return self.settings.exchange(self.name)

    @property
    def adapter(self) -> Exchange:
        return registry.get(self.name)

    @property
    def facts(self) -> ExchangeChecks:
        """What this exchange's adapter declares for the checks."""
        return self.adapter.checks

    def add(self, check: str, status: Status, detail: str, fix: str = "") -> None:
        self.add_row(CheckRow(check, self.name, status, detail, fix))

    def add_row(self, row: CheckRow) -> None:
        with self._lock:
            if not self._closed:
                self.rows.append(row)

    def close(self, deadline_s: float) -> None:
        """The deadline passed: record what was still awaited; later rows are dropped."""
        check, what = self.waiting_for
        if what == LOADING_BLOCKS:
            credentials = self.config.credentials
            where = credentials.where if isinstance(credentials, CredentialsRef) else what
            self.add(
                check,
                "fail",
                f"no answer within {deadline_s:g} s (loading {where})",
                "check that the Prefect API (PREFECT_API_URL) answers",
            )
        else:
            self.add(
                check,
                "fail",
                f"no answer within {deadline_s:g} s ({what} at {self.config.base_url})",
                f"check the network connection and base_url under [{self.name}] in tally.toml",
            )
        with self._lock:
            self._closed = True

    def snapshot(self) -> list[CheckRow]:
        with self._lock:
            return list(self.rows)

    def shutdown(self) -> None:
        for client in self._clients.values():
            client.close()

    # --- clients -------------------------------------------------------------------------

    def client(self, *, signed: bool) -> ExchangeClient:
        kind = "signed" if signed else "public"
        if kind not in self._clients:
            config = self.config
            credentials = config.load_credentials() if signed else None
            connection = Connection(
                credentials,
                ACCOUNT,
                self.facts.probe_budget(config),
                RETRY,
                (TIMEOUT_S, TIMEOUT_S),
            )
            self._clients[kind] = self.adapter.ingestion.client(config, connection)
        return self._clients[kind]

    def present(self) -> datetime:
        """The sync's present, for the time windows of probing reads: the configured frozen
        `now`, else the wall clock (the clock check never uses the frozen one)."""
        return self.settings.now or datetime.now(UTC)

    def failed(self, error: ExchangeError) -> None:
        explained = explain(error, self.config.base_url)
        fix = explained.fix
        credentials = self.config.credentials
        if explained.check == "credentials" and isinstance(credentials, CredentialsRef):
            fix = f"check the key and secret in {credentials.where}"  # not the variables
        self.add(explained.check, "fail", explained.detail, fix)

    # --- steps ---------------------------------------------------------------------------

    def reach(self) -> None:
        """Read the market list: the base URL answers, and what it lists."""
        request = self.adapter.ingestion.market_list
        self.waiting_for = ("reachable", request)
        client = self.client(signed=False)
        started = self.wall_clock()
        try:
            answer = self.facts.list_markets(client)
            self.listed = answer.markets
            if answer.date is not None:
                self._listed_clock = from_date_header(
                    answer.date, started, self.wall_clock(), f"Date header of {request}"
                )
        except ExchangeError as error:
            self.failed(error)
            return
        took = self.wall_clock() - started
        self.reachable = True
        self.add("reachable", "ok", f"{self.config.base_url} answers ({request} in {took:.2f} s)")

    def market_problems(self) -> list[MarketProblem]:
        if self.listed is None:
            return []
        return market_problems(self.name, self.config.markets, self.listed)

    def clock(self, *, signed: bool) -> None:
        """Measure the local clock's offset; `signed`: whether signed requests will follow."""
        if not self.reachable:
            return
        frozen = self.settings.now
        endpoint = self.facts.time_endpoint
        if endpoint is None:  # the clock came with the market list
            reading = self._listed_clock
            if reading is None:
                self.add("clock", "skip", "the market list came without a Date header")
                return
        else:
            self.waiting_for = ("clock", endpoint.request)
            client = self.client(signed=False)
            before = self.wall_clock()
            try:
                server = endpoint.read(client)
            except ExchangeError as error:
                self.failed(error)
                return
            reading = from_server_time(
                server.timestamp(), before, self.wall_clock(), endpoint.request
            )
        self.add_row(clock_row(self.config, reading, signed=signed, frozen_now=frozen))

    def credentials(self, *, every_read: bool) -> None:
        """One cheap signed read (the key and secret accepted?); `every_read`: then every other
        account read too, one row each (doctor)."""
        if self.config.credentials is None:
            return  # told by `credentials_rows`, without a request
        if not self.load_key_pair():
            return
        if not self.reachable:
            self.add("credentials", "skip", "not checked: the exchange did not answer")
            return
        if any(row.check == "clock" and row.failed for row in self.snapshot()):
            # every signed request would be refused first (and corrected, noisily): clock first
            self.add("credentials", "skip", "not checked: the clock is off by more than allowed")
            return
        first, *others = self.facts.account_reads
        outcome = self._read(first, check="credentials")
        if outcome is None or isinstance(outcome, PermissionDeniedError):
            self.key_accepted = True
            self.add(
                "credentials",
                "ok",
                f"key and secret accepted ({first.request}); {self._source()}",
            )
        self._permission_row(first, outcome)
        if not (every_read and self.key_accepted):
            return
        for read in others:
            self._permission_row(read, self._read(read))
        self.add_row(trade_withdraw_row(self.name))

    def _source(self) -> str:
        credentials = self.config.credentials
        if isinstance(credentials, CredentialsRef):
            return f"from {credentials.where}"
        key_var, _ = env_names(self.name)
        return f"from {key_var}" if os.environ.get(key_var) else "from tally.toml"

    def load_key_pair(self) -> bool:
        """Whether the key pair is at hand; when it is kept in Prefect Secret blocks, loaded
        now, else a failed row naming each block that cannot be (no value, ever)."""
        credentials = self.config.credentials
        if not isinstance(credentials, CredentialsRef):
            return True
        self.waiting_for = ("credentials", LOADING_BLOCKS)
        try:
            credentials.resolve()
        except SecretUnavailable as error:
            self.add(
                "credentials",
                "fail",
                "; ".join(error.lines),
                "save a Secret block of that name on the Prefect server that PREFECT_API_URL "
                f"names, or correct api_key_block and api_secret_block under [{self.name}] in "
                "tally.toml",
            )
            return False
        return True

    def _read(self, read: ReadCall, check: str = "permission") -> ExchangeError | str | None:
        """Make `read`: None when it answered, its error, or why it was skipped."""
        market = self.config.markets[0] if self.config.markets else None
        if read.needs_market and market is None:
            return "no market is configured to ask with"
        self.waiting_for = (check, read.request)
        try:
            read.call(self.client(signed=True), self.present(), market)
        except ExchangeError as error:
            return error
        return None

    def _permission_row(self, read: ReadCall, outcome: ExchangeError | str | None) -> None:
        subject = f"{self.name} {read.endpoint}"
        if outcome is None:
            self.add_row(CheckRow("permission", subject, "ok", f"{read.request} answers"))
        elif isinstance(outcome, str):
            self.add_row(CheckRow("permission", subject, "skip", outcome))
        elif isinstance(outcome, PermissionDeniedError):
            explained = explain(outcome, self.config.base_url)
            self.add_row(CheckRow("permission", subject, "fail", explained.detail, explained.fix))
        else:
            self.failed(outcome)


@dataclass(frozen=True, slots=True)
class Deadline:
    """`seconds` from `started` (`time.monotonic` times): the checks' whole time budget."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def left(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())


def run_steps(
    probes: Sequence[ExchangeProbe], step: Callable[[ExchangeProbe], None], deadline: Deadline
) -> None:
    """Run `step` on every probe at once and wait until each is done or the deadline passed;
    a probe still busy then is closed with a failed row (its thread is left behind)."""

    def guarded(probe: ExchangeProbe) -> None:
        try:
            step(probe)
        except Exception as error:  # a bug: shown by the main thread, not lost in this one
            probe.crashed = error

    threads = []
    for probe in probes:
        thread = threading.Thread(
            target=guarded, args=(probe,), daemon=True, name=f"tally-check-{probe.name}"
        )
        thread.start()
        threads.append((probe, thread))
    for probe, thread in threads:
        thread.join(deadline.left)
        if thread.is_alive():
            probe.close(deadline.seconds)
        elif probe.crashed is not None:
            raise probe.crashed
