"""Temp files that a killed writer left in a data directory, and their removal.

Every atomic writer of the data directory writes a hidden temp file beside its target and
renames it over the target; a writer killed in between leaves the temp file behind:

- the lake (`Lake.land`): `lake/<dataset>/…/.<stem>.<uuid>.tmp`;
- the warehouse (`warehouse.build`): `.warehouse.duckdb.<uuid>.tmp` and DuckDB's
  `….tmp.wal` beside it.

They are certainly stale only while no writer runs, so they are swept by a writer that has just
taken the data directory's lock (`datadir_lock.data_dir_lock`). Exports (`data/exports`) are
left alone: `tally export` writes them without the lock, as a reader of the warehouse.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config import Settings


def stale_temp_files(data_dir: Path) -> list[Path]:
    """The writers' temp files in `data_dir` (stale only if no writer holds its lock)."""
    settings = Settings(data_dir=data_dir)
    found: list[Path] = []
    if settings.lake_dir.is_dir():
        found += settings.lake_dir.rglob(".*.tmp")
    warehouse = settings.warehouse_path
    found += warehouse.parent.glob(f".{warehouse.name}.*.tmp")
    found += warehouse.parent.glob(f".{warehouse.name}.*.tmp.wal")
    return sorted(path for path in found if path.is_file())


def sweep_temp_files(data_dir: Path) -> list[Path]:
    """Remove the writers' temp files; call only with the data directory's lock held."""
    stale = stale_temp_files(data_dir)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
