"""Bitvavo, declared: the adapter the registry hands out for `exchange = "bitvavo"`."""

from __future__ import annotations

from pipelines.exchanges import bitvavo_checks
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitvavo_errors import classify_bitvavo

BITVAVO = Exchange(
    name="bitvavo",
    title="Bitvavo",
    checks=bitvavo_checks.CHECKS,
    classify=classify_bitvavo,
)
