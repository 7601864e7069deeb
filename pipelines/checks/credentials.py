"""Whether a key and secret are configured at all: a local check, no request sent.

An account sync needs both halves for each exchange it reads; market data (candles, public
trades) needs none. Whether the exchange accepts them is `exchange.ExchangeProbe.credentials`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.checks import CheckRow
from pipelines.checks.failures import credentials_hint
from pipelines.config import Settings


def credentials_rows(
    settings: Settings, exchanges: Sequence[str], *, otherwise: str = ""
) -> list[CheckRow]:
    """One row per exchange: fail without a key and secret, naming where to put them (and
    `otherwise`, another way out)."""
    rows = []
    for name in exchanges:
        if settings.exchange(name).credentials is not None:
            continue
        rows.append(
            CheckRow(
                "credentials",
                name,
                "fail",
                "no API key and secret for the account sync",
                f"set {credentials_hint(name)}{otherwise}",
            )
        )
    return rows
