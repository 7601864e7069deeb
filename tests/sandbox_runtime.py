"""What the tests that sync a sandbox share (one copy, not one per file).

`sandbox_runtime(sandbox, directory, now=...)` writes the config `tally sandbox --write-config`
would write into `directory` (`write_sandbox_config`), and returns a `Runtime` on it with fast
retries, a frozen clock and limiters of its own (so that tests do not share a rate budget with
each other). `ClockedWorld` is a frozen world whose clock the test sets or moves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.cli import sandbox_config
from pipelines.config import load_settings
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, RetryPolicy, WeightBudget
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.world import World

FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)


def sandbox_runtime(sandbox: Sandbox, directory: Path, *, now: datetime) -> Runtime:
    return Runtime(
        load_settings(write_sandbox_config(sandbox, directory)),
        retry=FAST_RETRY,
        clock=lambda: now,
        limiters={"bitstamp": RequestBudget(), "bitvavo": WeightBudget()},
    )


def write_sandbox_config(sandbox: Sandbox, directory: Path) -> Path:
    """`directory`/tally.toml as `tally sandbox --write-config` writes it (data in ./data)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tally.toml"
    config.write_text(sandbox_config(sandbox), encoding="utf-8")
    return config


class ClockedWorld(World):
    """A frozen world whose clock the test sets (`set`) or moves (`move`)."""

    def __init__(self, *, seed: int, days: int, now: datetime) -> None:
        self.clock_ms = _ms(now)
        super().__init__(seed=seed, days=days, now_ms=_ms(now))

    def now_ms(self) -> int:
        return self.clock_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock_ms / 1000, UTC)

    def set(self, moment: datetime) -> None:
        self.clock_ms = _ms(moment)

    def move(self, delta: timedelta) -> datetime:
        self.clock_ms += int(delta.total_seconds() * 1000)
        return self.now()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
