"""One process holding a stream's lock for tests/test_stream_lock.py (not a test module).

    python tests/stream_lock_worker.py URL LAKE EXCHANGE STREAM
    python tests/stream_lock_worker.py URL LAKE --lake shared|exclusive   # the whole lake's lock

Prints `asking`, then takes the lock (waiting up to a minute, its notice printed as `notice
<text>`), prints `held`, waits for a line on stdin, leaves the lock and prints `released`.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

from pipelines.database_url import DatabaseUrl
from pipelines.stream_lock import HeldLock, lake_lock, stream_lock


def main(url: str, lake: str, exchange: str, stream: str) -> None:
    print("asking", flush=True)
    lock: AbstractContextManager[HeldLock]
    if exchange == "--lake":
        lock = lake_lock(
            DatabaseUrl(url),
            lake,
            shared=stream == "shared",
            command="test",
            wait=60,
            notice=notice,
        )
    else:
        lock = stream_lock(
            DatabaseUrl(url), lake, exchange, stream, command="test", wait=60, notice=notice
        )
    with lock:
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)


def notice(text: str) -> None:
    print(f"notice {text}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
