"""The reconciliation verdict: `reconcile_balances` read back as records, and printed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from pipelines.tables import render


@dataclass(frozen=True)
class Verdict:
    exchange: str
    account: str
    asset: str
    reported: Decimal
    computed: Decimal
    difference: Decimal
    status: str
    diverged_after: str | None
    diverged_after_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def reconciliation(connection: duckdb.DuckDBPyConnection) -> list[Verdict]:
    rows = connection.execute(
        "select exchange, account, asset, reported, computed, difference, status, "
        "diverged_after, diverged_after_at from reconcile_balances "
        "order by exchange, account, asset"
    ).fetchall()
    return [Verdict(*row) for row in rows]


def format_verdicts(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return "Nothing to reconcile: no balance snapshot has landed."
    header = ("exchange", "account", "asset", "reported", "computed", "difference", "status")
    table = [header] + [
        (
            v.exchange,
            v.account,
            v.asset,
            _plain(v.reported),
            _plain(v.computed),
            _plain(v.difference),
            v.status if v.ok else f"MISMATCH (diverged after {_where(v)})",
        )
        for v in verdicts
    ]
    return "\n".join(render(table, right={3, 4, 5}, strip=True))


def _plain(value: Decimal) -> str:
    """Exact, without the trailing zeros of DECIMAL(38,18)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _where(verdict: Verdict) -> str:
    if verdict.diverged_after is None:
        return "the start"
    at = f" at {verdict.diverged_after_at:%Y-%m-%d %H:%M:%S}" if verdict.diverged_after_at else ""
    return f"{verdict.diverged_after}{at}"
