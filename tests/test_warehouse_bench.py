"""`python -m benchmarks.warehouse_bench`'s interface, on a small synthetic lake: the JSON figures
it writes, and the views' verdicts it checks on the way (every balance reconciles, every fill
passes its checks, every own transfer is matched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import warehouse_bench
from benchmarks.warehouse_bench import QUERIES, TRANSFER_PAIRS, main, rows_digest
from pipelines.config import Settings

FILLS = 400
BALLAST_MB = 768  # more than the build of FILLS fills needs (about 200 MB)


def test_json_holds_the_build_its_peak_memory_and_each_querys_median(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    main(["--fills", str(FILLS), "--runs", "1", "--json", str(figures)])
    result = json.loads(figures.read_text(encoding="utf-8"))

    assert result["fills"] == FILLS
    assert result["lake"]["fills"] == FILLS
    assert result["build_s"] > 0
    # the child's own peak: at least the interpreter with DuckDB and polars loaded
    assert 50 < result["peak_rss_mb"] < BALLAST_MB
    assert list(result["queries"]) == [name for name, _ in QUERIES]
    for name, timing in result["queries"].items():
        assert 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"], name
        assert len(timing["rows_sha256"]) == 64, name
    # matched pairs (checked: 2 × TRANSFER_PAIRS rows) and the funding deposits, unmatched
    assert result["queries"]["internal_transfers"]["rows"] > 2 * TRANSFER_PAIRS
    assert result["queries"]["fill_checks"]["rows"] == 1  # one status: all ok (checked)


def test_the_build_peak_is_the_childs_own_not_its_parents(tmp_path: Path) -> None:
    """A parent that has held more memory than the build needs does not lift the figure (on
    Linux a child's ru_maxrss starts at its parent's peak)."""
    settings = Settings(data_dir=tmp_path / "data")  # an empty lake: the child's peak is
    # at least its interpreter with DuckDB and polars loaded, whatever it builds
    ballast = bytearray(b"\x01") * (BALLAST_MB * 2**20)  # written: resident
    built = warehouse_bench.build_in_child(settings.data_dir)
    assert len(ballast) == BALLAST_MB * 2**20
    assert 50 < built["peak_rss_mb"] < BALLAST_MB


def test_a_failed_check_stops_the_benchmark() -> None:
    with pytest.raises(AssertionError, match="fill_checks found problems"):
        warehouse_bench.check("fill_checks", [("ok", None, FILLS - 1)], FILLS)
    with pytest.raises(AssertionError, match="reconcile_balances is not all ok"):
        row = ("bitstamp", "main", "BTC", 1, 1, 0, "mismatch")
        warehouse_bench.check("reconcile_balances", [row], FILLS)


def test_the_rows_digest_ignores_the_order_and_sees_every_value() -> None:
    rows = [("BTC", 1, "ok"), ("ETH", 2, "ok")]
    assert rows_digest(rows) == rows_digest(rows[::-1])
    assert rows_digest(rows) != rows_digest([("BTC", 1, "ok"), ("ETH", 2, "mismatch")])
    assert rows_digest(rows) != rows_digest(rows[:1])
