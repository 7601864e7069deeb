"""Bitstamp, declared: the adapter the registry hands out for `exchange = "bitstamp"`."""

from __future__ import annotations

from pipelines.exchanges import bitstamp_checks
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitstamp_errors import classify_bitstamp

BITSTAMP = Exchange(
    name="bitstamp",
    title="Bitstamp",
    checks=bitstamp_checks.CHECKS,
    classify=classify_bitstamp,
)
