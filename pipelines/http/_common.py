"""Small pieces shared by the classifiers, the limiters and the client."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypedDict

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Timing(TypedDict, total=False):
    """How a limiter reads the time and waits: `time.time` and `time.sleep` unless given (tests
    give a fake clock's)."""

    clock: Clock
    sleep: Sleep


def clock_and_sleep(timing: Timing) -> tuple[Clock, Sleep]:
    return timing.get("clock", time.time), timing.get("sleep", time.sleep)


def lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Headers as a plain dict with lower-case names."""
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def to_number(value: object) -> float | None:
    """A header's number (surrounding blanks allowed), or None when it is absent or not one."""
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None
