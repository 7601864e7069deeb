"""The progress channel, what publishes to it, and what renders it.

Units with an injected clock (the channel, the limiters' waits and headroom, the board, the
plain renderer, the JSON summary, the error lines); then the streams of both accounts and a
candles stream synced in-process against a faulty sandbox over loopback: every request, retry
and landed row is told to the right stream, and no key or secret ever reaches an event.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakeclock import T0, FakeClock
from sandbox_runtime import sandbox_runtime
from test_limiters import bitvavo_headers

from pipelines import progress
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.flows.account_streams import sync_account
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.prefect_env import log_file, prepare_prefect
from pipelines.flows.sync import summary_table
from pipelines.http import RequestBudget, ServerError, SharedRequestBudget, WeightBudget
from pipelines.progress.board import DONE, FAILED, RUNNING, Board
from pipelines.progress.events import (
    BACKOFF,
    BAN,
    PACING,
    TASK_RETRY,
    Event,
    Headroom,
    PageLanded,
    RequestSent,
    Retrying,
    StreamFailed,
    StreamFinished,
    StreamStarted,
    TaskDone,
    TasksPlanned,
    Waiting,
)
from pipelines.progress.plain import PlainRenderer
from pipelines.progress.session import NONE, sync_progress
from pipelines.progress.summary import summary_document
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

URL = "http://127.0.0.1:4321/v2/BTC-EUR/candles?interval=1h&limit=1440"


class Recorder:
    """Subscribes to the process-wide channel for the duration of a `with` block."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[Event]) -> list:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    unsubscribe = progress.CHANNEL.subscribe(recording)
    try:
        yield recording
    finally:
        unsubscribe()


# --- the channel --------------------------------------------------------------------------------


def test_nobody_listening_costs_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def clock() -> float:
        calls.append(1)
        return T0

    monkeypatch.setattr(progress.CHANNEL, "clock", clock)
    assert not progress.listening()
    progress.stream_started("candles bitvavo BTC-EUR 1h", "bitvavo")
    with progress.request("bitvavo", "candles", "GET", URL):
        progress.request_sent(1, 1)
        progress.waiting(PACING, "a reason", 3.0)
        progress.headroom("weight", 10, 1000)
    progress.landed("candles", 5)
    assert calls == [], "an event was built although nobody listens"
    progress.stream_finished(
        "candles bitvavo BTC-EUR 1h",
        "bitvavo",
        rows={},
        windows=0,
        requests=0,
        weight=0,
        retries=0,
        gaps=0,
    )
    assert progress.current_stream() is None


