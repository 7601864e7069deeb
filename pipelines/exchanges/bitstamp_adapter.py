"""Bitstamp, declared: the adapter the registry hands out for `exchange = "bitstamp"`."""

from __future__ import annotations

from pipelines.exchanges import bitstamp_checks
from pipelines.exchanges.adapter import Exchange

BITSTAMP = Exchange(
    name="bitstamp",
    title="Bitstamp",
    checks=bitstamp_checks.CHECKS,
)
