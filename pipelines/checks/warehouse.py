"""Whether `data/warehouse.duckdb` was built after the newest file landed in the lake.

The warehouse's views read the lake's files, but a dataset's first files (a new stream, a new
exchange) only show once the catalog is rebuilt, and a stale build hides them: a warehouse
older than the newest lake file (or none while the lake has files) fails, a data problem
(`tally doctor` exits 1) fixed by `tally warehouse`. Compared by file modification times; no
file is opened. A lake on object storage (`lake_url`) is listed: its objects' times are the
store's, to the second.
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
    newest = (
        _newest_object(settings.lake_url, settings)
        if settings.lake_url
        else _newest_lake_file(settings.lake_dir)
    )
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


def _newest_object(lake_url: str, settings: Settings) -> tuple[str, float] | None:
    """The newest lake object by the listing's time (whole seconds, the store's clock)."""
    from pipelines.lake_store import ObjectPath, lake_root, list_files

    root = lake_root(lake_url, settings.s3)
    assert isinstance(root, ObjectPath)
    newest: tuple[str, float] | None = None
    for info in list_files(root):
        if info.file.name.endswith(".parquet") and not info.file.name.startswith("."):
            landed = info.mtime_ns / 1e9
            if newest is None or landed > newest[1]:
                newest = (str(info.file), landed)
    return newest


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
