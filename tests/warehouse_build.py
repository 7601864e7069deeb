"""The warehouse build as the tests run it: handed every exchange's rules from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from warehouse_query import close_reader

from pipelines.exchanges.registry import warehouse_rules
from warehouse import build as builder

if TYPE_CHECKING:
    from pipelines.config import Settings


def build(
    settings: Settings, *, sql_dir: Path | None = None, full: bool = False
) -> builder.BuildResult:
    """`warehouse.build.build(settings)` with the rules every caller in tally passes; the
    connection `warehouse_query` keeps to the old catalog closed first (a reader of the new one
    would be handed its database instance)."""
    close_reader(settings.data_dir)
    return builder.build(settings, rules=warehouse_rules(), sql_dir=sql_dir, full=full)
