"""Temp files that a killed writer left in a data directory, and their removal.

Every atomic writer of the data directory writes a hidden temp file beside its target and
renames it over the target; a writer killed in between leaves the temp file behind:

- the lake (`Lake.land`): `lake/<dataset>/…/.<stem>.<uuid>.tmp`;
- the warehouse (`warehouse.build`): `.warehouse.duckdb.<uuid>.tmp` and DuckDB's
  `….tmp.wal` beside it;
- the lake check's cache (`lake_check.save_cache`): `..lake-verified.json.<uuid>.tmp`;
- the quarantine's notes (`quarantine`): `quarantine/…/.<name>.parquet.json.<uuid>.tmp`;
- Prefect's logging config (`prefect_env.write_logging_config`):
  `logs/.prefect-logging.yml.<pid>.tmp`, written by commands that may not hold the lock, so
  only one whose process is gone counts.

They are certainly stale only while no writer runs, so they are swept by a writer that has just
taken the data directory's lock (`datadir_lock.data_dir_lock`). Exports (`data/exports`) are
left alone: `tally export` writes them without the lock, as a reader of the warehouse.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelines.config import Settings
from pipelines.flows.prefect_env import log_file
from pipelines.lake_check import CACHE_NAME
from pipelines.quarantine import QUARANTINE_DIR


def stale_temp_files(data_dir: Path) -> list[Path]:
    """The writers' temp files in `data_dir` (stale only if no writer holds its lock)."""
    settings = Settings(data_dir=data_dir)
    found: list[Path] = []
    for tree in (settings.lake_dir, data_dir / QUARANTINE_DIR):
        if tree.is_dir():
            found += tree.rglob(".*.tmp")
    warehouse = settings.warehouse_path
    found += warehouse.parent.glob(f".{warehouse.name}.*.tmp")
    found += warehouse.parent.glob(f".{warehouse.name}.*.tmp.wal")
    # (a directory: what a build killed while it spilled left behind)
    found += warehouse.parent.glob(f".{warehouse.name}.*.tmp.spill")
    found += data_dir.glob(f".{CACHE_NAME}.*.tmp")
    logging_config = log_file(data_dir).parent
    found += [
        path
        for path in logging_config.glob(".prefect-logging.yml.*.tmp")
        if not _running(path.name.split(".")[-2])
    ]
    return sorted(path for path in found if path.is_file() or path.name.endswith(".tmp.spill"))


def _running(pid: str) -> bool:
    """Whether the process `pid` (a temp file's name part) is alive; a name without one: no."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def sweep_temp_files(data_dir: Path) -> list[Path]:
    """Remove the writers' temp files; call only with the data directory's lock held."""
    stale = stale_temp_files(data_dir)
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale
