"""What the tests that sync a sandbox share (one copy, not one per file).

`sandbox_runtime(sandbox, directory, now=...)` writes the config `tally sandbox --write-config`
would write into `directory` (`write_sandbox_config`), and returns a `Runtime` on it with fast
retries (or the test's `retry`), a clock frozen at `now` (or `now` itself when it is a clock),
limiters of its own (so that tests do not share a rate budget with each other; or the test's
`limiters`) and its data in `directory`/data (or `data_dir`). `ClockedWorld` is a frozen world
whose clock the test sets or moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from fakeclock import FakeClock

from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.flows.runtime import Runtime
from pipelines.http import Limiter, RequestBudget, RetryPolicy, WeightBudget
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)


def sandbox_runtime(
    sandbox: Sandbox,
    directory: Path,
    *,
    now: datetime | Callable[[], datetime],
    retry: RetryPolicy = FAST_RETRY,
    limiters: Mapping[str, Limiter] | None = None,
    data_dir: Path | None = None,
) -> Runtime:
    return Runtime(
        load_settings(write_sandbox_config(sandbox, directory), data_dir=data_dir),
        retry=retry,
        clock=now if callable(now) else frozen_at(now),
        limiters=(
            limiters
            if limiters is not None
            else {
                "bitstamp": RequestBudget(*BITSTAMP_PACING),
                "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
            }
        ),
    )


def frozen_at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def write_sandbox_config(sandbox: Sandbox, directory: Path) -> Path:
    """`directory`/tally.toml as `tally sandbox --write-config` writes it (data in ./data)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tally.toml"
    write_config(config, sandbox_document(sandbox))
    return config


class ClockedWorld(World):
    """A frozen world whose clock (a `FakeClock`, `clock`) the test sets (`set`) or moves
    (`move`); a runtime may read the same clock (`clock=world.clock.utc`)."""

    def __init__(self, *, seed: int, days: int, now: datetime) -> None:
        self.clock = FakeClock(now)
        super().__init__(seed=seed, days=days, now_ms=self.clock.ms())

    def now_ms(self) -> int:
        return self.clock.ms()

    def now(self) -> datetime:
        return self.clock.utc()

    def set(self, moment: datetime) -> None:
        self.clock.set(moment)

    def move(self, delta: timedelta) -> datetime:
        self.clock.advance(delta)
        return self.now()
