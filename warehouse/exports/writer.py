"""Writing an export: CSV files and the sidecar JSON that says what they are.

Every export is one or more CSV tables plus `<name>.json` beside them, stating the format, the
reporting currency, the method, the period and its calendar, each file's rows and SHA-256, the
format's notes, totals and warnings. Nothing in either depends on the moment of writing, so the
same lake gives byte-identical files. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.atomic import write_bytes
from warehouse.exports.options import ExportOptionError


@dataclass(frozen=True)
class Table:
    """One CSV file: `name` (without directory), its header, its rows (already text)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


@dataclass(frozen=True)
class Export:
    """What a format builds: its tables and what its sidecar says beyond the common fields."""

    format: str
    stem: str  # the sidecar is <stem>.json
    tables: tuple[Table, ...]
    notes: tuple[str, ...] = ()
    totals: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @classmethod
    def one_file(
        cls,
        format: str,
        stem: str,
        columns: tuple[str, ...],
        rows: Iterable[tuple[str, ...]],
        *,
        notes: tuple[str, ...] = (),
        totals: Mapping[str, Any] | None = None,
        warnings: tuple[str, ...] = (),
    ) -> Export:
        """An export of one table, `<stem>.csv`, beside its sidecar `<stem>.json`."""
        table = Table(f"{stem}.csv", columns, tuple(rows))
        return cls(format, stem, (table,), notes, totals or {}, warnings)


@dataclass(frozen=True)
class Written:
    format: str
    files: tuple[Path, ...]  # the CSV files, then the sidecar
    rows: int


def write_export(
    export: Export, directory: Path, common: Mapping[str, Any], *, file: Path | None = None
) -> Written:
    """Write the tables and the sidecar into `directory`; with `file` (an export of one table),
    the table is written there and the sidecar beside it as `<file stem>.json`."""
    if file is not None:
        if len(export.tables) != 1:
            raise ExportOptionError(
                f"{export.format} writes {len(export.tables)} files: give a directory, not {file}"
            )
        directory = file.parent
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    described = []
    for table in export.tables:
        data = table.text().encode("utf-8")
        path = file if file is not None else directory / table.name
        write_bytes(path, data)
        files.append(path)
        described.append(
            {"name": path.name, "rows": len(table.rows), "sha256": hashlib.sha256(data).hexdigest()}
        )
    sidecar = {
        **common,
        "format": export.format,
        "files": described,
        "notes": list(export.notes),
        "totals": export.totals,
        "warnings": list(export.warnings),
    }
    path = file.with_suffix(".json") if file is not None else directory / f"{export.stem}.json"
    write_bytes(path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    files.append(path)
    return Written(export.format, tuple(files), sum(len(t.rows) for t in export.tables))
