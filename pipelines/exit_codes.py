"""What `tally` exits with, and the errors a person is expected to meet.

Exit codes (also in the README and `tally --help`)::

    0  ok
    1  a data problem: a balance that does not reconcile, a gap, an export that lacks a price
    2  usage or configuration: a bad option, `tally.toml`, an unknown market, the data
       directory locked by another run; this machine's setup: a data directory that cannot
       be written, Prefect's temporary server that does not start
    3  an exchange, credentials or the network: unreachable, refused keys, clock skew,
       a rate limit exhausted
  130  interrupted (Ctrl-C)

An `OperatorError` is an expected failure: `tally` prints its lines (one per problem) after the
command's name and exits with its code, without a traceback; `tally --debug …` shows one.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DATA = 1
    USAGE = 2
    EXCHANGE = 3
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


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


EXIT_CODES_HELP = """exit codes:
  0  ok
  1  data problem (a balance that does not reconcile, trades lost, a missing price)
  2  usage or configuration (bad option or tally.toml, unknown market, data directory locked)
  3  exchange, credentials or network (unreachable, keys refused, clock skew, rate limit)"""
