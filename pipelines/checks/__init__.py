"""Checks a person can read: one `CheckRow` per thing checked, with what to do about it.

`tally sync` runs the checks before work (configuration, credentials, reachability, clock,
markets) and `tally doctor` runs them and more (permissions, the lake's integrity, the
warehouse's freshness, probes of the API behaviours the sandbox cannot prove). Each part that
checks something returns `CheckRow`s; the command prints them as a table and exits 0 only when
no row failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One check's verdict.

    `check` names what was checked ("credentials", "clock", "lake files", "probe: …"),
    `subject` what it was checked on (an exchange, a file, "" for the whole setup), `detail`
    what was found and `fix` what to do when the status is not ok. "warn" never fails a run;
    "skip" says why nothing could be checked.
    """

    check: str
    subject: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"
