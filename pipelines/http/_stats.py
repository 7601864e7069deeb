"""Request metering: what a client sent, per endpoint, and `Usage` deltas for one stream or probe.

`HttpStats` is the one meter: the client records every attempt it sends (with its weight),
every retry and every error. What a stream or a probe cost is `usage()` when it ends less
`usage()` when it started: what the client sent in between.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ExchangeError


@dataclass(frozen=True)
class Usage:
    """Requests sent (every attempt, retries included), their weight, and the retries."""

    requests: int = 0
    weight: int = 0
    retries: int = 0

    def __sub__(self, earlier: Usage) -> Usage:
        return Usage(
            self.requests - earlier.requests,
            self.weight - earlier.weight,
            self.retries - earlier.retries,
        )


@dataclass(frozen=True)
class EndpointStats:
    requests: int = 0
    retries: int = 0
    weight: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)


class HttpStats:
    """Thread-safe counters for run summaries: requests sent, retries, weight, errors by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, Any]] = {}

    def _entry(self, endpoint: str) -> dict[str, Any]:
        entry = self._counts.get(endpoint)
        if entry is None:
            entry = {"requests": 0, "retries": 0, "weight": 0, "errors": {}}
            self._counts[endpoint] = entry
        return entry

    def record_request(self, endpoint: str, weight: int) -> None:
        with self._lock:
            entry = self._entry(endpoint)
            entry["requests"] += 1
            entry["weight"] += weight

    def record_retry(self, endpoint: str) -> None:
        with self._lock:
            self._entry(endpoint)["retries"] += 1

    def record_error(self, endpoint: str, error: ExchangeError) -> None:
        with self._lock:
            errors = self._entry(endpoint)["errors"]
            kind = type(error).__name__
            errors[kind] = errors.get(kind, 0) + 1

    def by_endpoint(self) -> dict[str, EndpointStats]:
        with self._lock:
            return {
                name: EndpointStats(
                    requests=entry["requests"],
                    retries=entry["retries"],
                    weight=entry["weight"],
                    errors=dict(entry["errors"]),
                )
                for name, entry in self._counts.items()
            }

    def usage(self) -> Usage:
        """The totals so far, read at one moment (subtract an earlier one for a delta)."""
        with self._lock:
            counts = self._counts.values()
            return Usage(
                requests=sum(entry["requests"] for entry in counts),
                weight=sum(entry["weight"] for entry in counts),
                retries=sum(entry["retries"] for entry in counts),
            )

    @property
    def requests(self) -> int:
        return self.usage().requests

    @property
    def retries(self) -> int:
        return self.usage().retries

    @property
    def weight(self) -> int:
        return self.usage().weight

    @property
    def errors(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for entry in self.by_endpoint().values():
            for kind, count in entry.errors.items():
                totals[kind] = totals.get(kind, 0) + count
        return totals

    def as_dict(self) -> dict[str, Any]:
        endpoints = self.by_endpoint()
        return {
            "requests": sum(e.requests for e in endpoints.values()),
            "retries": sum(e.retries for e in endpoints.values()),
            "weight": sum(e.weight for e in endpoints.values()),
            "errors": self.errors,
            "endpoints": {
                name: {
                    "requests": e.requests,
                    "retries": e.retries,
                    "weight": e.weight,
                    "errors": dict(e.errors),
                }
                for name, e in endpoints.items()
            },
        }

    def __repr__(self) -> str:
        return f"HttpStats(requests={self.requests}, retries={self.retries}, weight={self.weight})"
