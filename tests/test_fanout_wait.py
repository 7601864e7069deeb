"""The fan-out parent's wait for its children has a deadline (`fanout._wait`), on an injected
clock and reader of run states (no Prefect server: the wait's own logic is under test)."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.schemas.objects import FlowRun, StateType

from pipelines.flows.fanout import POLL_SECONDS, Child, ChildRunsFailedError, _wait

CANDLES, TRADES = uuid.uuid4(), uuid.uuid4()
RUNS = {CANDLES: Child("bitstamp", "candles"), TRADES: Child("bitvavo", "trades")}


def run(run_id: uuid.UUID, state: StateType, name: str) -> FlowRun:
    return FlowRun(id=run_id, flow_id=uuid.uuid4(), state_type=state, state_name=name, run_count=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_children_not_ended_by_the_deadline_are_named_and_the_parent_fails() -> None:
    clock = Clock()
    logged: list[str] = []

    def read(ids: list[uuid.UUID]) -> list[FlowRun]:
        states = {
            CANDLES: run(CANDLES, StateType.COMPLETED, "Completed"),
            TRADES: run(TRADES, StateType.RUNNING, "Running"),
        }
        return [states[i] for i in ids]

    with pytest.raises(ChildRunsFailedError) as late:
        _wait(
            RUNS,
            seconds=10,
            read=read,
            log=logged.append,
            clock=lambda: clock.now,
            sleep=clock.sleep,
        )
    assert str(late.value) == "stream run(s) still not ended after 10 s: trades bitvavo (Running)"
    assert logged == ["candles bitstamp: Completed (1/2 ended, run 1 time(s))"]
    assert sum(clock.slept) == 10 == POLL_SECONDS * len(clock.slept)


def test_children_ending_before_the_deadline_are_returned() -> None:
    clock = Clock()
    polls: list[list[uuid.UUID]] = []

    def read(ids: list[uuid.UUID]) -> list[FlowRun]:
        polls.append(ids)
        trades = StateType.FAILED if len(polls) >= 3 else StateType.PENDING
        states = {
            CANDLES: run(CANDLES, StateType.COMPLETED, "Completed"),
            TRADES: run(TRADES, trades, trades.value.title()),
        }
        return [states[i] for i in ids]

    ended = _wait(
        RUNS, seconds=10, read=read, log=lambda _: None, clock=lambda: clock.now, sleep=clock.sleep
    )
    assert {r.id: r.state_name for r in ended} == {CANDLES: "Completed", TRADES: "Failed"}
    assert polls == [[CANDLES, TRADES], [TRADES], [TRADES]]  # an ended run is not asked again


def test_a_child_the_api_does_not_find_is_named_too() -> None:
    clock = Clock()
    with pytest.raises(ChildRunsFailedError, match=r"candles bitstamp \(not found\), trades"):
        _wait(
            RUNS,
            seconds=4,
            read=lambda ids: [run(TRADES, StateType.SCHEDULED, "Scheduled")],
            log=lambda _: None,
            clock=lambda: clock.now,
            sleep=clock.sleep,
        )
