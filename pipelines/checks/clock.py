"""The local clock against an exchange's: a measured offset, the exchange's tolerance, a row.

Each exchange refuses a signed request whose timestamp is too far from its own clock
(docs/exchanges.md): Bitstamp a `X-Auth-Timestamp` more than 150 s off (the nonce's validity,
`API0017`), Bitvavo a request received outside its `Bitvavo-Access-Window` (10 s by default,
`access_window_ms` in tally.toml; errorCode 304). That bound is the tolerance: an offset beyond it
fails (every signed request would first be refused), one beyond half of it warns (network delay
eats the rest). Both clients correct a refused timestamp once, but the fix is the system clock.

What is compared: the wall clock the signers read (`time.time()`), never the configured `now`.
A `now` frozen in tally.toml (a sandbox) moves the sync's present, the windows it asks for; the
requests are still signed, and checked by the exchange, on the wall clock.

Bitvavo tells its time at `GET /v2/time` (milliseconds): the offset is taken against the middle
of the request, give or take half its round trip. Bitstamp has no time endpoint: its HTTP `Date`
header (whole seconds, truncated) is read from a public response, half a second added. Each
exchange's adapter declares which it is and its tolerance (`ExchangeChecks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipelines.checks import CheckRow, Status
from pipelines.config import ExchangeSettings
from pipelines.exchanges import registry

NTP_FIX = "set the system clock right (turn on NTP time synchronisation)"


@dataclass(frozen=True, slots=True)
class ClockReading:
    """Exchange time minus local time, in seconds (positive: our clock is behind), give or
    take `uncertainty_s`; `source` says where the exchange's time came from."""

    offset_s: float
    uncertainty_s: float
    source: str


def from_server_time(server_s: float, before_s: float, after_s: float, source: str) -> ClockReading:
    """A reading of an exact server time taken between local times `before_s` and `after_s`."""
    middle = (before_s + after_s) / 2
    return ClockReading(server_s - middle, (after_s - before_s) / 2, source)


def from_date_header(date_s: float, before_s: float, after_s: float, source: str) -> ClockReading:
    """A reading of an HTTP `Date` header (truncated to the second) taken between local times
    `before_s` and `after_s`."""
    middle = (before_s + after_s) / 2
    return ClockReading(date_s + 0.5 - middle, 0.5 + (after_s - before_s) / 2, source)


def tolerance_s(config: ExchangeSettings) -> tuple[float, str]:
    """How far off the local clock may be for `config`'s exchange, and the rule it comes from."""
    return registry.get(config.name).checks.clock_tolerance(config)


def clock_row(
    config: ExchangeSettings,
    reading: ClockReading,
    *,
    signed: bool,
    frozen_now: datetime | None = None,
) -> CheckRow:
    """ok within half the tolerance, warn up to it, fail beyond it; a clock that no signed
    request will depend on (`signed` false) only warns."""
    limit, rule = tolerance_s(config)
    offset = reading.offset_s
    direction = "behind" if offset > 0 else "ahead of"
    detail = (
        f"local clock {abs(offset):.3f} s {direction} the exchange's "
        f"(±{reading.uncertainty_s:.3f} s, {reading.source}); {rule}"
    )
    if frozen_now is not None:
        detail += "; now is frozen in tally.toml, but requests are signed on the wall clock"
    if abs(offset) > limit:
        status: Status = "fail" if signed else "warn"
        if not signed:
            detail += "; no signed request will be sent"
        return CheckRow("clock", config.name, status, detail, NTP_FIX)
    if abs(offset) > limit / 2:
        return CheckRow("clock", config.name, "warn", detail, NTP_FIX)
    return CheckRow("clock", config.name, "ok", detail)
