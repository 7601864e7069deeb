"""Running exports: `export(connection, formats, options, out)` builds each format and writes it
with its sidecar; `run_exports` does the same format by format, reporting a format that cannot
be built (a missing price, a currency the warehouse cannot value in) without stopping the others.

A format is built completely before any of its files is written, so a failure leaves no
half-written export behind. The sidecars of gains and summary say whether their figures are
`provisional` (a UK tax year whose 30 days after its end the data do not reach yet), and the
report carries what the screen must show: that reason, and a summary's figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import localcontext
from pathlib import Path
from typing import Any

import duckdb

from warehouse.costbasis.exact import EXACT
from warehouse.costbasis.model import MissingPriceError, UnsupportedCurrencyError
from warehouse.costbasis.prices import PriceBook
from warehouse.exports import (
    bittytax,
    cointracking,
    gains,
    holdings,
    income,
    koinly,
    ledger,
    summary,
)
from warehouse.exports.context import Context
from warehouse.exports.options import FORMATS, REPORTS, ExportOptionError, ExportOptions
from warehouse.exports.writer import Export, Written, write_export

BUILDERS: dict[str, Callable[[Context], Export]] = {
    "ledger": ledger.build,
    "gains": gains.build,
    "income": income.build,
    "holdings": holdings.build,
    "koinly": koinly.build,
    "cointracking": cointracking.build,
    "bittytax": bittytax.build,
    "summary": summary.build,
}
# Formats whose figures a later acquisition can change (the uk 30-day rule).
MATCHED = ("gains", "summary", "bittytax")  # their figures need the 30 days after a UK year


@dataclass
class Report:
    written: list[Written] = field(default_factory=list)
    failed: list[tuple[str, Exception]] = field(default_factory=list)
    shown: dict[str, list[str]] = field(default_factory=dict)  # format: lines for the screen

    @property
    def ok(self) -> bool:
        return not self.failed


def export(
    connection: duckdb.DuckDBPyConnection,
    formats: Sequence[str],
    options: ExportOptions,
    out: Path,
    *,
    loaded: PriceBook | None = None,
) -> list[Written]:
    """Build and write `formats` in order; the first failure raises. `out` is a directory, or
    a '.csv' file for one format that writes one file (`loaded`: as for `run_exports`)."""
    report = run_exports(connection, formats, options, out, stop=True, loaded=loaded)
    return report.written


def run_exports(
    connection: duckdb.DuckDBPyConnection,
    formats: Sequence[str],
    options: ExportOptions,
    out: Path,
    *,
    stop: bool = False,
    loaded: PriceBook | None = None,
) -> Report:
    """Build and write each of `formats`; a format failing with a missing price or an
    unsupported currency is recorded in the report (raised with `stop`) and the rest go on.
    `loaded`: the `prices` view already read in the options' currency (see `Context`)."""
    unknown = [f for f in formats if f not in BUILDERS]
    if unknown:
        names = ", ".join((*FORMATS, *REPORTS))
        raise ExportOptionError(f"unknown format {unknown[0]!r}: one of {names}")
    file = out if out.suffix.lower() == ".csv" else None
    if file is not None and len(formats) != 1:
        raise ExportOptionError(f"{len(formats)} formats cannot share one file: give a directory")
    context = Context(connection, options, loaded=loaded)
    common = describe(options)
    report = Report()
    for name in formats:
        try:
            # Totals in sidecars sum many DECIMAL(38,18) values: Python's default 28 significant
            # digits would round them, the engine's exact context does not.
            with localcontext(EXACT):
                built = BUILDERS[name](context)
            status: dict[str, Any] = {}
            shown: list[str] = []
            if name in MATCHED:
                reason = gains.provisional(context)
                status = {"provisional": bool(reason)}
                if reason:
                    status["provisional_reason"] = reason
                    shown.append(f"PROVISIONAL: {reason}")
            if name == "summary":
                shown += summary.lines(built)
            report.written.append(write_export(built, out, {**common, **status}, file=file))
            if shown:
                report.shown[name] = shown
        except (MissingPriceError, UnsupportedCurrencyError) as error:
            if stop:
                raise
            report.failed.append((name, error))
    return report


def describe(options: ExportOptions) -> dict[str, Any]:
    """What every sidecar says: currency, method, lots, period and its timezone."""
    return {
        "generator": "tally export",
        "currency": options.currency,
        "method": options.method,
        "lots": options.lots,
        "year": options.year,
        "period": options.period.describe(),
    }


def format_written(report: Report) -> str:
    """The files written: per format its rows, then each file on its own line, then what the
    screen must show (a provisional year, a summary's figures)."""
    lines = []
    for written in report.written:
        lines.append(f"{written.format}: {written.rows} rows")
        lines += [f"  {path}" for path in written.files]
        lines += [f"  {line}" for line in report.shown.get(written.format, [])]
    return "\n".join(lines)


def format_failures(report: Report) -> str:
    """Every format not written and why, a missing price listed in full."""
    return "\n".join(
        f"{name}: NOT WRITTEN: {describe_error(error)}" for name, error in report.failed
    )


def describe_error(error: Exception) -> str:
    if isinstance(error, MissingPriceError):
        listed = "\n".join(f"    {asset} at {at.isoformat()}" for asset, at in error.missing)
        currency = f" {error.currency}" if error.currency else ""
        return f"no{currency} price for {len(error.missing)} (asset, time):\n{listed}"
    return str(error)
