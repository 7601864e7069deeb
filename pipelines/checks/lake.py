"""`tally doctor`'s lake rows: every file readable ("lake files"), what the quarantine holds
("quarantine"), and temp files an interrupted writer left ("stray temp files"). Moves, writes
and removes nothing (`pipelines.quarantine.inspect_lake`, `pipelines.leftovers`)."""

from __future__ import annotations

from pipelines.checks import CheckRow
from pipelines.config import Settings
from pipelines.lake_check import LakeReadError
from pipelines.leftovers import stale_temp_files
from pipelines.quarantine import LAKE_DIR, QUARANTINE_DIR, QuarantineReport, inspect_lake

SHOWN = 3  # files named in a row's detail


def check_rows(settings: Settings) -> list[CheckRow]:
    """The rows "lake files", "quarantine" and "stray temp files"."""
    try:
        report = inspect_lake(settings)
    except LakeReadError as error:  # the machine failed the read: nothing known of the files
        rows = [CheckRow("lake files", "", "fail", error.lines[0], error.lines[1])]
    else:
        rows = [_files_row(report), _quarantine_row(report)]
    return [*rows, _temp_files_row(settings)]


def _files_row(report: QuarantineReport) -> CheckRow:
    files, bad = report.check.files, report.unreadable
    if not bad:
        return CheckRow("lake files", "", "ok", f"{files} files readable")
    shown = "; ".join(f"{LAKE_DIR}/{b.relative} ({b.reason})" for b in bad[:SHOWN])
    more = f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    if report.refused:
        return CheckRow(
            "lake files",
            "",
            "fail",
            f"{len(bad)} of {files} unreadable, and not to be moved: {' '.join(report.refused)}",
            "look at them: `tally sync` and `tally warehouse` stop (exit 1) until they are fixed "
            f"or moved to {QUARANTINE_DIR}/ by hand",
        )
    return CheckRow(
        "lake files",
        "",
        "fail",
        f"{len(bad)} of {files} unreadable: {shown}{more}",
        f"run `tally warehouse` or `tally sync`: they move them to {QUARANTINE_DIR}/, and the "
        "next sync fetches what they held again",
    )


def _quarantine_row(report: QuarantineReport) -> CheckRow:
    notes = report.notes
    if not notes:
        return CheckRow("quarantine", "", "ok", "nothing held")
    waiting = [n for n in notes if n.waiting]
    lost = [n for n in notes if n.lost]
    restored = len(notes) - len(waiting) - len(lost)
    detail = (
        f"{len(notes)} file(s) held: {len(waiting)} waiting for the next sync, "
        f"{len(lost)} that cannot be fetched again, {restored} restored"
    )
    if waiting:
        return CheckRow("quarantine", "", "warn", detail, "run `tally sync` to fetch them again")
    if lost:
        kinds = ", ".join(sorted({n.dataset for n in lost}))
        return CheckRow(
            "quarantine",
            "",
            "warn",
            f"{detail} ({kinds})",
            f"nothing to fetch: keep or delete the files in {QUARANTINE_DIR}/ once looked at",
        )
    return CheckRow(
        "quarantine",
        "",
        "ok",
        detail,
        f"the files in {QUARANTINE_DIR}/ are no longer needed and may be deleted",
    )


def _temp_files_row(settings: Settings) -> CheckRow:
    stale = stale_temp_files(settings.data_dir)
    if not stale:
        return CheckRow("stray temp files", "", "ok", "none")
    shown = "; ".join(str(path.relative_to(settings.data_dir)) for path in stale[:SHOWN])
    more = f"; and {len(stale) - SHOWN} more" if len(stale) > SHOWN else ""
    return CheckRow(
        "stray temp files",
        "",
        "warn",
        f"{len(stale)} temp file(s) of a writer: {shown}{more}",
        "unless a `tally sync` or `tally warehouse` is running now, an interrupted run left "
        "them: the next one removes them (they hold nothing the lake needs)",
    )
