"""`sync_progress`: show a sync's progress while it runs, the way the output allows.

    with sync_progress():
        results = sync_flow(...)

On a terminal (the stream given, by default stderr, is a TTY and TERM is not "dumb") the live
`rich` display; otherwise plain lines (`PlainRenderer`, with a timer for its heartbeat); "none"
only collects the `Board`. Progress goes to stderr, so that stdout carries only the summary (the
table, or the JSON document of `--json`).

An `ExchangeError` that ends the sync leaves as an `OperatorError` (exit code 3) with one line
per failed stream: the stream, the error and the URL it failed on.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Final, TextIO

from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.http import ExchangeError
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
) -> Iterator[Board]:
    """Render the progress events published inside the block on `out` (default stderr)."""
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
    except ExchangeError as error:
        raise OperatorError(*failure_lines(board, error), exit_code=ExitCode.EXCHANGE) from error
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


def failure_lines(board: Board, error: ExchangeError) -> list[str]:
    """One line per stream that failed for good: its name, the error, and the URL."""
    lines = []
    for view in board.streams():
        if view.state == FAILED and view.wait is None:  # a wait: Prefect retries it
            where = text.where(view)
            lines.append(f"{view.name}: {view.error}" + (f" ({where})" if where else ""))
    if not any(str(error) in line for line in lines):
        lines.append(str(error) + (f" ({error.url})" if error.url else ""))
    return lines


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
