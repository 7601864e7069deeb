"""Whether `data/warehouse.duckdb` was built after the newest file landed in the lake.

The warehouse's views read the lake's files, but a dataset's first files (a new stream, a new
exchange) only show once the catalog is rebuilt, and a stale build hides them: a warehouse
older than the newest lake file (or none while the lake has files) fails, a data problem
(`tally doctor` exits 1) fixed by `tally warehouse`. Compared by file modification times; no
file is opened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipelines.checks import CheckRow
from pipelines.config import Settings

FIX = "run tally warehouse"


def warehouse_rows(settings: Settings) -> list[CheckRow]:
    """One row: ok, fail (missing or older than the newest lake file), or skip (nothing synced
    yet)."""
    path = settings.warehouse_path
    newest = _newest_lake_file(settings.lake_dir)
    if not path.exists():
        if newest is None:
            return [CheckRow("warehouse", str(path), "skip", "nothing synced yet: no lake files")]
        return [
            CheckRow("warehouse", str(path), "fail", "not built yet, and the lake has files", FIX)
        ]
    built = path.stat().st_mtime
    if newest is None:
        return [CheckRow("warehouse", str(path), "ok", f"built {_when(built)}; the lake is empty")]
    lake_file, landed = newest
    if landed > built:
        return [
            CheckRow(
                "warehouse",
                str(path),
                "fail",
                f"stale: built {_when(built)}, before {lake_file} landed ({_when(landed)})",
                FIX,
            )
        ]
    return [CheckRow("warehouse", str(path), "ok", f"built {_when(built)}, after every lake file")]


def _newest_lake_file(lake_dir: Path) -> tuple[Path, float] | None:
    newest: tuple[Path, float] | None = None
    for file in lake_dir.rglob("*.parquet") if lake_dir.is_dir() else ():
        try:
            landed = file.stat().st_mtime
        except FileNotFoundError:  # swept away by a running sync
            continue
        if newest is None or landed > newest[1]:
            newest = (file.relative_to(lake_dir), landed)
    return newest


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
