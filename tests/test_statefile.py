"""What `StateFile` writes, and what it trusts: the checksummed line is the sorted dump of the
document with its checksum; a line the object wrote or read itself is taken without checking
its checksum again, any other line (another process's, a torn one) is checked as ever; the
file ends after the line, whether it grew or shrank."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest
from test_budget_file_recovery import DAMAGES, WINDOW, request_budget
from test_limiters import FakeClock
from test_shared_budget import Exhausted

from pipelines.http._statefile import StateFile, document_line, parse_line


def reference_line(state: dict[str, Any]) -> bytes:
    """The line as the format defines it: the sorted dump, with the CRC-32 of the sorted dump
    of the rest under "checksum"."""
    body = json.dumps(state, sort_keys=True)
    checksum = f"{zlib.crc32(body.encode()):08x}"
    return (json.dumps({**state, "checksum": checksum}, sort_keys=True) + "\n").encode()


KEYS = ["", "a", "blocked_until", "ch", "checksul", "checksum0", "checksumz", "d", "in_flight"]
KEYS += ["version", "windows", "zz", "é", "A", "checksum\u00e9"]


def value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth < 2 and pick < 0.25:
        return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if depth < 2 and pick < 0.35:
        return [value(rng, depth + 1) for _ in range(rng.randrange(3))]
    choices: list[Any] = [rng.random() * 1e9, rng.randrange(-9, 10**6), True, None, "é\n"]
    return rng.choice([*choices, '"checksum": "', "checksum", "x"])


def test_the_line_is_the_sorted_dump_with_its_checksum() -> None:
    rng = random.Random(3)
    states: list[dict[str, Any]] = [{}, {"a": 1}, {"zz": 1}, {"a": {"checksum": 1}, "zz": [1]}]
    states += [{rng.choice(KEYS): value(rng) for _ in range(rng.randrange(7))} for _ in range(3000)]
    for state in states:
        line = document_line(state, json.dumps(state, sort_keys=True))
        assert line == reference_line(state), state
    versioned = {"version": 2, "in_flight": {"a": {"weight": 5}}, "blocked_until": 0.0}
    line = document_line(versioned, json.dumps(versioned, sort_keys=True))
    assert parse_line(line.rstrip(b"\n")) == versioned


@pytest.mark.parametrize("damage", DAMAGES)
def test_the_object_that_wrote_a_line_checks_it_again_once_changed(tmp_path: Path, damage: str):
    """As `test_an_unreadable_request_budget_is_taken_as_spent_for_one_window`, but the budget
    that wrote the file reads it after the damage."""
    path = tmp_path / "b.json"
    clock = FakeClock()
    later, broken = DAMAGES[damage]
    budget = request_budget(path, clock)
    budget.acquire()
    old = path.read_bytes()
    clock.now += later
    budget.acquire()  # 2 of 3 sent: one more would fit
    path.write_bytes(broken(old, path.read_bytes()))
    with pytest.raises(Exhausted) as waited:
        budget.acquire()
    assert waited.value.args[0] == pytest.approx(WINDOW)


def test_an_object_sees_what_another_wrote_between_its_edits(tmp_path: Path):
    path = tmp_path / "s.json"
    mine, other = StateFile(path), StateFile(path)
    with mine.edit() as state:
        state["count"] = 1
    with other.edit() as state:
        state["count"] += 1
    with mine.edit() as state:
        assert state == {"count": 2, "version": 2}
        state["count"] += 1
    with other.edit() as state:
        assert state["count"] == 3


def test_a_line_read_again_is_written_back_only_when_changed(tmp_path: Path):
    path = tmp_path / "s.json"
    state_file = StateFile(path)
    with state_file.edit() as state:
        state["count"] = 1
    path.write_bytes(path.read_bytes() + b"an old tail")  # (only the first line counts)
    for _ in range(2):  # (read, then read again: the line it read before)
        with state_file.edit() as state:
            assert state == {"count": 1, "version": 2}
        assert path.read_bytes().endswith(b"\nan old tail")


def test_the_file_ends_after_the_line_as_it_grows_and_shrinks(tmp_path: Path):
    path = tmp_path / "s.json"
    state_file = StateFile(path)
    for size in (3, 40, 40, 39, 5, 0, 12, 1):
        with state_file.edit() as state:
            state["note"] = "x" * size
        assert path.read_bytes() == reference_line({"note": "x" * size, "version": 2})
        with StateFile(path).edit() as state:  # (another object: the checksum checked)
            assert state == {"note": "x" * size, "version": 2}
