"""A flow run's results as Prefect artifacts, shown with the run in the Prefect UI: the run's
summary (a table: per stream, what landed and what was asked) and the reconciliation verdict of
the warehouse the run rebuilt (markdown).

    publish(settings, results)   # at the end of a flow run, after the warehouse's rebuild
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.config import Settings

SUMMARY_KEY = "sync-summary"
RECONCILIATION_KEY = "reconciliation"


def publish(settings: Settings, results: Sequence[dict[str, Any]]) -> None:
    """Both artifacts of a run that landed `results` (the tasks' summaries) into `settings`'
    data directory."""
    from pipelines.flows.sync import summary_records
    from warehouse.connect import connect
    from warehouse.reconcile import reconciliation, verdict_headline, verdicts_markdown

    create_table_artifact(
        key=SUMMARY_KEY,
        table=summary_records(results),
        description="Per stream: rows landed per dataset, windows, requests, weight, retries, gaps",
    )
    with connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3) as connection:
        verdicts = reconciliation(connection)
    create_markdown_artifact(
        key=RECONCILIATION_KEY,
        markdown=verdicts_markdown(verdicts),
        description=verdict_headline(verdicts),
    )
