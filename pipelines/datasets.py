"""The lake's datasets: which record lands where, under which key, and how records become frames.

Each dataset's columns are derived from its record class, so a field added to a record lands
without touching this module: Decimal → DECIMAL(38,18), datetime → UTC timestamp, `extra` → the
unknown fields as JSON text, `raw` → the row exactly as the exchange sent it, `movements` → a list
of (asset, amount) structs. Every row also carries `fetched_at`, the time its response arrived.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl

from pipelines.exact_json import encode_json
from pipelines.exchanges.bitvavo_match import HistoryMatch
from pipelines.exchanges.records import (
    BalanceSnapshot,
    BitvavoHistoryItem,
    Candle,
    FeeSchedule,
    Fill,
    LedgerEntry,
    Movement,
    OtherEvent,
    PublicTrade,
    Transfer,
    WithdrawalFee,
)
from pipelines.lake import MONEY, TIMESTAMP, Dataset, LakeError

_QUANTUM = Decimal(1).scaleb(-18)
_MONEY_LIMIT = Decimal(10) ** 20
MOVEMENTS = pl.List(pl.Struct({"asset": pl.String, "amount": MONEY}))


@dataclasses.dataclass(frozen=True)
class RecordDataset:
    """A lake dataset fed by one record class."""

    dataset: Dataset
    record: type

    def frame(self, records: Iterable[Any], *, fetched_at: datetime | None = None) -> pl.DataFrame:
        """Records → a frame typed as the dataset declares (`fetched_at` overrides per row)."""
        rows = list(records)
        columns: dict[str, list[Any]] = {name: [] for name in self.dataset.schema}
        # An absent optional key part (a fee schedule for all markets) is stored as "".
        blank_if_none = {k for k in self.dataset.key if self.dataset.schema[k] == pl.String}
        for row in rows:
            for name in columns:
                if name == "fetched_at":
                    value = fetched_at if fetched_at is not None else getattr(row, name, None)
                elif name == "extra":
                    value = encode_json(dict(row.extra))
                elif name == "movements":
                    value = [{"asset": m.asset, "amount": m.amount} for m in row.movements]
                else:
                    value = getattr(row, name)
                if value is None and name in blank_if_none:
                    value = ""
                columns[name].append(value)
        return pl.DataFrame(
            {
                name: _series(name, values, dtype)
                for (name, dtype), values in zip(
                    self.dataset.schema.items(), columns.values(), strict=True
                )
            }
        )


def _series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    if dtype == MONEY:
        # Built with the inferred scale: the lake refuses what DECIMAL(38,18) would round.
        return pl.Series(name, values, dtype=None if values else dtype, strict=False)
    if dtype == MOVEMENTS:
        for index, movements in enumerate(values):
            for movement in movements:
                if not fits_money(movement["amount"]):
                    raise LakeError(
                        f"column {name} row {index}: {movement['amount']} does not fit "
                        "DECIMAL(38,18) exactly"
                    )
    return pl.Series(name, values, dtype=dtype, strict=True)


def fits_money(value: Decimal) -> bool:
    """True when DECIMAL(38,18) holds `value` without rounding or overflow."""
    return value == value.quantize(_QUANTUM) and abs(value) < _MONEY_LIMIT


def _dtype(hint: Any) -> pl.DataType:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _dtype(inner[0])
    if origin is typing.Literal:
        return pl.String()
    if hint is str:
        return pl.String()
    if hint is Decimal:
        return MONEY
    if hint is datetime:
        return TIMESTAMP
    if hint is bool:
        return pl.Boolean()
    if hint is int:
        return pl.Int64()
    if origin is tuple and typing.get_args(hint)[0] is Movement:
        return MOVEMENTS
    if origin in (Mapping, dict) or hint is Mapping:
        return pl.String()  # JSON text
    raise TypeError(f"no lake type for {hint!r}")


def record_schema(record: type, *, with_fetched_at: bool = True) -> dict[str, pl.DataType]:
    hints = typing.get_type_hints(record)
    schema = {f.name: _dtype(hints[f.name]) for f in dataclasses.fields(record)}
    if with_fetched_at and "fetched_at" not in schema:
        schema["fetched_at"] = TIMESTAMP
    return schema


def _define(
    name: str,
    record: type,
    key: Sequence[str],
    partition_by: Sequence[str],
    sort_by: Sequence[str] = (),
) -> RecordDataset:
    return RecordDataset(
        Dataset(name, record_schema(record), tuple(key), tuple(partition_by), tuple(sort_by)),
        record,
    )


CANDLES = _define(
    "candles",
    Candle,
    key=("exchange", "market", "interval", "open_time"),
    partition_by=("exchange", "market", "interval"),
    sort_by=("open_time",),
)
PUBLIC_TRADES = _define(
    "public_trades",
    PublicTrade,
    key=("exchange", "market", "trade_id"),
    partition_by=("exchange", "market"),
    sort_by=("traded_at", "trade_id"),
)
FILLS = _define(
    "fills",
    Fill,
    key=("exchange", "account", "source", "market", "fill_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "fill_id"),
)
TRANSFERS = _define(
    "transfers",
    Transfer,
    key=("exchange", "account", "source", "transfer_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "transfer_id"),
)
OTHER_EVENTS = _define(
    "other_events",
    OtherEvent,
    key=("exchange", "account", "source", "event_id"),
    partition_by=("exchange", "account"),
    sort_by=("executed_at", "event_id"),
)
BITSTAMP_LEDGER = _define(
    "bitstamp_ledger",
    LedgerEntry,
    key=("account", "entry_id"),
    partition_by=("account",),
    sort_by=("entry_id",),
)
BITVAVO_HISTORY = _define(
    "bitvavo_history",
    BitvavoHistoryItem,
    key=("account", "transaction_id"),
    partition_by=("account",),
    sort_by=("executed_at", "transaction_id"),
)
BITVAVO_HISTORY_MATCHES = _define(
    "bitvavo_history_matches",
    HistoryMatch,
    key=("account", "transaction_id", "fill_id"),
    partition_by=("account",),
    sort_by=("executed_at", "transaction_id", "fill_id"),
)
"""Derived: which `/account/history` buys/sells are which `/v2/trades` fills (`bitvavo_match`)."""
BALANCE_SNAPSHOTS = _define(
    "balance_snapshots",
    BalanceSnapshot,
    key=("exchange", "account", "asset", "taken_at"),
    partition_by=("exchange", "account"),
    sort_by=("taken_at", "asset"),
)
FEE_SCHEDULES = _define(
    "fee_schedules",
    FeeSchedule,
    key=("exchange", "account", "market", "taken_at"),
    partition_by=("exchange", "account"),
    sort_by=("taken_at",),
)
WITHDRAWAL_FEES = _define(
    "withdrawal_fees",
    WithdrawalFee,
    key=("exchange", "asset", "network", "taken_at"),
    partition_by=("exchange",),
    sort_by=("taken_at", "asset"),
)

ALL: Mapping[str, RecordDataset] = {
    d.dataset.name: d
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


GAPS = Dataset(
    "gaps",
    {
        "exchange": pl.String(),
        "stream": pl.String(),
        "market": pl.String(),
        "gap_start": TIMESTAMP,
        "gap_end": TIMESTAMP,
        "reason": pl.String(),
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
        "path": pl.String(),  # relative to the lake
        "quarantined_at": TIMESTAMP,
        "dataset": pl.String(),
        "partition": pl.String(),  # e.g. "exchange=bitstamp/account=main"
        "stem": pl.String(),
        "exchange": pl.String(),
        "market": pl.String(),
        "interval": pl.String(),
        "window_start": TIMESTAMP,  # the window its name tells
        "window_end": TIMESTAMP,
        "first_id": pl.Int64(),  # the id range its name tells
        "last_id": pl.Int64(),
        "rows": pl.Int64(),  # what it held when last verified (null: never verified)
        "first_at": TIMESTAMP,
        "last_at": TIMESTAMP,
        "size": pl.Int64(),
        "sha256": pl.String(),
        "reason": pl.String(),
        "refetchable": pl.Boolean(),
        "refetch": pl.String(),  # what happens next
        "held_at": pl.String(),  # relative to the data directory
        "restored_at": TIMESTAMP,
    },
    key=("path", "quarantined_at"),
    sort_by=("quarantined_at", "path"),
)
"""The index of the quarantine notes (one row per file quarantined; `pipelines.quarantine`
writes it from the notes), read by the warehouse and by the streams for their holes."""
