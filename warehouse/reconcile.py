"""The reconciliation verdict written out: the rows of `reconcile_balances` as a table of text
(`format_verdicts`) or of markdown (`verdicts_markdown`, for a Prefect artifact)."""

from __future__ import annotations

from decimal import Decimal

from pipelines.tables import render
from warehouse.rows import Verdict, reconciliation

__all__ = ["Verdict", "format_verdicts", "reconciliation", "verdict_headline", "verdicts_markdown"]

_HEADER = ("exchange", "account", "asset", "reported", "computed", "difference", "status")


def format_verdicts(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return _NOTHING
    table = [_HEADER, *map(_cells, verdicts)]
    return "\n".join(render(table, right={3, 4, 5}, strip=True))


def verdict_headline(verdicts: list[Verdict]) -> str:
    """The verdict in one sentence."""
    if not verdicts:
        return _NOTHING
    failed = sum(not v.ok for v in verdicts)
    if failed:
        return f"{failed} of {len(verdicts)} balance(s) do not reconcile."
    return f"All {len(verdicts)} balances reconcile exactly."


def verdicts_markdown(verdicts: list[Verdict]) -> str:
    """The headline, then the table in markdown (numbers right-aligned)."""
    lines = [f"**{verdict_headline(verdicts)}**"]
    if verdicts:
        lines += [
            "",
            "| " + " | ".join(_HEADER) + " |",
            "|" + "|".join("---:" if i in (3, 4, 5) else "---" for i in range(len(_HEADER))) + "|",
        ]
        lines += ["| " + " | ".join(_cells(v)) + " |" for v in verdicts]
    return "\n".join(lines)


_NOTHING = "Nothing to reconcile: no balance snapshot has landed."


def _cells(v: Verdict) -> tuple[str, ...]:
    return (
        v.exchange,
        v.account,
        v.asset,
        _plain(v.reported),
        _plain(v.computed),
        _plain(v.difference),
        v.status if v.ok else f"MISMATCH (diverged after {_where(v)})",
    )


def _plain(value: Decimal) -> str:
    """Exact, without the trailing zeros of DECIMAL(38,18)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _where(verdict: Verdict) -> str:
    if verdict.diverged_after is None:
        return "the start"
    at = f" at {verdict.diverged_after_at:%Y-%m-%d %H:%M:%S}" if verdict.diverged_after_at else ""
    return f"{verdict.diverged_after}{at}"
