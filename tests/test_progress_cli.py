"""`tally sync` as a person sees it: progress on stderr, the summary on stdout, Prefect's own
logs in `<data_dir>/logs/prefect.log`, never on the terminal.

Three real runs against loopback sandboxes of one small world (one market per exchange, daily
candles): with faults and no terminal, starting its own temporary Prefect server as a person's
first run does (plain lines naming each retry's reason and URL, the summary table, no traceback,
no Prefect line, nothing else on stderr); with `--json` (one JSON document on stdout); in a
pseudo-terminal (the live `rich` display, then the table, whose rows equal the JSON document's).
The last two use the session's Prefect server (`prefect_api`) as a user's own.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect_api import PrefectApi

from pipelines.config_file import write_config
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 3, 31, tzinfo=UTC)
RUN_SECONDS = 300  # a cold temporary Prefect server alone can take a minute on busy cores
# Prefect's log format ("12:00:00.123 | INFO    | prefect - …"), and its usual words
PREFECT_LINE = re.compile(r"\|\s*(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*\||Flow run|Task run")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, days=10, now_ms=int(NOW.timestamp() * 1000))


@pytest.fixture(scope="module")
def faulty(world: World) -> Iterator[Sandbox]:
    # Kinds that fail fast: a `rate_limited` fault makes Bitvavo wait for its window (a minute).
    kinds = "server_error,error_body,reset,truncated"
    with start_sandbox(seed=7, world=world, faults=0.3, fault_kinds=kinds) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def clean(world: World) -> Iterator[Sandbox]:
    with start_sandbox(seed=7, world=world) as sandbox:
        yield sandbox


def small_config(sandbox: Sandbox, directory: Path) -> Path:
    """The sandbox's tally.toml, trimmed to BTC-EUR with daily candles on both exchanges."""
    document = sandbox_document(sandbox)
    for section in ("bitstamp", "bitvavo"):
        document[section].update(markets=["BTC-EUR"], intervals=["1d"])
    return write_config(directory / "tally.toml", document)


def environment(api: PrefectApi | None = None) -> dict[str, str]:
    """This environment without another Prefect profile or server, or real exchange keys; with
    `api` as the user's own Prefect server if given."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "BITSTAMP_", "BITVAVO_"))
    }
    if api is not None:
        env["PREFECT_API_URL"] = api.url
    return {**env, "PYTHONPATH": str(REPO), "TERM": "xterm-256color", "COLUMNS": "160"}


def sync_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "sync", "--config", str(config), *extra]


def table_rows(text: str) -> dict[str, list[str]]:
    """The summary table in `text`, by stream (cells are at least two spaces apart)."""
    lines = text.splitlines()
    header = ["stream", "rows", "windows", "requests", "weight", "retries", "gaps"]
    start = next(i for i, line in enumerate(lines) if line.split() == header)
    rows = {}
    for line in lines[start + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
        if cells[0] == "total":
            return rows
    raise AssertionError(f"no total row in:\n{text}")


def json_rows(document: dict) -> dict[str, list[str]]:
    """The JSON document's streams as the table shows them."""
    rows = {}
    for stream in document["streams"]:
        landed = ", ".join(f"{k} {v}" for k, v in sorted(stream["rows"].items()) if v) or "-"
        numbers = [stream[n] for n in ("windows", "requests", "weight", "retries")]
        rows[stream["stream"]] = [landed, *map(str, numbers), str(len(stream["gaps"]))]
    total = document["total"]
    numbers = [total[n] for n in ("rows", "windows", "requests", "weight", "retries", "gaps")]
    rows["total"] = list(map(str, numbers))
    return rows


def no_prefect_output(text: str) -> None:
    assert "Traceback" not in text, text
    noise = [line for line in text.splitlines() if PREFECT_LINE.search(line)]
    assert noise == [], "\n".join(noise)


