"""The live display on a terminal (`rich`): one row per stream, redrawn a few times a second.

Each running stream shows its rows landed, requests, retries, its exchange's rate-limit
headroom, its ETA (when it knows how much of its span it covered) and what it does now: the
wait it is in with its kind, reason and time left, or the request it is at. Finished streams
are folded into a count (the last few stay listed), failed ones stay with their error and URL.
A header line gives the totals and the run's ETA.
"""

from __future__ import annotations

from typing import TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipelines.progress import text
from pipelines.progress.board import DONE, FAILED, RUNNING, Board, StreamView

RECENT_DONE = 3
"""Finished streams still listed (the most recent ones)."""
REFRESH_PER_SECOND = 4


class LiveView:
    """A `rich` renderable of a `Board`, computed afresh at each refresh."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def __rich__(self) -> RenderableType:
        now = self.board.clock()
        views = self.board.streams()
        budgets = self.board.budgets()
        summary = self.board.summary(now)
        head = (
            f"tally sync  {text.clock(now - summary.started)}  ·  {summary.running} running, "
            f"{summary.done} done, {summary.failed} failed  ·  {summary.rows:,} rows  ·  "
            f"{text.plural(summary.requests, 'request')}  ·  {text.retries(summary.retries)}"
        )
        if summary.eta is not None:
            head += f"  ·  ETA {text.seconds(summary.eta)}"
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
        table.add_column("stream", no_wrap=True, min_width=16)
        for number in ("rows", "requests", "retries", "headroom", "ETA"):
            table.add_column(number, justify="right", no_wrap=True, min_width=len(number))
        # what is left of the width; a long URL is cut, not wrapped
        table.add_column("now", ratio=1, no_wrap=True, overflow="ellipsis", min_width=24)
        done = [view for view in views if view.state == DONE]
        shown = [view for view in views if view.state != DONE] + done[-RECENT_DONE:]
        for view in shown:
            budget = budgets.get(view.exchange)
            eta = view.eta(now)
            table.add_row(
                view.name,
                f"{view.total_rows:,}",
                f"{view.requests:,}",
                f"{view.retries:,}",
                f"{budget.remaining:,}/{budget.limit:,}" if budget is not None else "",
                text.seconds(eta) if eta is not None else "",
                _doing(view, now),
            )
        parts: list[RenderableType] = [Text(head, style="bold"), table]
        folded = len(done) - RECENT_DONE
        if folded > 0:
            parts.append(Text(f"… and {folded} more streams done", style="dim"))
        if budgets:
            told = "  ·  ".join(
                f"{name} {text.budget_text(budget, now)}"
                for name, budget in sorted(budgets.items())
            )
            parts.append(Text(f"headroom: {told}", style="dim"))
        return Group(*parts)


def _doing(view: StreamView, now: float) -> Text:
    if view.state == DONE:
        took = text.seconds((view.ended or now) - view.started)
        return Text(f"done in {took}", style="green")
    wait = view.waiting(now)
    if view.state == FAILED and wait is None:
        return Text(f"failed: {view.error}" + (f" ({view.url})" if view.url else ""), style="red")
    if wait is not None:
        where = f" ({wait.url})" if wait.url else ""
        return Text(text.wait_text(wait, now) + where, style="yellow")
    assert view.state == RUNNING
    return Text(text.where(view) or "starting")


class LiveDisplay:
    """Runs a `rich.live.Live` of `board` on `out` (a terminal) between `start` and `stop`.

    Transient: at `stop` the display is cleared, so that the summary table printed afterwards
    is what stays on the screen.
    """

    def __init__(self, board: Board, out: TextIO) -> None:
        self.board = board
        self._live = Live(
            LiveView(board),
            console=Console(file=out),
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,
        )

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()
