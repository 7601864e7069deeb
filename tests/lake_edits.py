"""Damaging a copy of a synced lake on purpose (the warehouse tests).

`lake_copy(settings, directory)` copies the lake of `settings` into a data directory of its own
under `directory` (no warehouse yet); `rewrite(path, change)` rewrites one Parquet file of it
through `change` and returns how many rows it lost.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from pipelines.config import Settings


def lake_copy(settings: Settings, directory: Path) -> Settings:
    shutil.copytree(settings.lake_dir, directory / "data" / "lake")
    return Settings(data_dir=directory / "data")


def rewrite(path: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> int:
    before = pl.read_parquet(path)
    after = change(before)
    after.write_parquet(path)
    return before.height - after.height
