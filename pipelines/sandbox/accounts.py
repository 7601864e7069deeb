"""The two simulated accounts (contracts.md §C), built from one run of the account script."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.sandbox.account_script import AccountScript
from pipelines.sandbox.bitstamp_account import BitstampAccount
from pipelines.sandbox.bitvavo_account import BitvavoAccount

__all__ = ["BitstampAccount", "BitvavoAccount", "build_accounts"]


def build_accounts(
    script: AccountScript, listed: Iterable[tuple[str, str]]
) -> tuple[BitstampAccount, BitvavoAccount]:
    """Dress both ledgers of a script that has run for the wire.

    `listed` holds the (exchange, symbol) of the markets the exchanges list: the delisted markets
    the script also traded are listed by neither account's fee schedule."""
    bitstamp_markets = tuple(symbol for exchange, symbol in listed if exchange == "bitstamp")
    bitstamp = BitstampAccount(
        script.bitstamp,
        seed=script.seed,
        quirks=script.quirks,
        markets=bitstamp_markets,
        volumes=script.bitstamp_volumes,
        now_ms=script.now,
    )
    bitvavo = BitvavoAccount(
        script.bitvavo, seed=script.seed, volumes=script.bitvavo_volumes, now_ms=script.now
    )
    return bitstamp, bitvavo