@pytest.fixture(scope="module")
def json_run(
    clean: Sandbox, prefect_api: PrefectApi, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    config = small_config(clean, tmp_path_factory.mktemp("json"))
    done = subprocess.run(
        sync_command(config, "--json"),
        cwd=config.parent,
        capture_output=True,
        text=True,
        env=environment(prefect_api),
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done
    no_prefect_output(done.stdout + done.stderr)
    document = json.loads(done.stdout)  # the whole of stdout is one document
    return {"document": document, "stderr": done.stderr, "data": config.parent / "data"}


def test_a_sync_without_a_terminal_prints_plain_progress_the_table_and_nothing_of_prefect(
    faulty: Sandbox, tmp_path: Path, json_run: dict
) -> None:
    config = small_config(faulty, tmp_path)
    began = time.monotonic()
    done = subprocess.run(
        sync_command(config),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=RUN_SECONDS,
        check=False,
    )
    seconds = time.monotonic() - began
    assert done.returncode == 0, done
    no_prefect_output(done.stdout + done.stderr)
    progress = done.stderr.splitlines()
    assert all(re.match(r"\[\d\d:\d\d\] ", line) for line in progress), done.stderr
    # every retry line names its attempt, the error it follows and the URL it is for
    retries = [line for line in progress if "] retry " in line]
    assert retries, done.stderr
    bases = (faulty.bitstamp.base_url, faulty.bitvavo.base_url)
    for line in retries:
        assert re.search(r"retry +\d+/\d+ in [\d.]+ s after (bitstamp|bitvavo) \w+: ", line), line
        assert any(f"{base}/" in line for base in bases), line
    table = table_rows(done.stdout)
    done_lines = [line for line in progress if "] done " in line]
    assert len(done_lines) == len(table) - 1, "a line per stream finished"
    assert int(table["total"][4]) > 0, "the table counts the retries"
    assert done.stdout.rstrip().splitlines()[-1].startswith("warehouse rebuilt: ")
    # what landed is what a run without faults landed (the JSON run)
    clean_rows = json_rows(json_run["document"])
    assert {s: r[:2] + r[-1:] for s, r in table.items() if s != "total"} == {
        s: r[:2] + r[-1:] for s, r in clean_rows.items() if s != "total"
    }
    # Prefect's own lines went to its log file instead
    log = (tmp_path / "data" / "logs" / "prefect.log").read_text()
    assert "Beginning flow run" in log and "Finished in state Completed" in log
    print(f"plain run: {seconds:.0f} s, {len(progress)} progress lines, {len(retries)} retry lines")


def test_json_prints_one_document_and_progress_stays_on_stderr(json_run: dict) -> None:
    document = json_run["document"]
    streams = [s["stream"] for s in document["streams"]]
    assert streams == sorted(streams) and "ledger bitstamp" in streams
    assert document["total"]["rows"] == sum(s["rows_total"] for s in document["streams"]) > 0
    assert document["warehouse"] == str(json_run["data"] / "warehouse.duckdb")
    done_lines = [line for line in json_run["stderr"].splitlines() if "] done " in line]
    assert len(done_lines) == len(streams)


def run_in_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `command` with stdin, stdout and stderr on a pseudo-terminal of 160×50; its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    process = subprocess.Popen(command, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + RUN_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"ran over {RUN_SECONDS} s:\n{output.decode(errors='replace')}")
        return process.wait(timeout=30), output.decode("utf-8", errors="replace")
    finally:
        os.close(master)


def test_on_a_terminal_the_live_display_runs_and_the_table_follows(
    clean: Sandbox, prefect_api: PrefectApi, tmp_path: Path, json_run: dict
) -> None:
    config = small_config(clean, tmp_path)
    code, output = run_in_terminal(sync_command(config), tmp_path, environment(prefect_api))
    assert code == 0, output
    plain = ANSI.sub("", output)
    no_prefect_output(plain)
    assert "\x1b[?25l" in output, "rich's live display hides the cursor while it draws"
    frames = re.findall(r"tally sync +\d\d:\d\d +· +\d+ running", plain)
    assert len(frames) >= 2, plain
    assert re.search(r"stream +rows +requests +retries +headroom +ETA +now", plain), plain
    assert "headroom: bitstamp " in plain and " weight, reset in " in plain
    # after the display: the summary table, equal to the JSON document of the same world
    assert plain.index("warehouse rebuilt: ") > plain.rindex("tally sync ")
    assert table_rows(plain) == json_rows(json_run["document"])
