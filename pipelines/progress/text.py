"""Words and numbers shared by the plain and the live renderer."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pipelines.progress.board import StreamView
from pipelines.progress.events import BACKOFF, BAN, PACING, TASK_RETRY, Headroom, Waiting

WAIT_LABELS = {
    PACING: "rate limit",
    BAN: "rate limited",
    BACKOFF: "retry back-off",
    TASK_RETRY: "task retry",
}


def seconds(value: float) -> str:
    """0.4 s, 12 s, 3 min 05 s, 1 h 02 min."""
    if value < 10:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s" if whole % 60 else f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def clock(elapsed: float) -> str:
    """Elapsed time as mm:ss (h:mm:ss past an hour)."""
    whole = max(0, int(elapsed))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one}" if count == 1 else f"{count:,} {many or one + 's'}"


def retries(count: int) -> str:
    return plural(count, "retry", "retries")


def rows_by_dataset(rows: Mapping[str, int]) -> str:
    landed = ", ".join(f"{name} {count:,}" for name, count in sorted(rows.items()) if count)
    return landed or "nothing new"


def wait_text(wait: Waiting, now: float, *, reason: bool = True) -> str:
    """e.g. "waiting 3.2 s (rate limit): rate budget: 8000 requests per 600 s used up"."""
    left = max(0.0, wait.until - now)
    told = f"waiting {seconds(left)} ({WAIT_LABELS.get(wait.kind, wait.kind)})"
    return f"{told}: {wait.reason}" if reason else told


def budget_text(budget: Headroom, now: float) -> str:
    """e.g. "812/1,000 weight, reset in 23 s" or "7,950/8,000 requests per 10 min"."""
    text = f"{budget.remaining:,}/{budget.limit:,} {budget.unit}"
    if budget.reset_at is not None:
        return f"{text}, reset in {seconds(max(0.0, budget.reset_at - now))}"
    if budget.window_seconds is not None:
        return f"{text} per {seconds(budget.window_seconds)}"
    return text


def where(view: StreamView) -> str:
    """The request a stream is at: "GET http://…" (empty when it sent none)."""
    if view.url is None:
        return ""
    return f"{view.method} {view.url}" if view.method else view.url


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
