"""The lake's datasets: name, columns and their types, key, partitions and sort order.

The definitions alone, written out: the warehouse binds its views to them and reads no exchange
code. What each column holds: Decimal money is DECIMAL(38,18), times are UTC timestamps, `extra`
is the fields the exchange sent that the record does not name (JSON text), `raw` the row exactly
as the exchange sent it, `movements` a list of (asset, amount) structs, and every row carries
`fetched_at`, the time its response arrived. The ingestion side (`pipelines.datasets`) binds each
dataset to the record class that feeds it; a test holds the two to the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from pipelines.lake import MONEY, TIMESTAMP, Dataset

STRING = pl.String()
INT64 = pl.Int64()
BOOLEAN = pl.Boolean()
MOVEMENTS = pl.List(pl.Struct({"asset": pl.String, "amount": MONEY}))

CANDLES = Dataset(
    "candles",
    {
        "exchange": STRING,
        "market": STRING,
        "interval": STRING,
        "open_time": TIMESTAMP,
        "open": MONEY,
        "high": MONEY,
        "low": MONEY,
        "close": MONEY,
        "volume": MONEY,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "market", "interval", "open_time"),
    partition_by=("exchange", "market", "interval"),
    sort_by=("open_time",),
)
PUBLIC_TRADES = Dataset(
    "public_trades",
    {
        "exchange": STRING,
        "market": STRING,
        "trade_id": STRING,
        "traded_at": TIMESTAMP,
        "price": MONEY,
        "amount": MONEY,
        "side": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "market", "trade_id"),
    partition_by=("exchange", "market"),
    sort_by=("traded_at", "trade_id"),
)
FILLS = Dataset(
    "fills",
    {
        "exchange": STRING,
        "account": STRING,
        "market": STRING,
        "base_asset": STRING,
        "quote_asset": STRING,
        "fill_id": STRING,
        "order_id": STRING,
        "side": STRING,
        "base_amount": MONEY,
        "quote_amount": MONEY,
        "price": MONEY,
        "fee": MONEY,
        "fee_asset": STRING,
        "taker": BOOLEAN,
        "settled": BOOLEAN,
        "executed_at": TIMESTAMP,
        "source": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "account", "source", "market", "fill_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "fill_id"),
)
TRANSFERS = Dataset(
    "transfers",
    {
        "exchange": STRING,
        "account": STRING,
        "transfer_id": STRING,
        "kind": STRING,
        "asset": STRING,
        "amount": MONEY,
        "fee": MONEY,
        "fee_asset": STRING,
        "address": STRING,
        "txid": STRING,
        "network": STRING,
        "status": STRING,
        "executed_at": TIMESTAMP,
        "source": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "account", "source", "transfer_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "transfer_id"),
)
OTHER_EVENTS = Dataset(
    "other_events",
    {
        "exchange": STRING,
        "account": STRING,
        "event_id": STRING,
        "event_type": STRING,
        "kind": STRING,
        "movements": MOVEMENTS,
        "executed_at": TIMESTAMP,
        "source": STRING,
        "fee": MONEY,
        "fee_asset": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "account", "source", "event_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "event_id"),
)
BITSTAMP_LEDGER = Dataset(
    "bitstamp_ledger",
    {
        "account": STRING,
        "entry_id": INT64,
        "type_code": STRING,
        "kind": STRING,
        "executed_at": TIMESTAMP,
        "movements": MOVEMENTS,
        "fee": MONEY,
        "fee_asset": STRING,
        "pair": STRING,
        "price": MONEY,
        "order_id": STRING,
        "side": STRING,
        "source": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("account", "entry_id"),
    partition_by=("account",),
    sort_by=("entry_id",),
)
BITVAVO_HISTORY = Dataset(
    "bitvavo_history",
    {
        "account": STRING,
        "transaction_id": STRING,
        "type": STRING,
        "executed_at": TIMESTAMP,
        "price_currency": STRING,
        "price_amount": MONEY,
        "sent_currency": STRING,
        "sent_amount": MONEY,
        "received_currency": STRING,
        "received_amount": MONEY,
        "fees_currency": STRING,
        "fees_amount": MONEY,
        "address": STRING,
        "source": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("account", "transaction_id"),
    partition_by=("account",),
    sort_by=("executed_at", "transaction_id"),
)
BITVAVO_HISTORY_MATCHES = Dataset(
    "bitvavo_history_matches",
    {
        "account": STRING,
        "transaction_id": STRING,
        "executed_at": TIMESTAMP,
        "market": STRING,
        "side": STRING,
        "fill_id": STRING,
        "order_id": STRING,
        "status": STRING,
        "signal": STRING,
        "problem": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("account", "transaction_id", "fill_id"),
    partition_by=("account",),
    sort_by=("executed_at", "transaction_id", "fill_id"),
)
"""Derived: which `/account/history` buys/sells are which `/v2/trades` fills (`bitvavo_match`)."""
BALANCE_SNAPSHOTS = Dataset(
    "balance_snapshots",
    {
        "exchange": STRING,
        "account": STRING,
        "asset": STRING,
        "total": MONEY,
        "available": MONEY,
        "reserved": MONEY,
        "taken_at": TIMESTAMP,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "account", "asset", "taken_at"),
    partition_by=("exchange", "account"),
    sort_by=("taken_at", "asset"),
)
FEE_SCHEDULES = Dataset(
    "fee_schedules",
    {
        "exchange": STRING,
        "account": STRING,
        "market": STRING,
        "maker": MONEY,
        "taker": MONEY,
        "taken_at": TIMESTAMP,
        "tier": STRING,
        "volume": MONEY,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "account", "market", "taken_at"),
    partition_by=("exchange", "account"),
    sort_by=("taken_at",),
)
WITHDRAWAL_FEES = Dataset(
    "withdrawal_fees",
    {
        "exchange": STRING,
        "asset": STRING,
        "fee": MONEY,
        "network": STRING,
        "taken_at": TIMESTAMP,
        "account": STRING,
        "extra": STRING,
        "raw": STRING,
        "fetched_at": TIMESTAMP,
    },
    key=("exchange", "asset", "network", "taken_at"),
    partition_by=("exchange",),
    sort_by=("taken_at", "asset"),
)

ALL: Mapping[str, Dataset] = {
    d.name: d
    for d in (
        CANDLES,
        PUBLIC_TRADES,
        FILLS,
        TRANSFERS,
        OTHER_EVENTS,
        BITSTAMP_LEDGER,
        BITVAVO_HISTORY,
        BITVAVO_HISTORY_MATCHES,
        BALANCE_SNAPSHOTS,
        FEE_SCHEDULES,
        WITHDRAWAL_FEES,
    )
}
"""The datasets fed by exchange records (`pipelines.datasets` binds each to its record class)."""

GAPS = Dataset(
    "gaps",
    {
        "exchange": STRING,
        "stream": STRING,
        "market": STRING,
        "gap_start": TIMESTAMP,
        "gap_end": TIMESTAMP,
        "reason": STRING,
        "detected_at": TIMESTAMP,
    },
    key=("exchange", "stream", "market", "gap_start"),
    partition_by=("exchange",),
    sort_by=("stream", "market", "gap_start"),
)
"""Ranges a stream knows it can never fill (Bitstamp public trades older than the rolling
window), with the reason. A window that failed is not a gap: it stays missing and is retried."""

QUARANTINED_FILES = Dataset(
    "quarantined_files",
    {
        "path": STRING,  # relative to the lake
        "quarantined_at": TIMESTAMP,
        "dataset": STRING,
        "partition": STRING,  # e.g. "exchange=bitstamp/account=main"
        "stem": STRING,
        "exchange": STRING,
        "market": STRING,
        "interval": STRING,
        "window_start": TIMESTAMP,  # the window its name tells
        "window_end": TIMESTAMP,
        "first_id": INT64,  # the id range its name tells
        "last_id": INT64,
        "rows": INT64,  # what it held when last verified (null: never verified)
        "first_at": TIMESTAMP,
        "last_at": TIMESTAMP,
        "size": INT64,
        "sha256": STRING,
        "reason": STRING,
        "refetchable": BOOLEAN,
        "refetch": STRING,  # what happens next
        "held_at": STRING,  # relative to the data directory
        "restored_at": TIMESTAMP,
    },
    key=("path", "quarantined_at"),
    sort_by=("quarantined_at", "path"),
)
"""The index of the quarantine notes (one row per file quarantined; `pipelines.quarantine`
writes it from the notes), read by the warehouse and by the streams for their holes."""
