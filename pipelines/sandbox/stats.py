"""Counters behind `GET /_sandbox/stats`."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class ServerStats:
    """Thread-safe counters of one exchange server."""

    def __init__(self, exchange: str) -> None:
        self._exchange = exchange
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._weight: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._auth_failures: Counter[str] = Counter()
        self._rate_limited = 0
        self._bans = 0
        self._banned_requests = 0

    def request(self, endpoint: str, weight: int) -> None:
        with self._lock:
            self._requests[endpoint] += 1
            self._weight[endpoint] += weight

    def response(self, status: int) -> None:
        with self._lock:
            self._statuses[str(status)] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def auth_failure(self, code: str) -> None:
        with self._lock:
            self._auth_failures[code] += 1

    def rate_limited(self, *, ban_started: bool) -> None:
        with self._lock:
            self._rate_limited += 1
            if ban_started:
                self._bans += 1

    def banned_request(self) -> None:
        with self._lock:
            self._banned_requests += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            endpoints = {
                name: {"requests": self._requests[name], "weight": self._weight[name]}
                for name in sorted(self._requests)
            }
            return {
                "exchange": self._exchange,
                "requests": sum(self._requests.values()),
                "weight": sum(self._weight.values()),
                "endpoints": endpoints,
                "responses": dict(sorted(self._statuses.items())),
                "faults": dict(sorted(self._faults.items())),
                "auth_failures": dict(sorted(self._auth_failures.items())),
                "rate_limited": self._rate_limited,
                "bans": self._bans,
                "banned_requests": self._banned_requests,
            }
