"""Prefect's settings for a local, private run; call before Prefect is first imported."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def prepare_prefect(data_dir: Path) -> None:
    """Keep Prefect's home (its SQLite database, logs) inside the project's data directory.

    Values already in the environment win, so a user's own Prefect server or profile is used
    when they have one.
    """
    home = data_dir / ".prefect"
    home.mkdir(parents=True, exist_ok=True)  # Prefect creates its home, but not the parents
    os.environ.setdefault("PREFECT_HOME", str(home))
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
