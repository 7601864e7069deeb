"""Rate budgets shared by every process that uses the same key: a `StateFile`, or a `PgState`.

Two `tally sync` processes, or Prefect flow runs in a process worker, each have their own
in-process limiter; with one key they would together spend twice its budget. The limiters here
keep their bookkeeping in `<directory>/<exchange>-<key fingerprint>.json` instead (`budget_path`:
16 hex digits of the key's SHA-256, never the key), or in the row of that name in PostgreSQL
(`BudgetRow`), under a lock held only for that bookkeeping, never while sleeping or during the
HTTP call:

- `SharedRequestBudget` (Bitstamp, no rate headers): the per-window and per-second limits of
  `RequestBudget` as sliding windows over time slots (1/60 of a window each). A request counts
  in its slot until the whole slot has left the window, so the budget errs on the safe side by at
  most one slot. A 429's block holds for every process.
- `SharedWeightBudget` (Bitvavo): `WeightBudget` whose header state (remaining, reset time, the
  learnt clock skew, probing, last send, bans) and in-flight weight live in the file or row, so
  that a second process does not spend weight the first already used or has in flight.

Unreadable state (a write torn by a crash, another version, a row edited by hand): the budget is
taken as spent, so no process sends for one window (a checksum detects a torn write).

Stale state: a crashed holder's lock is released by the kernel (by PostgreSQL when its
connection ends or idles inside a transaction); slots that left the window are
dropped; weight in flight is kept per process and dropped when that process is gone (same host)
or after `stale_seconds`; a reset time in the past rolls over as `WeightBudget` does. Clock
jumps: state stamped in the future (the clock went back) is pulled to the present, so no wait
exceeds one window (or a ban's length); a jump forward can release a window early, within the
margin the default pacing keeps below the exchanges' limits.

Scope: one machine, or several. Processes share a budget when they use the same directory (by
default the data directory's `.ratelimit`; the `rate_budget_dir` setting lets several data
directories that use one key share one), or the same PostgreSQL database (`rate_budget_url`):
then the document is a row (`BudgetRow`, kept by `_pgstate.PgState`, the same `edit()` under a
row lock), and processes on every machine that name that database share the budget. Weight in
flight is then owned by a process of a host: a process of this host whose pid is gone (or now
belongs to a process started later) is dropped at once; one of another host only after
`stale_seconds`, as its pid means nothing here. Hosts are told apart by name, boot id and pid
namespace (`host_identity`), so that two containers or two machines with one host name are not
taken for one. The budgets' times are each process's wall clock: machines sharing a budget keep
their clocks in step (NTP); an offset of a second or two errs by that many seconds' requests in
a window, inside the margin the default pacing keeps below the exchanges' limits.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Unpack

from pipelines.database_url import DatabaseUrl

from ._common import Timing, clock_and_sleep
from ._limiters import (
    Limiter,
    WeightBudget,
    check_weight,
    report_request_wait,
    report_requests_left,
    request_rules,
)
from ._pgstate import PgState
from ._statefile import StateFile

SLOTS_PER_WINDOW = 60
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
MAX_BLOCK_SECONDS = 1800.0
"""No block or ban read from the file lasts longer than this from now (a ban is at most 15 min)."""


def budget_name(exchange: str, fingerprint: str | None) -> str:
    """`<exchange>-<fingerprint>`, or `<exchange>-public` without a key.

    `fingerprint` is `Credentials.fingerprint` (16 hex digits of the key's SHA-256); anything
    else is refused, so that a key can never end up in a file name or a row's name.
    """
    if fingerprint is None:
        return f"{exchange}-public"
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError("a budget is named by a key fingerprint (16 hex digits), not a key")
    return f"{exchange}-{fingerprint}"


def budget_path(directory: Path | str, exchange: str, fingerprint: str | None) -> Path:
    """`<directory>/<exchange>-<fingerprint>.json` (`budget_name`)."""
    return Path(directory) / f"{budget_name(exchange, fingerprint)}.json"


@dataclass(frozen=True)
class BudgetRow:
    """A budget kept in PostgreSQL: the row `name` (`budget_name`) of the database at `url`."""

    url: DatabaseUrl
    name: str

    def __str__(self) -> str:
        return f"{self.url}#{self.name}"


BudgetPlace = Path | BudgetRow
"""Where a shared budget lives: a file (one machine) or a PostgreSQL row (several)."""


class _State(Protocol):
    def edit(self) -> AbstractContextManager[dict[str, Any]]: ...

    def close(self) -> None: ...


def _state(where: BudgetPlace | str, recover: Callable[[], dict[str, Any]]) -> _State:
    if isinstance(where, BudgetRow):
        return PgState(where.url, where.name, recover)
    return StateFile(where, recover)


class _Stored:
    """A budget whose state lives in a `StateFile` or a `PgState`."""

    _where: BudgetPlace
    _file: _State

    def _keep_at(self, where: BudgetPlace | str, recover: Callable[[], dict[str, Any]]) -> None:
        self._where = where if isinstance(where, BudgetRow) else Path(where)
        self._file = _state(self._where, recover)

    @property
    def where(self) -> BudgetPlace:
        return self._where

    @property
    def path(self) -> Path:
        """The budget's file (a budget kept in PostgreSQL has none)."""
        if isinstance(self._where, BudgetRow):
            raise AttributeError(f"{self!r} is kept in PostgreSQL, not in a file")
        return self._where

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._where)!r})"

    def close(self) -> None:
        self._file.close()


