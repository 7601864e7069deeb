"""Run a program that dies with the test process that started it, as another user if asked.

    python -P child_of.py PARENT_PID SIGNAL [--user NAME] -- PROGRAM [ARG ...]

A server a test starts (PostgreSQL, `prefect server start`) is stopped by the test's fixture
at its end; this covers the test process being killed (SIGKILL skips every `finally`): on
Linux the kernel sends SIGNAL (a name, e.g. INT, or a number) to PROGRAM when the thread of
PARENT_PID that started it ends (`PR_SET_PDEATHSIG`, kept across exec). With `--user`
(the caller runs as root) the groups, group and user are switched to NAME's first: the
kernel clears the signal on a change of user, so it is armed after. If the parent is gone
before the signal is armed, this exits at once with code 1. Where `prctl` is missing (not
Linux) PROGRAM is run without the signal (the fixture still stops it).

Not a module of the tests: a script that imports only the standard library.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _signal(name: str) -> int:
    if name.isdigit():
        return int(name)
    return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])


def become(user: str) -> None:
    """Switch this process to `user` (groups, group, then user), as root only can."""
    entry = pwd.getpwnam(user)
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ.update({"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name})


def main(argv: list[str]) -> None:
    parent, number = int(argv[1]), _signal(argv[2])
    rest = argv[3:]
    if rest[:1] == ["--user"]:
        become(rest[1])
        rest = rest[2:]
    if rest[:1] != ["--"] or len(rest) < 2:
        raise SystemExit(f"usage: {argv[0]} PARENT_PID SIGNAL [--user NAME] -- PROGRAM [ARG ...]")
    program = rest[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, number, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
