"""Who may write the lake's objects across machines: the whole lake's advisory lock.

    with lake_writer(settings, shared=False, command="sync", wait=60, notice=log):
        ...  # land, sweep, quarantine: nothing else writes or deletes the lake meanwhile

When `rate_budget_url` names a PostgreSQL database every worker reaches, a lake shared by
several machines (`lake_url`) has one advisory lock there (`stream_lock.lake_lock`, its key a
hash of the lake's location): a fan-out's children hold it *shared* (beside each other; each also
holds its stream's lock exclusively), and every other writer holds it *exclusively* for as long
as it writes or deletes objects: a plain sync (`tally sync`, the plain deployments), a fan-out
parent's sweeps and warehouse rebuild, `tally warehouse` (its quarantine moves objects). Without
that database this is nothing: the data directory's `flock` (`datadir_lock`) is the lock, and it
spans one machine. A local lake is named with its host: another machine's directory of the same
path is another lake.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from pipelines.config import Settings
from pipelines.stream_lock import HeldLock, lake_lock


def lake_name(settings: Settings) -> str:
    """The lake's location as the advisory locks key it: `lake_url`, else host and directory."""
    return settings.lake_url or f"{socket.gethostname()}:{settings.lake_dir}"


def lake_writer(
    settings: Settings,
    *,
    shared: bool,
    command: str,
    wait: float | None,
    notice: Callable[[str], None],
) -> AbstractContextManager[HeldLock | None]:
    """The lake's lock in the `rate_budget_url` database (module docstring), or nothing when
    there is none."""
    if settings.rate_budget_url is None:
        return nullcontext()
    return lake_lock(
        settings.rate_budget_url,
        lake_name(settings),
        shared=shared,
        command=command,
        wait=wait,
        notice=notice,
    )