class SharedRequestBudget(_Stored, Limiter):
    """Bitstamp: `RequestBudget`'s limits, shared through the file or row `where`.

    At most `requests_per_window` per sliding `window_seconds` and `max_requests_per_second`
    per second (over `max(1, 1/rate)` seconds, as `RequestBudget`) for all processes together.
    Processes with other window lengths on the same file see this one's requests, and it theirs,
    from the moment both have written.
    """

    def __init__(
        self,
        where: BudgetPlace | str,
        requests_per_window: int,
        window_seconds: float,
        max_requests_per_second: float,
        **timing: Unpack[Timing],
    ) -> None:
        self._rules = request_rules(
            "SharedRequestBudget", requests_per_window, window_seconds, max_requests_per_second
        )
        self._clock, self._sleep = clock_and_sleep(timing)
        self._keep_at(where, self._assume_spent)

    def _assume_spent(self) -> dict[str, Any]:
        """An unreadable file: its windows may be full, so nobody sends for the longest one."""
        return {"blocked_until": self._clock() + max(span for _, span in self._rules)}

    def acquire(self, weight: int = 1) -> None:
        check_weight(weight, min(capacity for capacity, _ in self._rules))
        left = 0
        while True:
            with self._file.edit() as state:
                now = self._clock()
                windows = _windows(state, now)
                for _, span in self._rules:
                    windows.setdefault(repr(span), {"slot": span / SLOTS_PER_WINDOW, "counts": {}})
                blocked = min(float(state.get("blocked_until", 0.0)), now + MAX_BLOCK_SECONDS)
                per_window, per_second = (
                    _wait_for(windows[repr(span)], capacity, span, weight, now)
                    for capacity, span in self._rules
                )
                wait = max(blocked - now, per_window, per_second)
                if wait <= 0:
                    for window in windows.values():
                        counts = window["counts"]
                        slot = str(math.floor(now / window["slot"]))
                        counts[slot] = counts.get(slot, 0) + weight
                    capacity, span = self._rules[0]
                    left = capacity - sum(windows[repr(span)]["counts"].values())
                state["windows"] = windows
            if wait <= 0:
                report_requests_left(left, self._rules[0])
                return
            report_request_wait((blocked - now, per_window, per_second), *self._rules)
            self._sleep(wait)

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        return None

    def block_until(self, epoch_seconds: float) -> None:
        with self._file.edit() as state:
            now = self._clock()
            known = min(float(state.get("blocked_until", 0.0)), now + MAX_BLOCK_SECONDS)
            state["blocked_until"] = max(known, float(epoch_seconds))


def _windows(state: Mapping[str, Any], now: float) -> dict[str, dict[str, Any]]:
    """The file's windows with the slots that left them dropped and future slots pulled to now."""
    kept: dict[str, dict[str, Any]] = {}
    for key, window in dict(state.get("windows", {})).items():
        span, slot = float(key), float(window["slot"])
        current = math.floor(now / slot)
        counts: dict[str, int] = {}
        for index, count in window["counts"].items():
            position = min(int(index), current)  # the clock went back: count it as sent now
            if (position + 1) * slot + span > now:
                counts[str(position)] = counts.get(str(position), 0) + int(count)
        if counts:
            kept[key] = {"slot": slot, "counts": counts}
    return kept


def _wait_for(
    window: Mapping[str, Any], capacity: int, span: float, weight: int, now: float
) -> float:
    """Seconds until `weight` more fits: until enough of the oldest slots have left the window."""
    counts = {int(index): count for index, count in window["counts"].items()}
    excess = sum(counts.values()) + weight - capacity
    if excess <= 0:
        return 0.0
    freed = 0
    for index in sorted(counts):
        freed += counts[index]
        if freed >= excess:
            return (index + 1) * window["slot"] + span - now
    return span  # unreachable while weight <= capacity


