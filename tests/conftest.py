"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT.parent / "shared" / "data" / "exchange-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The real recorded responses and market series (shared/, beside the checkout)."""
    if not SAMPLES_DIR.is_dir():
        raise FileNotFoundError(f"exchange samples not found at {SAMPLES_DIR}")
    return SAMPLES_DIR
