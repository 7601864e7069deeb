"""Bitvavo, declared: the adapter the registry hands out for `exchange = "bitvavo"`."""

from __future__ import annotations

from pipelines.exchanges import bitvavo_checks
from pipelines.exchanges.adapter import Exchange

BITVAVO = Exchange(
    name="bitvavo",
    title="Bitvavo",
    checks=bitvavo_checks.CHECKS,
)
