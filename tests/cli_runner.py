"""`tally` run as a person runs it: a subprocess of this worktree's code, with no exchange keys,
no Prefect setting and no tally setting from the environment the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Environment that must not reach a `tally` subprocess: another Prefect server or profile, real
# exchange keys, a tally setting.
FOREIGN = ("PREFECT_", "BITSTAMP_", "BITVAVO_", "TALLY_")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without `FOREIGN` variables, importing this worktree, plus `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    return {**kept, "PYTHONPATH": str(REPO), **extra}


def tally(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`tally ARGS` in `cwd` (environment: `clean_env()` unless given)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def timed_tally(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`tally(...)` and the seconds it took (a monotonic clock)."""
    started = time.monotonic()
    done = tally(*args, cwd=cwd, env=env, timeout=timeout)
    return done, time.monotonic() - started
