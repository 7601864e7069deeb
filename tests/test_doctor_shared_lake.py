"""`tally doctor` warns when the lake is shared (`lake_url`) but the rate budgets are not
(`rate_budget_url` unset), and says nothing of it otherwise."""

from __future__ import annotations

from pathlib import Path

from pipelines.checks.doctor import DoctorContext, configuration_rows
from pipelines.config import Settings
from pipelines.database_url import DatabaseUrl

LAKE = "s3://bucket/lake"
BUDGETS = DatabaseUrl("postgresql://tally@127.0.0.1:5432/budgets")


def rows_about_the_budget(settings: Settings) -> list[tuple[str, str]]:
    context = DoctorContext(settings, ())
    return [
        (row.status, row.detail)
        for row in configuration_rows(context)
        if row.check == "configuration" and row.subject == "rate_budget_url"
    ]


def test_a_shared_lake_without_a_shared_budget_is_warned_of(tmp_path: Path) -> None:
    ((status, detail),) = rows_about_the_budget(Settings(data_dir=tmp_path, lake_url=LAKE))
    assert status == "warn"
    assert "lake_url is set, rate_budget_url is not" in detail


def test_no_warning_with_a_shared_budget_or_a_local_lake(tmp_path: Path) -> None:
    shared = Settings(data_dir=tmp_path, lake_url=LAKE, rate_budget_url=BUDGETS)
    assert rows_about_the_budget(shared) == []
    assert rows_about_the_budget(Settings(data_dir=tmp_path)) == []