_STATE_FIELDS = (
    "_limit",
    "_remaining",
    "_reset_at",
    "_observed_reset",
    "_probing",
    "_skew",
    "_last_send",
    "_blocked_until",
)


class SharedWeightBudget(_Stored, WeightBudget):
    """Bitvavo: `WeightBudget` (same options and pacing) whose state lives in the file or row
    `where`.

    Each object (one per process in practice) books its weight in flight under its own entry
    with its host (`host_identity`), process id, the process's start and the time the entry last
    changed; an entry whose process is gone (on this host) or that did not change for
    `stale_seconds` (on any host) is dropped.
    """

    def __init__(
        self,
        where: BudgetPlace | str,
        *,
        stale_seconds: float = 120.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._keep_at(where, self._assume_spent)
        self._stale = float(stale_seconds)
        self._host = host_identity()
        self._owners: dict[int, str] = {}

    @property
    def _owner(self) -> str:
        """This object's entry in the file, in this process (a forked child gets its own)."""
        pid = os.getpid()
        owner = self._owners.get(pid)
        if owner is None:
            owner = self._owners[pid] = uuid.uuid4().hex
        return owner

    def _assume_spent(self) -> dict[str, Any]:
        """An unreadable file: the window may be used up (and weight in flight), so nobody sends
        for a window; then one request goes alone until a response tells the budget."""
        return {"blocked_until": self._clock() + self._window, "probing": True}

    @property
    def remaining(self) -> int:
        with self._booking():
            return self._remaining

    @contextmanager
    def _booking(self) -> Iterator[float]:
        """Run `WeightBudget`'s bookkeeping on the file's state (yields now), then store it."""
        with self._file.edit() as state:
            now = self._clock()
            self._load(state, now)
            in_flight = self._in_flight
            yield now
            self._store(state, self._in_flight - in_flight, now)

    def _load(self, state: dict[str, Any], now: float) -> None:
        for name in _STATE_FIELDS:
            if name[1:] in state:
                setattr(self, name, state[name[1:]])
        # The clock went back (or the file is from another clock): nothing lies further ahead
        # than a window past now, or a ban's length.
        horizon = now + 2 * self._window
        if self._reset_at is not None and self._reset_at > horizon:
            self._reset_at = now + self._window
        if self._observed_reset is not None and self._observed_reset > horizon:
            self._observed_reset = None
        if self._last_send is not None and self._last_send > now:
            self._last_send = now
        self._blocked_until = min(self._blocked_until, now + MAX_BLOCK_SECONDS)
        flights = state.setdefault("in_flight", {})
        for owner, entry in list(flights.items()):
            if owner != self._owner and self._gone(entry, now):
                # Its response will never be observed: assume the weight was spent.
                self._remaining -= int(entry["weight"])
                del flights[owner]
        self._in_flight = sum(int(entry["weight"]) for entry in flights.values())

    def _gone(self, entry: Mapping[str, Any], now: float) -> bool:
        if now - float(entry["at"]) > self._stale:
            return True
        if entry["host"] != self._host:
            return False  # its pid means nothing here: only its age tells
        return not _process_alive(int(entry["pid"]), entry.get("started"))

    def _store(self, state: dict[str, Any], change: int, now: float) -> None:
        for name in _STATE_FIELDS:
            state[name[1:]] = getattr(self, name)
        flights = state["in_flight"]
        mine = flights.pop(self._owner, {"weight": 0, "at": now})
        weight = max(0, int(mine["weight"]) + change)
        if weight:
            at = now if change else float(mine["at"])
            flights[self._owner] = {
                "host": self._host,
                "pid": os.getpid(),
                "started": _own_start(os.getpid()),
                "weight": weight,
                "at": at,
            }

    def observe(self, headers: Mapping[str, str], weight: int) -> None:
        with self._booking():
            super().observe(headers, weight)

    def block_until(self, epoch_seconds: float) -> None:
        with self._booking():
            super().block_until(epoch_seconds)


@functools.cache
def host_identity() -> str:
    """`<host name>/<boot id>/<pid namespace>`: equal for two processes only when each can see
    the other's pid (one kernel, one boot, one pid namespace). Without /proc (not Linux): the
    host name alone."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


@functools.cache
def _own_start(pid: int) -> str | None:
    """`_process_start` of this process, whose pid is `pid` (read once per pid: a forked child
    has its own)."""
    return _process_start(pid)


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22: starttime


def _process_alive(pid: int, started: str | None = None) -> bool:
    """Whether process `pid` of this host runs, and is the one that started at `started`
    (when known: a pid is reused once its process is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    if started is None:
        return True
    now = _process_start(pid)
    return now is None or now == started
