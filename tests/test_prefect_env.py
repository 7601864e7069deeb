from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.flows.prefect_env import prepare_prefect


def test_prefect_home_is_created_inside_a_data_dir_that_does_not_exist_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_HOME", "DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "fresh" / "data"
    prepare_prefect(data_dir)
    assert (data_dir / ".prefect").is_dir()
    assert os.environ["PREFECT_HOME"] == str(data_dir / ".prefect")
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_a_users_own_prefect_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", "/somewhere/else")
    prepare_prefect(tmp_path)
    assert os.environ["PREFECT_HOME"] == "/somewhere/else"
