"""A Ctrl-C is never lost: `tally` exits 130 with its one line even when the KeyboardInterrupt
is caught on its way up by code that is not tally's.

Each case runs `pipelines.cli.main` in a fresh interpreter (signal handlers belong to the main
thread of a process of its own) with a command whose body sends itself SIGINT, as a terminal
does, inside code that swallows what follows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[1]

RUN = """
import asyncio, os, signal, sys
from pipelines import cli

def swallowing_library(args):
    # catches the KeyboardInterrupt itself, as some libraries' broad handlers do
    try:
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)  # the handler runs before this returns
    except KeyboardInterrupt:
        pass
    return 0

def cancelled_call(args):
    # asyncio.run turns a SIGINT into a cancelled task when Python's own handler is in place;
    # a caller that takes the cancellation for an ended call keeps going
    async def call():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return
    asyncio.run(call())
    return 0

def finished(args):
    return 0

cli._run_status = globals()[sys.argv[1]]  # `tally status` runs the body named on the line
sys.exit(cli.main(["status"]))
"""


def run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN, body],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("body", ["swallowing_library", "cancelled_call"])
def test_a_swallowed_ctrl_c_still_ends_in_exit_130_and_one_line(body: str) -> None:
    done = run(body)
    assert done.returncode == ExitCode.INTERRUPTED == 130, done.stderr
    assert done.stderr == "tally status: interrupted\n"


def test_a_command_that_no_one_interrupts_keeps_its_exit_code() -> None:
    done = run("finished")
    assert (done.returncode, done.stderr) == (0, "")
