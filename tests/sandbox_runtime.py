"""A runtime on a running sandbox, as the tests that sync one need it (one copy, not one per file).

`sandbox_runtime(sandbox, directory, now=...)` writes the config `tally sandbox --write-config`
would write into `directory`, and returns a `Runtime` on it with fast retries, a frozen clock and
limiters of its own (so that tests do not share a rate budget with each other).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pipelines.cli import sandbox_config
from pipelines.config import load_settings
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, RetryPolicy, WeightBudget
from pipelines.sandbox.server import Sandbox

FAST_RETRY = RetryPolicy(
    max_attempts=12, max_total_seconds=60, base_seconds=0.01, max_backoff_seconds=0.05
)


def sandbox_runtime(sandbox: Sandbox, directory: Path, *, now: datetime) -> Runtime:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tally.toml"
    config.write_text(sandbox_config(sandbox), encoding="utf-8")
    return Runtime(
        load_settings(config),
        retry=FAST_RETRY,
        clock=lambda: now,
        limiters={"bitstamp": RequestBudget(), "bitvavo": WeightBudget()},
    )