def test_events_carry_the_stream_and_the_request_of_their_own_thread(
    recorder: Recorder,
) -> None:
    ready = threading.Barrier(2)

    def work(stream: str, exchange: str, url: str) -> None:
        progress.stream_started(stream, exchange)
        with progress.request(exchange, "trades", "GET", url):
            ready.wait()  # both threads are inside their request before either publishes
            progress.request_sent(5, 1)
            progress.waiting(PACING, "budget", 2.5)
        progress.landed("public_trades", 7)

    threads = [
        threading.Thread(target=work, args=("trades a", "bitvavo", "http://a/")),
        threading.Thread(target=work, args=("trades b", "bitstamp", "http://b/")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for stream, exchange, url in (
        ("trades a", "bitvavo", "http://a/"),
        ("trades b", "bitstamp", "http://b/"),
    ):
        mine = [event for event in recorder.events if event.stream == stream]
        assert [type(event) for event in mine] == [StreamStarted, RequestSent, Waiting, PageLanded]
        sent, wait = mine[1], mine[2]
        assert isinstance(sent, RequestSent) and isinstance(wait, Waiting)
        assert (sent.exchange, sent.url, sent.weight) == (exchange, url, 5)
        assert (wait.exchange, wait.url, wait.kind, wait.seconds) == (exchange, url, PACING, 2.5)


def test_a_failing_listener_breaks_neither_the_publisher_nor_the_other_listeners(
    recorder: Recorder,
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("renderer bug")

    unsubscribe = progress.CHANNEL.subscribe(broken)
    try:
        progress.tasks_planned("market data", 3)
    finally:
        unsubscribe()
    assert [event.total for event in recorder.of(TasksPlanned)] == [3]


# --- the limiters tell their waits and their headroom --------------------------------------------


def test_a_request_budget_tells_its_pacing_wait_and_the_requests_left(recorder: Recorder) -> None:
    clock = FakeClock(T0)
    budget = RequestBudget(
        2, 10.0, BITSTAMP_PACING.max_requests_per_second, clock=clock, sleep=clock.sleep
    )
    with progress.request("bitstamp", "ohlc", "GET", URL):
        for _ in range(3):
            budget.acquire()
    assert [h.remaining for h in recorder.of(Headroom)] == [1, 0, 1]
    assert {(h.exchange, h.unit, h.limit, h.window_seconds) for h in recorder.of(Headroom)} == {
        ("bitstamp", "requests", 2, 10.0)
    }
    (wait,) = recorder.of(Waiting)
    assert (wait.kind, wait.seconds, wait.url, wait.exchange) == (PACING, 10.0, URL, "bitstamp")
    assert "2 requests per 10 s" in wait.reason
    assert clock.sleeps == [10.0]


def test_a_block_is_told_as_a_ban_by_both_request_budgets(
    recorder: Recorder, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    shared = SharedRequestBudget(
        tmp_path / "budget.json",
        100,
        60.0,
        BITSTAMP_PACING.max_requests_per_second,
        clock=clock,
        sleep=clock.sleep,
    )
    alone = RequestBudget(
        100, 60.0, BITSTAMP_PACING.max_requests_per_second, clock=clock, sleep=clock.sleep
    )
    with progress.request("bitstamp", "ohlc", "GET", URL):
        for budget in (shared, alone):
            budget.block_until(clock() + 30.0)
            budget.acquire()
    shared.close()
    waits = recorder.of(Waiting)
    assert [(w.kind, w.seconds) for w in waits] == [(BAN, 30.0), (BAN, 30.0)]
    # the shared budget counts the request it granted in its file's window
    assert recorder.of(Headroom)[0].remaining == 99


def test_a_weight_budget_tells_the_headers_headroom_and_waits_for_the_reset(
    recorder: Recorder,
) -> None:
    clock = FakeClock(T0)
    budget = WeightBudget(headers=WEIGHT_HEADERS, reserve=0, clock=clock, sleep=clock.sleep)
    with progress.request("bitvavo", "trades", "GET", URL):
        budget.acquire(5)
        budget.observe(bitvavo_headers(3, T0 + 40.0), 5)
        budget.acquire(5)  # 3 left: wait for the reset
    (headroom,) = recorder.of(Headroom)
    assert (headroom.unit, headroom.remaining, headroom.limit) == ("weight", 3, 1000)
    assert headroom.reset_at == pytest.approx(T0 + 40.0)
    (wait,) = recorder.of(Waiting)
    assert wait.kind == PACING
    assert "3 of 1000 weight left" in wait.reason
    assert wait.seconds == pytest.approx(40.0, abs=1.0)  # to the reset, plus the margin


# --- the board ---------------------------------------------------------------------------------


def started(at: float, stream: str, exchange: str = "bitvavo") -> StreamStarted:
    return StreamStarted(at, stream, exchange)


def test_the_board_follows_a_stream_through_waits_retries_and_its_end() -> None:
    clock = FakeClock(T0)
    board = Board(clock)
    s = "candles bitvavo BTC-EUR 1h"
    board.handle(started(T0, s))
    board.handle(RequestSent(T0 + 1, s, "bitvavo", "candles", "GET", URL, 1, 1))
    board.handle(PageLanded(T0 + 2, s, "candles", 100, 0.25))
    board.handle(
        Retrying(T0 + 3, s, "bitvavo", "candles", "GET", URL, 2, 8, "ServerError", "boom", 4.0)
    )
    clock.set(T0 + 4)
    (view,) = board.streams()
    assert (view.state, view.total_rows, view.requests, view.retries) == (RUNNING, 100, 1, 1)
    wait = view.waiting(clock())
    assert wait is not None and (wait.kind, wait.until) == (BACKOFF, T0 + 7)
    assert view.eta(clock()) == pytest.approx(4 * 0.75 / 0.25)
    # a wait longer than any estimate is the least the run still takes
    assert board.summary().eta == pytest.approx(max(3.0, 12.0))
    board.handle(RequestSent(T0 + 7, s, "bitvavo", "candles", "GET", URL, 1, 2))
    assert board.streams()[0].waiting(T0 + 7) is None, "a request sent ends the wait"
    board.handle(StreamFinished(T0 + 8, s, "bitvavo", {"candles": 240}, 1, 2, 2, 1, 0))
    (view,) = board.streams()
    assert (view.state, view.rows, view.requests, view.retries) == (DONE, {"candles": 240}, 2, 1)
    summary = board.summary(T0 + 8)
    assert (summary.running, summary.done, summary.rows, summary.requests) == (0, 1, 240, 2)


def test_a_task_retry_is_a_wait_and_the_phase_gives_the_eta() -> None:
    board = Board(lambda: T0 + 10)
    board.handle(TasksPlanned(T0, None, "market data", 4))
    board.handle(started(T0, "a"))
    board.handle(StreamFinished(T0 + 5, "a", "bitvavo", {}, 0, 1, 1, 0, 0))
    board.handle(TaskDone(T0 + 5, None, "market data"))
    assert board.summary(T0 + 10).eta == pytest.approx(10 / 1 * 3)
    board.handle(started(T0, "b"))
    board.handle(StreamFailed(T0 + 6, "b", "ServerError", "bitvavo candles: 502", URL, 60.0))
    view = next(v for v in board.streams() if v.name == "b")
    assert view.state == FAILED and view.url == URL
    wait = view.waiting(T0 + 10)
    assert wait is not None and (wait.kind, wait.until) == (TASK_RETRY, T0 + 66)
    # the wait outlasts the phase's estimate (30 s): it is the least the run still takes
    assert board.summary(T0 + 10).eta == pytest.approx(66 - 10)
    board.handle(started(T0 + 66, "b"))  # Prefect runs it again
    assert next(v for v in board.streams() if v.name == "b").state == RUNNING


# --- the plain renderer --------------------------------------------------------------------------


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def take(self) -> list[str]:
        taken, self.lines = self.lines, []
        return taken


def plain(clock: FakeClock) -> tuple[PlainRenderer, Lines]:
    lines = Lines()
    return PlainRenderer(lines, Board(clock)), lines


def test_plain_lines_tell_long_waits_once_with_reason_url_and_seconds() -> None:
    clock = FakeClock(T0)
    renderer, lines = plain(clock)
    renderer(started(T0, "trades bitvavo"))
    renderer(Waiting(T0 + 1, "trades bitvavo", PACING, "spreading the budget", 0.5, "bitvavo", URL))
    assert lines.take() == [], "a short wait is not worth a line"
    renderer(Waiting(T0 + 2, "trades bitvavo", BAN, "the key is banned", 45.0, "bitvavo", URL))
    (line,) = lines.take()
    assert line.startswith("[00:02] waiting")
    assert "45 s" in line and "the key is banned" in line and URL in line
    assert "trades bitvavo" in line
    # another thread meets the same ban while it lasts: no second line
    renderer(started(T0 + 3, "candles bitvavo"))
    renderer(Waiting(T0 + 3, "candles bitvavo", BAN, "the key is banned", 44.0, "bitvavo", URL))
    assert lines.take() == []
    # after it ended, a new one is told again
    renderer(Waiting(T0 + 50, "candles bitvavo", BAN, "the key is banned", 3.0, "bitvavo", URL))
    assert [line[:7] for line in lines.take()] == ["[00:50]"]


def test_plain_retry_lines_are_throttled_and_count_those_not_shown() -> None:
    clock = FakeClock(T0)
    renderer, lines = plain(clock)
    renderer(started(T0, "s", "bitstamp"))

    def retry(at: float, wait: float, attempt: int = 2) -> None:
        message = "bitstamp ohlc: server error (HTTP 502)"
        renderer(
            Retrying(
                at, "s", "bitstamp", "ohlc", "GET", URL, attempt, 8, "ServerError", message, wait
            )
        )

    retry(T0 + 1, 0.3)
    (first,) = lines.take()
    assert "retry" in first and "2/8" in first and "server error (HTTP 502)" in first
    assert f"GET {URL}" in first
    retry(T0 + 2, 0.3)
    retry(T0 + 3, 0.6)
    assert lines.take() == [], "within 5 s of the last retry line"
    retry(T0 + 4, 4.0, attempt=5)  # a long back-off is told at once
    (long,) = lines.take()
    assert "5/8" in long and "4.0 s" in long and "2 other retries not shown" in long
    retry(T0 + 5, 0.3)
    retry(T0 + 9.5, 0.3)
    (later,) = lines.take()
    assert later.startswith("[00:09]") and "1 other retry not shown" in later


def test_plain_lines_for_a_finished_and_a_failed_stream() -> None:
    clock = FakeClock(T0)
    renderer, lines = plain(clock)
    renderer(started(T0, "ledger bitstamp", "bitstamp"))
    renderer(
        StreamFinished(
            T0 + 2, "ledger bitstamp", "bitstamp", {"fills": 41, "transfers": 10}, 4, 3, 3, 1, 0
        )
    )
    (done,) = lines.take()
    assert done.startswith("[00:02] done")
    for part in ("ledger bitstamp", "fills 41", "transfers 10", "3 requests", "1 retry", "2.0 s"):
        assert part in done, part
    renderer(started(T0 + 3, "candles bitvavo", "bitvavo"))
    renderer(
        StreamFailed(T0 + 4, "candles bitvavo", "ServerError", "bitvavo candles: 502", URL, 5.0)
    )
    renderer(
        StreamFailed(T0 + 9, "candles bitvavo", "ServerError", "bitvavo candles: 502", URL, None)
    )
    retried, final = lines.take()
    assert "failed" in retried and URL in retried and "again in 5.0 s" in retried
    assert "failed" in final and URL in final and "not retried" in final


def test_the_heartbeat_says_what_still_runs_at_most_every_ten_seconds() -> None:
    clock = FakeClock(T0)
    renderer, lines = plain(clock)
    clock.set(T0 + 9)
    renderer.tick()
    assert lines.take() == []
    clock.set(T0 + 10)
    renderer.tick()
    (starting,) = lines.take()
    assert "no stream has started yet" in starting
    renderer(started(T0 + 11, "candles bitstamp BTC-EUR 1h", "bitstamp"))
    renderer(
        RequestSent(T0 + 11, "candles bitstamp BTC-EUR 1h", "bitstamp", "ohlc", "GET", URL, 1, 1)
    )
    renderer(
        Waiting(T0 + 12, "candles bitstamp BTC-EUR 1h", PACING, "budget", 1.5, "bitstamp", URL)
    )
    clock.set(T0 + 12.5)
    renderer.tick()
    assert lines.take() == [], "the last line is only 2.5 s old"
    clock.set(T0 + 20)
    renderer.tick()
    (beat,) = lines.take()
    assert beat.startswith("[00:20] running") and "candles bitstamp BTC-EUR 1h" in beat
    assert "1 request" in beat and f"GET {URL}" in beat  # the wait is over: where it is
    clock.set(T0 + 25)
    renderer.tick()
    assert lines.take() == []


# --- the summary, the error lines ----------------------------------------------------------------


def result(stream: str, rows: dict[str, int], *numbers: int, gaps: tuple[str, ...] = ()) -> dict:
    windows, requests, weight, retries = numbers
    exchange = stream.split()[1]
    return {
        "stream": stream,
        "exchange": exchange,
        "rows": rows,
        "windows": windows,
        "requests": requests,
        "weight": weight,
        "retries": retries,
        "gaps": gaps,
        "first": datetime(2024, 3, 1, tzinfo=UTC),
        "last": None,
    }


def table_rows(table: str) -> list[list[str]]:
    """The summary table's cells (columns are at least two spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]


def test_the_json_summary_holds_the_rows_of_the_table() -> None:
    results = [
        result("trades bitvavo", {"fills": 61}, 4, 6, 26, 0, gaps=("a gap",)),
        result("ledger bitstamp", {"fills": 41, "bitstamp_ledger": 60, "transfers": 0}, 4, 2, 2, 1),
    ]
    document = summary_document(results, warehouse="/data/warehouse.duckdb")
    header, *rows, total = table_rows(summary_table(results))
    assert header == ["stream", "rows", "windows", "requests", "weight", "retries", "gaps"]
    assert [row[0] for row in rows] == [s["stream"] for s in document["streams"]]
    for row, stream in zip(rows, document["streams"], strict=True):
        landed = ", ".join(f"{k} {v}" for k, v in stream["rows"].items() if v) or "-"
        numbers = [stream[n] for n in ("windows", "requests", "weight", "retries")]
        assert row[1:] == [landed, *map(str, numbers), str(len(stream["gaps"]))]
    t = document["total"]
    assert total == [
        "total",
        str(t["rows"]),
        *map(str, [t[n] for n in ("windows", "requests", "weight", "retries", "gaps")]),
    ]
    assert document["streams"][0]["first"] == "2024-03-01T00:00:00+00:00"
    assert document["warehouse"] == "/data/warehouse.duckdb"


def test_an_exchange_error_leaves_as_one_line_per_failed_stream_with_its_url() -> None:
    error = ServerError(
        "bitvavo candles: server error (HTTP 502)", exchange="bitvavo", endpoint="candles"
    )
    error.url = URL
    base = "http://127.0.0.1:4321/v2"
    with (
        pytest.raises(OperatorError) as raised,
        sync_progress(mode=NONE, base_urls={"bitvavo": base}),
    ):
        progress.stream_started("candles bitvavo BTC-EUR 1h", "bitvavo")
        with progress.request("bitvavo", "candles", "GET", URL):
            progress.request_sent(1, 1)
        progress.stream_failed(error)
        raise error
    assert raised.value.exit_code == ExitCode.EXCHANGE
    # the stream, what happened, the request it failed on, the fix
    assert raised.value.lines == (
        f"candles bitvavo BTC-EUR 1h: {base} answers with errors: candles: server error "
        f"(HTTP 502) (GET {URL}); try again later (the exchange's status page may say more); "
        "check base_url under [bitvavo] in tally.toml",
    )
    assert not progress.listening(), "the session unsubscribed"


def test_an_error_outside_any_stream_is_told_with_its_url() -> None:
    error = ServerError(
        "bitstamp markets: server error (HTTP 503)", exchange="bitstamp", endpoint="markets"
    )
    error.url = "http://127.0.0.1:4321/api/v2/markets/"
    with pytest.raises(OperatorError) as raised, sync_progress(mode=NONE):
        raise error
    (line,) = raised.value.lines
    assert line.startswith("bitstamp: ") and "server error (HTTP 503)" in line
    assert f"({error.url}); try again later" in line


# --- Prefect's logging ---------------------------------------------------------------------------


@pytest.fixture
def clean_prefect_env(tmp_path: Path) -> Iterator[None]:
    """No PREFECT_* variable but a private PREFECT_HOME; the whole environment restored after
    (prepare_prefect sets variables of its own)."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            del os.environ[name]
    os.environ["PREFECT_HOME"] = str(tmp_path / "home")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_prefect_logs_to_a_file_in_the_data_directory(
    clean_prefect_env: None, tmp_path: Path
) -> None:
    import json

    data = tmp_path / "data"
    prepare_prefect(data)
    config = Path(os.environ["PREFECT_LOGGING_CONFIG_PATH"])
    assert config.parent == data / "logs"
    loaded = json.loads(config.read_text())  # JSON is YAML: what Prefect reads
    handlers = loaded["handlers"]
    assert handlers["file"]["filename"] == str(log_file(data))
    assert handlers["console"]["level"] > 50, "the console handler writes nothing"
    for name, logger in (("root", loaded["root"]), *loaded["loggers"].items()):
        assert "debug" not in logger.get("handlers", []), name


def test_prefects_own_overrides_still_apply_to_the_written_config(
    clean_prefect_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.logging.configuration import load_logging_config
    from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

    data = tmp_path / "da$ta"  # a "$" in the path survives Prefect's templating
    prepare_prefect(data)
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    with temporary_settings({PREFECT_LOGGING_LEVEL: "DEBUG"}):
        loaded = load_logging_config(Path(os.environ["PREFECT_LOGGING_CONFIG_PATH"]))
    assert loaded["handlers"]["console"]["level"] == "INFO"
    assert loaded["handlers"]["file"]["filename"] == str(log_file(data))
    assert loaded["loggers"]["prefect"]["level"] == "DEBUG"


def test_a_users_own_prefect_logging_config_wins(
    clean_prefect_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LOGGING_SETTINGS_PATH", "/theirs/logging.yml")
    prepare_prefect(tmp_path / "a")
    assert "PREFECT_LOGGING_CONFIG_PATH" not in os.environ
    monkeypatch.delenv("PREFECT_LOGGING_SETTINGS_PATH")
    home = tmp_path / "home"
    home.mkdir()
    (home / "logging.yml").write_text("version: 1\n")
    prepare_prefect(tmp_path / "b")
    assert "PREFECT_LOGGING_CONFIG_PATH" not in os.environ
    assert not (tmp_path / "b" / "logs").exists()


# --- streams against a faulty sandbox, in-process ------------------------------------------------

NOW = datetime(2024, 3, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def faulty_sandbox() -> Iterator[Sandbox]:
    world = World(seed=5, days=10, now_ms=int(NOW.timestamp() * 1000))
    kinds = "server_error,error_body,reset,truncated"
    with start_sandbox(seed=5, world=world, faults=0.3, fault_kinds=kinds) as sandbox:
        yield sandbox


def test_every_request_retry_and_row_is_told_to_its_stream_and_no_secret_is(
    faulty_sandbox: Sandbox, tmp_path: Path, recorder: Recorder
) -> None:
    with closing(sandbox_runtime(faulty_sandbox, tmp_path, now=NOW)) as rt:
        results = [*sync_account(rt, "bitstamp"), *sync_account(rt, "bitvavo")]
        span = Window(NOW - timedelta(days=20), NOW)
        results.append(sync_candles(rt, "bitstamp", "BTC-EUR", "1h", span))
    finished = {event.stream: event for event in recorder.of(StreamFinished)}
    assert set(finished) == {r.stream for r in results}
    for r in results:
        told = finished[r.stream]
        assert (told.rows, told.requests, told.weight, told.retries, told.gaps) == (
            r.rows,
            r.requests,
            r.weight,
            r.retries,
            len(r.gaps),
        ), r.stream
        sent = [e for e in recorder.of(RequestSent) if e.stream == r.stream]
        assert len(sent) == r.requests, r.stream
        assert sum(e.weight for e in sent) == r.weight, r.stream
        retried = [e for e in recorder.of(Retrying) if e.stream == r.stream]
        assert len(retried) == r.retries, r.stream
        landed = [e for e in recorder.of(PageLanded) if e.stream == r.stream]
        for dataset, rows in r.rows.items():
            assert sum(e.rows for e in landed if e.dataset == dataset) == rows, (r.stream, dataset)
    retries = recorder.of(Retrying)
    assert retries, "a 30 % fault rate makes retries"
    bases = {
        "bitstamp": faulty_sandbox.bitstamp.base_url,
        "bitvavo": faulty_sandbox.bitvavo.base_url,
    }
    for event in retries:
        assert event.url.startswith(bases[event.exchange] + "/"), event
        assert event.message.startswith(f"{event.exchange} {event.endpoint}:"), event
    candles = [e for e in recorder.of(PageLanded) if e.stream == "candles bitstamp BTC-EUR 1h"]
    assert [e.done for e in candles][-1] == 1.0 and all(0 < (e.done or 0) <= 1 for e in candles)
    budgets = {(e.exchange, e.unit) for e in recorder.of(Headroom)}
    assert budgets == {("bitstamp", "requests"), ("bitvavo", "weight")}
    secrets = [
        value
        for endpoint in (faulty_sandbox.bitstamp, faulty_sandbox.bitvavo)
        for value in (endpoint.key, endpoint.secret)
    ]
    for event in recorder.events:
        shown = repr(event)
        assert not any(secret in shown for secret in secrets), event
