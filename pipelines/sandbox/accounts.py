"""The two simulated accounts (contracts.md §C), built from one run of the account script."""

from __future__ import annotations

from pipelines.sandbox.account_script import AccountScript
from pipelines.sandbox.bitstamp_account import BitstampAccount
from pipelines.sandbox.bitvavo_account import BitvavoAccount
from pipelines.sandbox.market import Market

__all__ = ["BitstampAccount", "BitvavoAccount", "build_accounts"]


def build_accounts(
    *,
    seed: int,
    now_ms: int,
    days: int,
    genesis_ms: int,
    quirks: bool,
    markets: dict[tuple[str, str], Market],
    delisted: dict[tuple[str, str], Market] | None = None,
) -> tuple[BitstampAccount, BitvavoAccount]:
    """Run the script for `[now_ms - days, now_ms]` and dress both ledgers for the wire.

    `delisted` markets are traded by the script but listed by neither account's fee schedule."""
    script = AccountScript(
        seed=seed,
        now_ms=now_ms,
        days=days,
        genesis_ms=genesis_ms,
        quirks=quirks,
        markets={**markets, **(delisted or {})},
    ).run()
    bitstamp_markets = tuple(symbol for exchange, symbol in markets if exchange == "bitstamp")
    bitstamp = BitstampAccount(
        script.bitstamp,
        seed=seed,
        quirks=quirks,
        markets=bitstamp_markets,
        volumes=script.bitstamp_volumes,
        now_ms=now_ms,
    )
    bitvavo = BitvavoAccount(
        script.bitvavo, seed=seed, volumes=script.bitvavo_volumes, now_ms=now_ms
    )
    return bitstamp, bitvavo
