"""Live progress of a sync: an in-process channel of events, and what renders them.

The HTTP layer (`pipelines.http`) and the streams (`pipelines.flows`) publish through the
helpers re-exported here (`channel.py`; standard library only, so that `pipelines.http` can
import it and stays free of flows and CLI imports); `tally sync` listens while its flow runs:

    events      the event records (stream started/finished/failed, page landed, request sent,
                retrying, waiting with its kind and reason, rate-limit headroom, tasks planned)
    channel     `Channel`, the process-wide `CHANNEL`, and the publishing helpers
    board       `Board`: the events folded into one view per stream and exchange (thread-safe)
    plain       `PlainRenderer`: throttled progress lines when the output is not a terminal
    live        the `rich` live display on a terminal
    summary     the run summary as one JSON document (`tally sync --json`)
    session     `sync_progress(...)`: picks and runs a renderer around a flow call

Import the renderers from their modules; only the channel is imported with the package.
"""

from __future__ import annotations

from pipelines.progress.channel import (
    CHANNEL,
    Channel,
    Listener,
    current_stream,
    headroom,
    landed,
    listening,
    request,
    request_sent,
    retrying,
    stream_failed,
    stream_finished,
    stream_started,
    task_done,
    tasks_planned,
    waiting,
)
from pipelines.progress.events import BACKOFF, BAN, PACING, TASK_RETRY, WAIT_KINDS

__all__ = [
    "BACKOFF",
    "BAN",
    "CHANNEL",
    "PACING",
    "TASK_RETRY",
    "WAIT_KINDS",
    "Channel",
    "Listener",
    "current_stream",
    "headroom",
    "landed",
    "listening",
    "request",
    "request_sent",
    "retrying",
    "stream_failed",
    "stream_finished",
    "stream_started",
    "task_done",
    "tasks_planned",
    "waiting",
]
