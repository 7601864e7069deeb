"""The account streams' functions, by the stream names the adapters declare.

An adapter lists the streams its exchange offers (`Exchange.ingestion.streams`); the account
ones are run by the functions below, in the order the adapter lists them
(`Ingestion.account_streams`). tests/test_registry.py holds the table and the declarations
to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipelines.exchanges.registry import get
from pipelines.flows import bitstamp_account as bitstamp
from pipelines.flows import bitvavo_account as bitvavo
from pipelines.flows.runtime import Runtime, StreamResult

AccountStream = Callable[[Runtime], StreamResult]

ACCOUNT_STREAMS: Mapping[str, AccountStream] = {
    "bitstamp_ledger": bitstamp.bitstamp_ledger,
    "bitstamp_crypto_transactions": bitstamp.bitstamp_crypto_transactions,
    "bitstamp_snapshots": bitstamp.bitstamp_snapshots,
    "bitvavo_history": bitvavo.bitvavo_history,
    "bitvavo_snapshots": bitvavo.bitvavo_snapshots,
    "bitvavo_trades": bitvavo.bitvavo_trades,
    "bitvavo_deposits": lambda rt: bitvavo.bitvavo_transfers(rt, "deposit"),
    "bitvavo_withdrawals": lambda rt: bitvavo.bitvavo_transfers(rt, "withdrawal"),
    "bitvavo_history_derived": bitvavo.derive_bitvavo_history,
}


def sync_account(rt: Runtime, exchange: str) -> list[StreamResult]:
    """Every account stream of `exchange`, in the order its adapter declares them."""
    streams = get(exchange).ingestion.account_streams()
    return [ACCOUNT_STREAMS[stream.name](rt) for stream in streams]
