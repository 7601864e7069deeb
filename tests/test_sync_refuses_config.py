"""`tally sync` (a subprocess, as a person runs it) against a running sandbox, with a
`tally.toml` that is not valid TOML, that has a bad value, or that names a market the exchange
does not list: exit 2, one line naming the file and the key (or line), or the market; no
traceback; nothing fetched: for the file, no request at all and no data directory made; for the
market, only the two market lists read (`/_sandbox/stats`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import timed_tally
from sandbox_stats import grown, requests_by_endpoint

from pipelines.config_file import config_text, write_config
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
CONTRACT_S = 10.0  # the bound for every check before work


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    world = World(seed=43, days=5, now_ms=NOW_MS)
    with start_sandbox(seed=43, world=world) as running:
        yield running


def config(sandbox: Sandbox, directory: Path, **changes: dict[str, Any]) -> Path:
    """The sandbox's own tally.toml (good URLs and keys) with each section's keys in
    `changes` set to their value."""
    document = sandbox_document(sandbox)
    for section, values in changes.items():
        document[section].update(values)
    return write_config(directory / "tally.toml", document)


def sync(sandbox: Sandbox, directory: Path) -> tuple[str, dict[str, int]]:
    """Run `tally sync` in `directory`; its one stderr line and the requests it made."""
    before = requests_by_endpoint(sandbox)
    done, seconds = timed_tally("sync", cwd=directory)
    assert done.returncode == 2, done.stderr
    assert seconds <= CONTRACT_S, f"{seconds:.1f} s"
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    return line, grown(before, requests_by_endpoint(sandbox))


def test_a_toml_syntax_error_fetches_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    document = sandbox_document(sandbox)
    del document["data_dir"]
    path = tmp_path / "tally.toml"
    # not TOML: line 2 opens a string it never closes; the rest is the sandbox's own config
    path.write_text('# tally.toml\ndata_dir = "data\n' + config_text(document), encoding="utf-8")
    line, requested = sync(sandbox, tmp_path)
    assert line.startswith(f"tally sync: {path.name}: not valid TOML: ")  # ./tally.toml
    assert "line 2" in line  # the unterminated string, after the comment line
    assert requested == {}
    assert not (tmp_path / "data").exists()


def test_a_bad_value_fetches_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    path = config(sandbox, tmp_path, bitvavo={"intervals": ["7h"]})
    line, requested = sync(sandbox, tmp_path)
    assert line.startswith(f'tally sync: {path.name}: [bitvavo] intervals has "7h": expected')
    assert requested == {}
    assert not (tmp_path / "data").exists()


def test_an_unknown_bitvavo_market_reads_only_the_market_lists(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config(sandbox, tmp_path, bitvavo={"markets": ["BTC-EUR", "BTC-XYZ"]})
    line, requested = sync(sandbox, tmp_path)
    assert line.startswith("tally sync: bitvavo: configured market BTC-XYZ is not listed")
    assert requested == {"bitstamp markets": 1, "bitvavo markets": 1}
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob(".prefect"))
