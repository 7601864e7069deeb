"""The reconciliation verdict printed: the rows of `reconcile_balances` as a table."""

from __future__ import annotations

from decimal import Decimal

from pipelines.tables import render
from warehouse.rows import Verdict, reconciliation

__all__ = ["Verdict", "format_verdicts", "reconciliation"]


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
