"""The warehouse views the exports and the cost-basis engine read, as empty tables.

Tests that hand-make a warehouse call `create_view_tables(connection)` and insert their rows:
`ledger`, `prices` and `internal_transfers` get the columns (and types) of the views of the same
names, written once here.
"""

from __future__ import annotations

import duckdb

LEDGER = (
    "create table ledger (exchange varchar, account varchar, asset varchar, "
    "amount decimal(38, 18), kind varchar, executed_at timestamptz, reference varchar, "
    "source varchar, event_kind varchar, event_type varchar, market varchar, "
    "sequence bigint, leg integer)"
)
PRICES = (
    "create table prices (asset varchar, currency varchar, priced_at timestamptz, "
    "price decimal(38, 18), source varchar, observed_at timestamptz, staleness interval)"
)
INTERNAL_TRANSFERS = (
    "create table internal_transfers (status varchar, asset varchar, "
    "withdrawal_exchange varchar, withdrawal_account varchar, withdrawal_id varchar, "
    "withdrawn_at timestamptz, withdrawn decimal(38, 18), sent decimal(38, 18), "
    "deposit_exchange varchar, deposit_account varchar, deposit_id varchar, "
    "deposited_at timestamptz, received decimal(38, 18), txid varchar)"
)


def create_view_tables(connection: duckdb.DuckDBPyConnection) -> None:
    for statement in (LEDGER, PRICES, INTERNAL_TRANSFERS):
        connection.execute(statement)
