from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.flows.plan import Window, chunk_of, chunks, final_cutoff, plan_chunks


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_stem_round_trip() -> None:
    window = Window(at("2024-01-01"), at("2024-02-01T00:30"))
    assert window.stem == "20240101T000000-20240201T003000"
    assert Window.from_stem(window.stem) == window
    assert Window.from_stem("data") is None


@pytest.mark.parametrize(
    ("moment", "unit", "start", "end"),
    [
        ("2024-02-29T13:00", "day", "2024-02-29", "2024-03-01"),
        ("2024-12-31T23:59", "month", "2024-12-01", "2025-01-01"),
        ("2024-07-04", "year", "2024-01-01", "2025-01-01"),
    ],
)
def test_chunk_of(moment: str, unit: str, start: str, end: str) -> None:
    assert chunk_of(at(moment), unit) == Window(at(start), at(end))


def test_chunks_cover_the_span() -> None:
    span = Window(at("2024-01-15"), at("2024-03-02"))
    assert [c.start.month for c in chunks(span, "month")] == [1, 2, 3]


def test_final_cutoff_excludes_open_and_settling_candles() -> None:
    now = at("2024-01-01T10:00:30")
    assert final_cutoff(now, "1m", timedelta(seconds=60)) == at("2024-01-01T09:59")
    assert final_cutoff(now, "1h", timedelta(seconds=60)) == at("2024-01-01T09:00")


def test_nothing_landed_plans_every_chunk() -> None:
    span = Window(at("2024-01-15"), at("2024-03-02"))
    plans = plan_chunks(span, "month", [])
    assert [p.missing for p in plans] == [
        Window(at("2024-01-15"), at("2024-02-01")),
        Window(at("2024-02-01"), at("2024-03-01")),
        Window(at("2024-03-01"), at("2024-03-02")),
    ]
    assert all(p.replaces == () for p in plans)


def test_a_partial_chunk_resumes_where_it_stopped() -> None:
    span = Window(at("2024-01-01"), at("2024-01-20"))
    landed = [Window(at("2024-01-01"), at("2024-01-10")).stem]
    (plan,) = plan_chunks(span, "month", landed)
    assert plan.missing == Window(at("2024-01-10"), at("2024-01-20"))
    assert plan.target == Window(at("2024-01-01"), at("2024-01-20"))
    assert plan.replaces == (landed[0],)


def test_complete_chunks_need_nothing() -> None:
    span = Window(at("2024-01-01"), at("2024-02-01"))
    assert plan_chunks(span, "month", [span.stem]) == []


def test_a_hole_is_fetched_again_and_later_pieces_are_folded_in() -> None:
    span = Window(at("2024-01-01"), at("2024-02-01"))
    first = Window(at("2024-01-01"), at("2024-01-05")).stem
    after_hole = Window(at("2024-01-08"), at("2024-01-12")).stem
    (plan,) = plan_chunks(span, "month", [first, after_hole])
    assert plan.missing == Window(at("2024-01-05"), at("2024-02-01"))
    assert set(plan.replaces) == {first, after_hole}


def test_a_disjoint_earlier_piece_is_kept() -> None:
    span = Window(at("2024-01-10"), at("2024-01-20"))
    earlier = Window(at("2024-01-01"), at("2024-01-03")).stem
    (plan,) = plan_chunks(span, "month", [earlier])
    assert plan.target == Window(at("2024-01-10"), at("2024-01-20"))
    assert plan.replaces == ()
