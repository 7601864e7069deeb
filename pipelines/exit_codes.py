"""What `tally` exits with, and the errors a person is expected to meet.

`EXIT_CODES` is the one table of exit codes: `EXIT_CODES_HELP` (the end of `tally --help`), the
list at the end of this docstring and the README's table are made from it (a test compares the
README's rows with it).

An `OperatorError` is an expected failure: `tally` prints its lines (one per problem) after the
command's name and exits with its code, without a traceback; `tally --debug …` shows one.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple


class ExitCode(IntEnum):
    OK = 0
    DATA = 1
    USAGE = 2
    EXCHANGE = 3
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class ExitCodeRow(NamedTuple):
    code: ExitCode
    meaning: str
    examples: tuple[str, ...]  # the README's column; `--help` shows the `short` ones
    short: tuple[str, ...]


EXIT_CODES: tuple[ExitCodeRow, ...] = (
    ExitCodeRow(
        ExitCode.OK,
        "ok",
        ("`tally doctor` with no failed row (warnings allowed)",),
        (),
    ),
    ExitCodeRow(
        ExitCode.DATA,
        "a data problem",
        (
            "a balance that does not reconcile (`tally demo`)",
            "public trades lost for good (`tally sync`: its poll came after Bitstamp's "
            "rolling window)",
            "an export that lacks a price",
            "an unreadable lake file met mid-run, or one that cannot be moved to "
            "`data/quarantine/` (a full disk, a read-only data directory)",
            "a row from the exchange that tally cannot read",
            "`tally doctor`: a warehouse older than the lake, an unreadable lake file",
        ),
        ("a balance that does not reconcile", "trades lost", "a missing price"),
    ),
    ExitCodeRow(
        ExitCode.USAGE,
        "usage or configuration",
        (
            "a bad option or `tally.toml`",
            "a configured market the exchange does not list",
            "the data directory locked by another run",
            "a `tally sql` query that is refused or does not run (a syntax error, an unknown "
            "table)",
            "this machine's setup: a data directory that cannot be written, Prefect's "
            "temporary server that does not start",
        ),
        ("bad option, tally.toml or query", "unknown market", "data directory locked"),
    ),
    ExitCodeRow(
        ExitCode.EXCHANGE,
        "exchange, credentials or network",
        (
            "a URL that does not answer",
            "a refused key or missing permission",
            "a clock too far off",
            "a rate limit exhausted",
        ),
        ("unreachable", "keys refused", "clock skew", "rate limit"),
    ),
    ExitCodeRow(
        ExitCode.INTERRUPTED,
        "interrupted",
        ("Ctrl-C (128 + SIGINT, as a shell reports it): running tasks finish, then tally stops",),
        ("Ctrl-C",),
    ),
)


def _help_line(row: ExitCodeRow) -> str:
    return f"  {row.code:d}  {row.meaning}" + (f" ({', '.join(row.short)})" if row.short else "")


EXIT_CODES_HELP = "exit codes:\n" + "\n".join(_help_line(row) for row in EXIT_CODES)


def readme_rows() -> list[str]:
    """The README's table rows (`| code | meaning | for example |`), one per code."""
    return [f"| {row.code:d} | {row.meaning} | {', '.join(row.examples)} |" for row in EXIT_CODES]


__doc__ = (
    (__doc__ or "")
    + "\nExit codes::\n\n"
    + "\n".join(f"    {row.code:d}  {row.meaning}: {'; '.join(row.examples)}" for row in EXIT_CODES)
)


class OperatorError(Exception):
    """An expected failure, told to a person as one line per problem."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, *lines: str, exit_code: ExitCode | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines: tuple[str, ...] = lines
        if exit_code is not None:
            self.exit_code = exit_code

    @classmethod
    def of(cls, lines: Iterable[str], exit_code: ExitCode | None = None) -> OperatorError:
        return cls(*lines, exit_code=exit_code)
