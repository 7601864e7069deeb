"""Waiting for a lock another process holds: polled until a deadline, said once.

The data directory's `flock` (`datadir_lock`) and the advisory locks in PostgreSQL
(`stream_lock`) wait alike: one line through `notice` naming the holder, a poll every few
tenths of a second, and at the deadline an error naming the holder again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    take: Callable[[], T | None],
    *,
    what: str,
    holder: Callable[[], str],
    wait: float,
    notice: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    poll_seconds: float,
    refused: Callable[[str], Exception],
) -> T:
    """`take()` again and again until it gives the lock (not None), for at most `wait` seconds
    (`math.inf`: no limit), after the caller's own first try failed: says once, through
    `notice`, that it waits for `what` and on whom (`holder()`); raises `refused(message)` at
    the deadline."""
    limit = "" if math.isinf(wait) else f" (at most {wait:g} s)"
    notice(f"waiting for {what}{limit}: in use by {holder()}")
    deadline = clock() + wait
    while (taken := take()) is None:
        left = deadline - clock()
        if left <= 0:
            raise refused(f"{what} is still in use by {holder()} after waiting {wait:g} s")
        sleep(min(poll_seconds, left))
    return taken
