"""Prefect's settings for a local, private run; call before Prefect is first imported.

Prefect's own logging stays in its place: its UI (the API log handler, as Prefect ships it) and
`<data_dir>/logs/prefect.log`, never the terminal. `prepare_prefect` writes a logging config
(`<data_dir>/logs/prefect-logging.yml`: Prefect's default with its console handler silenced and
every logger that would write to the terminal sent to the file) and points
PREFECT_LOGGING_CONFIG_PATH at it, unless the user has a logging config of their own (either
of Prefect's variables, or `logging.yml` in their own PREFECT_HOME). Prefect's
`PREFECT_LOGGING_[PATH]_[TO]_[KEY]` overrides still apply on top, e.g.
`PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=INFO` brings the console back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipelines.atomic import write_text

DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}
LOGGING_VARIABLES = ("PREFECT_LOGGING_CONFIG_PATH", "PREFECT_LOGGING_SETTINGS_PATH")
SILENT = 100  # above CRITICAL: a handler at this level writes nothing

FORMAT = "%(asctime)s.%(msecs)03d | %(levelname)-7s | {}%(message)s"


def logging_config(log_path: Path) -> dict[str, Any]:
    """Prefect's logging.yml (3.8) with its `console` handler silenced and a rotating `file`
    handler (`log_path`) wherever Prefect had `console` or its stderr `debug` handler.

    "${...}" are Prefect settings that Prefect substitutes when it reads the file, so
    PREFECT_LOGGING_LEVEL and the like keep their meaning.
    """
    prefect_level, server_level = "${PREFECT_LOGGING_LEVEL}", "${PREFECT_SERVER_LOGGING_LEVEL}"
    to_file = {"handlers": ["console", "file"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "standard": {
                "()": "prefect.logging.formatters.PrefectFormatter",
                "format": FORMAT.format("%(name)s - "),
                "flow_run_fmt": FORMAT.format("Flow run %(flow_run_name)r - "),
                "task_run_fmt": FORMAT.format("Task run %(task_run_name)r - "),
                "datefmt": "%Y-%m-%d %H:%M:%S",
            }
        },
        "handlers": {
            "console": {
                "level": SILENT,
                "class": "prefect.logging.handlers.PrefectConsoleHandler",
                "formatter": "standard",
                "stream": "ext://sys.stderr",
            },
            "file": {
                "level": 0,
                "class": "logging.handlers.RotatingFileHandler",
                "formatter": "standard",
                "filename": str(log_path).replace("$", "$$"),
                "maxBytes": 10_000_000,
                "backupCount": 3,
                "encoding": "utf-8",
                "delay": True,
            },
            "api": {"level": 0, "class": "prefect.logging.handlers.APILogHandler"},
            "worker_api": {"level": 0, "class": "prefect.logging.handlers.WorkerAPILogHandler"},
        },
        "loggers": {
            "prefect": {"level": prefect_level},
            "prefect.extra": {"level": prefect_level, "handlers": ["api"], "propagate": False},
            "prefect.flow_runs": {"level": "NOTSET", "handlers": ["api"]},
            "prefect.task_runs": {"level": "NOTSET", "handlers": ["api"]},
            "prefect.workers": {"level": "NOTSET", "handlers": ["worker_api"]},
            "prefect.server": {"level": server_level},
            "prefect.client": {"level": prefect_level},
            "prefect.infrastructure": {"level": prefect_level},
            "prefect._internal": {
                "level": "${PREFECT_INTERNAL_LOGGING_LEVEL}",
                "handlers": ["file"],
                "propagate": False,
            },
            "uvicorn": {"level": server_level, **to_file},
            "fastapi": {"level": server_level, **to_file},
            # tally's own: the HTTP layer's retries and errors (INFO)
            "pipelines": {"level": "INFO"},
        },
        "root": {"level": "WARNING", "handlers": ["console", "file"]},
    }


def prepare_prefect(data_dir: Path) -> None:
    """Keep Prefect's home (its SQLite database) inside the project's data directory and its
    logs in `<data_dir>/logs/prefect.log` (see the module docstring).

    Values already in the environment win, so a user's own Prefect server or profile is used
    when they have one.
    """
    home = data_dir / ".prefect"
    home.mkdir(parents=True, exist_ok=True)  # Prefect creates its home, but not the parents
    os.environ.setdefault("PREFECT_HOME", str(home))
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not _own_logging_config():
        os.environ["PREFECT_LOGGING_CONFIG_PATH"] = str(write_logging_config(data_dir))


def log_file(data_dir: Path) -> Path:
    """Where Prefect's log of tally's runs goes."""
    return data_dir / "logs" / "prefect.log"


def write_logging_config(data_dir: Path) -> Path:
    """Write the logging config that sends Prefect's logs to `log_file(data_dir)`."""
    target = log_file(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / "prefect-logging.yml"
    # JSON is YAML: Prefect reads it with yaml.safe_load
    text = json.dumps(logging_config(target), indent=2) + "\n"
    # the pid in the temp name tells the sweep (`leftovers.py`) whether its writer still runs
    return write_text(path, text, tag=str(os.getpid()))


def _own_logging_config() -> bool:
    """Whether the user configures Prefect's logging: a variable, or their PREFECT_HOME's
    logging.yml (Prefect's default path)."""
    if any(os.environ.get(name) for name in LOGGING_VARIABLES):
        return True
    home = os.environ.get("PREFECT_HOME")
    return home is not None and (Path(home).expanduser() / "logging.yml").is_file()
