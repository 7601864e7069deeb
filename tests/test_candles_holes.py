"""A candle sync whose span lies wholly after the cutoff still reads its quarantined windows
again (it used to fail measuring its progress against a span it had not planned)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from sandbox_runtime import sandbox_runtime

from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.quarantine import quarantine_lake
from pipelines.sandbox.server import start_sandbox
from pipelines.sandbox.world import World

NOW = datetime(2024, 1, 6, tzinfo=UTC)


def test_a_span_after_the_cutoff_still_reads_a_quarantined_window_again(tmp_path: Path) -> None:
    world = World(seed=5, days=3, now_ms=int(NOW.timestamp() * 1000))
    with start_sandbox(seed=5, world=world) as sandbox:
        rt = sandbox_runtime(sandbox, tmp_path, now=NOW)
        sync_candles(rt, "bitstamp", "BTC-EUR", "1h", Window(NOW - timedelta(days=2), NOW))
        damaged = sorted((rt.lake.root / "candles").rglob("*.parquet"))[0]
        before = pl.read_parquet(damaged).drop("fetched_at")
        damaged.write_bytes(b"not parquet")
        quarantine_lake(rt.settings)
        assert not damaged.exists()

        result = sync_candles(
            rt, "bitstamp", "BTC-EUR", "1h", Window(NOW, NOW + timedelta(hours=2))
        )

    assert result.windows == 1
    assert pl.read_parquet(damaged).drop("fetched_at").equals(before)
