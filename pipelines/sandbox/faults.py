"""Fault injection: which request gets which fault, reproducibly.

Request number n (counted per exchange server, from 0, over faultable requests only: never
`/_sandbox/*` or `/v2/time`) gets a fault when `u(seed, exchange, n) < rate`, where `u` is
derived from a hash; the kind is then picked from the configured kinds by the same hash. So a
run is reproducible from the seed and the order of requests.

Kinds (`FAULT_KINDS`):

- `rate_limited`  HTTP 429 with the exchange's rate-limit body (no real ban follows).
- `server_error`  a 5xx: a JSON error body of the exchange, or an HTML gateway page.
- `error_body`    Bitstamp: an error body with HTTP 200 (maintenance, 400.002);
                  Bitvavo: errorCode 107 / 108 / 109 with a 5xx status.
- `reset`         the connection is reset (RST) without any response.
- `slow`          the right response, after `slow_seconds`.
- `truncated`     200 with a cut body: either the full Content-Length and an early close, or a
                  cut body with a matching Content-Length (invalid JSON).
- `malformed_row` 200 with one row of a page broken (a field missing, a non-numeric amount, or
                  a row of an unknown shape). Off unless selected explicitly.

A fault never changes what a successful response contains: `slow` delivers the exact body, and
all other kinds are failures a client must see as such (or, for `malformed_row`, reject the row).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from copy import copy
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.sandbox.wire import Raw

FAULT_KINDS = (
    "rate_limited",
    "server_error",
    "error_body",
    "reset",
    "slow",
    "truncated",
    "malformed_row",
)
DEFAULT_FAULT_KINDS = tuple(kind for kind in FAULT_KINDS if kind != "malformed_row")
DEFAULT_SLOW_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class FaultConfig:
    rate: float = 0.0
    kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("a fault rate needs at least one fault kind")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")


def parse_kinds(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"reset,slow"` or an iterable of names → a tuple; None → the defaults; "all" → every kind."""
    if text is None:
        return DEFAULT_FAULT_KINDS
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if names == ["all"]:
        return FAULT_KINDS
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    variant: int  # picks among the kind's variants (which body, which row, which breakage)
    number: int  # the request number that drew it


class FaultPlan:
    """Draws the fault (or None) for each successive faultable request of one server."""

    def __init__(self, config: FaultConfig, exchange: str) -> None:
        self.config = config
        self._exchange = exchange
        self._count = 0
        self._lock = threading.Lock()

    def draw(self) -> Fault | None:
        with self._lock:
            number = self._count
            self._count += 1
        if self.config.rate <= 0:
            return None
        digest = hashlib.sha256(
            f"{self.config.seed}/{self._exchange}/fault/{number}".encode()
        ).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        if u >= self.config.rate:
            return None
        kinds = self.config.kinds
        kind = kinds[int.from_bytes(digest[8:12], "big") % len(kinds)]
        return Fault(kind, int.from_bytes(digest[12:20], "big"), number)


# --- malformed rows -------------------------------------------------------------------------

_AMOUNT_KEYS = ("amount", "volume", "price", "total", "available", "fee", "receivedAmount")
NOT_A_NUMBER = "not-a-number"


def malform_rows(payload: Any, rows_path: tuple[str, ...], variant: int) -> tuple[Any, str] | None:
    """A copy of `payload` with one row of the list at `rows_path` broken, and how.

    None when there is no row to break. The original payload (possibly the world's own objects)
    is never mutated: containers along the path are copied.
    """
    payload = _plain(payload, rows_path)
    rows = payload
    for key in rows_path:
        if not isinstance(rows, dict) or key not in rows:
            return None
        rows = rows[key]
    if not isinstance(rows, list) or not rows:
        return None
    index = variant % len(rows)
    how = ("missing_field", "non_numeric", "unknown_shape")[(variant // 7) % 3]
    broken = _break_row(rows[index], how, variant)
    new_rows = list(rows)
    new_rows[index] = broken
    return _replace(payload, rows_path, new_rows), how


def _plain(value: Any, path: tuple[str, ...]) -> Any:
    """`value` with every `Raw` on `path` (and the rows at its end) decoded, copying as needed."""
    if isinstance(value, Raw):
        value = value.decoded()
    if not path or not isinstance(value, dict) or path[0] not in value:
        return value
    inner = _plain(value[path[0]], path[1:])
    if inner is value[path[0]]:
        return value
    return {**value, path[0]: inner}


def _break_row(row: Any, how: str, variant: int) -> Any:
    if how == "unknown_shape":
        if isinstance(row, dict):
            return list(row.values())
        return {"row": row}
    if isinstance(row, dict):
        if how == "missing_field" and row:
            keys = list(row)
            new = dict(row)
            del new[keys[variant % len(keys)]]
            return new
        new = dict(row)
        key = _numeric_key(new)
        new[key or "amount"] = NOT_A_NUMBER
        return new
    if isinstance(row, list):
        if how == "missing_field" and row:
            return row[:-1]
        new_list = list(row)
        if new_list:
            new_list[-1] = NOT_A_NUMBER
        return new_list
    return {"row": row}


def _numeric_key(row: dict[str, Any]) -> str | None:
    for key in _AMOUNT_KEYS:
        if key in row:
            return key
    for key, value in row.items():
        if isinstance(value, Decimal):
            return key
        if isinstance(value, str):
            try:
                Decimal(value)
            except InvalidOperation:
                continue
            return key
    return None


def _replace(container: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    new = copy(container)
    new[path[0]] = _replace(container[path[0]], path[1:], value)
    return new
