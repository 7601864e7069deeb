"""`sync_progress`: show a sync's progress while it runs, the way the output allows.

    with sync_progress():
        results = sync_flow(...)

On a terminal (the stream given, by default stderr, is a TTY and TERM is not "dumb") the live
`rich` display; otherwise plain lines (`PlainRenderer`, with a timer for its heartbeat); "none"
only collects the `Board`. Progress goes to stderr, so that stdout carries only the summary (the
table, or the JSON document of `--json`).

An expected error that ends the sync (`pipelines.checks.failures.EXPECTED_SYNC_ERRORS`: an
`ExchangeError`, a paging loop, a row that cannot be read) leaves as the `OperatorError` of
`sync_failure` (exit 3, or 1 for a row): its first line names the stream, what happened, the
request it failed on and the fix; then one line per other stream that failed for good (its
error and URL). `tally sync` and `tally demo` both end this way.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Final, TextIO

from pipelines.checks.failures import EXPECTED_SYNC_ERRORS, sync_failure
from pipelines.exit_codes import OperatorError
from pipelines.progress import text
from pipelines.progress.board import FAILED, Board
from pipelines.progress.channel import CHANNEL, Channel
from pipelines.progress.plain import PlainRenderer

AUTO, LIVE, PLAIN, NONE = "auto", "live", "plain", "none"
MODES: Final = (AUTO, LIVE, PLAIN, NONE)
TICK_SECONDS: Final = 1.0


@contextmanager
def sync_progress(
    *,
    out: TextIO | None = None,
    mode: str = AUTO,
    channel: Channel = CHANNEL,
    clock: Callable[[], float] = time.time,
    base_urls: Mapping[str, str] | None = None,
) -> Iterator[Board]:
    """Render the progress events published inside the block on `out` (default stderr); turn
    an expected error that ends the block into its `OperatorError` (`base_urls`: the configured
    base URL of each exchange, named when it does not answer)."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    stream = out if out is not None else sys.stderr
    if mode == AUTO:
        mode = LIVE if is_terminal(stream) else PLAIN
    board = Board(clock)
    stop: Callable[[], None] = _nothing
    if mode == LIVE:
        from pipelines.progress.live import LiveDisplay

        display = LiveDisplay(board, stream)
        unsubscribe = channel.subscribe(board.handle)
        display.start()
        stop = display.stop
    elif mode == PLAIN:
        renderer = PlainRenderer(_line_writer(stream), board)
        unsubscribe = channel.subscribe(renderer)
        stop = _every(TICK_SECONDS, renderer.tick)
    else:
        unsubscribe = channel.subscribe(board.handle)
    try:
        yield board
    except EXPECTED_SYNC_ERRORS as error:
        raise failure(board, error, base_urls) from error
    finally:
        unsubscribe()
        stop()


def _nothing() -> None:
    return None


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def failure(
    board: Board, error: Exception, base_urls: Mapping[str, str] | None = None
) -> OperatorError:
    """`sync_failure` of `error`, with the stream it ended and the request it failed on, then
    one line per other stream that failed for good: its name, its error and its URL."""
    final = [v for v in board.streams() if v.state == FAILED and v.wait is None]  # a wait: retried
    ended = next((v for v in final if v.error == str(error)), None)
    first = sync_failure(
        error,
        base_urls,
        stream=ended.name if ended else None,
        where=(text.where(ended) or None) if ended else None,
    )
    others = []
    for view in final:
        if view is not ended:
            where = text.where(view)
            others.append(f"{view.name}: {view.error}" + (f" ({where})" if where else ""))
    return OperatorError(*first.lines, *others, exit_code=first.exit_code)


def _line_writer(stream: TextIO) -> Callable[[str], None]:
    # Not `print`: inside a flow with log_prints, Prefect turns `print` into log records.
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            stream.write(line + "\n")
            stream.flush()

    return write


def _every(seconds: float, call: Callable[[], None]) -> Callable[[], None]:
    """Call `call` every `seconds` in a daemon thread; returns the function that stops it."""
    stopped = threading.Event()

    def loop() -> None:
        while not stopped.wait(seconds):
            with suppress(Exception):  # a renderer's bug must not print a thread's traceback
                call()

    thread = threading.Thread(target=loop, name="tally-progress", daemon=True)
    thread.start()

    def stop() -> None:
        stopped.set()
        thread.join()

    return stop
