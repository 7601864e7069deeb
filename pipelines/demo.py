"""`tally demo`: the whole pipeline on the built-in sandbox, end to end, into ./data: sync,
warehouse, reconciliation, and every export of the last full year into data/exports (the exit
code says whether every reported balance reconciles and every export could be written)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.config import Settings

# A frozen present for the simulated exchanges, so that every demo lands the same history:
# 400 days of accounts cover the whole of 2024 (the last full year, for tax exports).
DEMO_NOW = datetime(2025, 1, 15, tzinfo=UTC)
DEMO_DAYS = 400
DEMO_SEED = 1


def run_demo(data_dir: Path) -> int:
    from pipelines.checks.failures import base_urls
    from pipelines.config import load_settings
    from pipelines.config_file import write_config
    from pipelines.flows.prefect_server import prefect_server
    from pipelines.sandbox.server import start_sandbox
    from pipelines.sandbox_config import SANDBOX_COMMENT, sandbox_document

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    print(
        f"Starting the sandbox exchanges: seed {DEMO_SEED}, {DEMO_DAYS} days to {DEMO_NOW:%Y-%m-%d}"
    )
    with start_sandbox(
        seed=DEMO_SEED, days=DEMO_DAYS, now_ms=int(DEMO_NOW.timestamp() * 1000)
    ) as sandbox:
        config = data_dir / "sandbox.toml"
        document = sandbox_document(sandbox)
        # The config sits in the data directory, so its data_dir is that directory itself.
        document["data_dir"] = "."
        write_config(config, document, comment=SANDBOX_COMMENT)
        settings = load_settings(config)
        with prefect_server(settings.data_dir):
            from pipelines.flows.sync import summary_table, sync_flow
            from pipelines.progress.session import sync_progress

            print(
                "Syncing both accounts, their candles and public trades (Prefect flow)…", flush=True
            )
            # on stderr: live on a terminal, else plain lines; an error ends it as `tally sync`'s
            with sync_progress(base_urls=base_urls(settings)):
                results = sync_flow(str(config))
        print(summary_table(results))
    from pipelines.lake import Lake
    from pipelines.status import format_status, stream_status

    print("\nWhat the lake holds now:")
    print(format_status(stream_status(Lake.of(settings))))
    print(f"\nLake: {settings.lake_location}   ({time.monotonic() - began:.0f} s)")
    reconciled = _reconcile(settings)
    exported = export_year(settings, DEMO_NOW.year - 1)
    sys.stdout.flush()
    return 0 if reconciled and exported else 1


def _reconcile(settings: Settings) -> bool:
    """Build the warehouse and print the reconciliation; True when every balance agrees."""
    from pipelines.exchanges.registry import warehouse_rules
    from warehouse.build import build, build_summary
    from warehouse.connect import connect
    from warehouse.reconcile import format_verdicts, reconciliation

    result = build(settings, rules=warehouse_rules())
    with connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3) as connection:
        verdicts = reconciliation(connection)
    print(f"\nWarehouse: {result.path}   ({result.seconds:.1f} s, {build_summary(result)})")
    print("\nReported balances against the replayed ledger:")
    print(format_verdicts(verdicts))
    failed = [v for v in verdicts if not v.ok]
    if failed:
        print(f"\n{len(failed)} balance(s) do not reconcile.")
    elif not verdicts:
        print("\nNothing reconciled.")
    else:
        print(f"\nAll {len(verdicts)} balances reconcile exactly.")
    return bool(verdicts) and not failed


def export_year(settings: Settings, year: int) -> bool:
    """Write every export of `year` (fifo, in `reporting_currency`: the demo's is EUR) into
    data/exports and print the files; a format that needs a price the warehouse lacks is listed
    with every missing (asset, time). True when every format was written."""
    from warehouse.connect import connect
    from warehouse.exports.options import FORMATS, ExportOptions
    from warehouse.exports.run import format_failures, format_written, run_exports

    options = ExportOptions(year=year, currency=settings.reporting_currency)
    with connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3) as connection:
        report = run_exports(connection, FORMATS, options, settings.exports_dir)
    print(f"\nExports of {year} ({options.currency}, method {options.method}):")
    if report.written:
        print(format_written(report))
    if report.failed:
        print(format_failures(report))
        print(f"\n{len(report.failed)} export(s) could not be written: a price is missing.")
    return report.ok
