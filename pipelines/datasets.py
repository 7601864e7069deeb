"""The lake's datasets as the ingestion side fills them: each dataset bound to its record class.

The definitions (name, columns, key, layout) live in `pipelines.lake_datasets`, which imports no
exchange code so that the warehouse can read them; here each is bound to the record class that
feeds it, and records become frames typed as the dataset declares. `record_schema` derives the
columns a record class produces (Decimal → DECIMAL(38,18), datetime → UTC timestamp, `extra` →
JSON text, `movements` → (asset, amount) structs, plus `fetched_at`): a test holds it equal to
the written-out definitions.
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

from pipelines import lake_datasets as defined
from pipelines.exact_json import encode_json
from pipelines.exchanges.bitvavo_match import HistoryMatch
from pipelines.exchanges.frames import FrameRows
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
from pipelines.exchanges.values import to_epoch_us
from pipelines.lake import MONEY, TIMESTAMP, Dataset, LakeError
from pipelines.lake_datasets import GAPS, MOVEMENTS, QUARANTINED_FILES

__all__ = [
    "ALL",
    "BALANCE_SNAPSHOTS",
    "BITSTAMP_LEDGER",
    "BITVAVO_HISTORY",
    "BITVAVO_HISTORY_MATCHES",
    "CANDLES",
    "FEE_SCHEDULES",
    "FILLS",
    "GAPS",
    "MOVEMENTS",
    "OTHER_EVENTS",
    "PUBLIC_TRADES",
    "QUARANTINED_FILES",
    "RECORDS",
    "TRANSFERS",
    "WITHDRAWAL_FEES",
    "RecordDataset",
    "fits_money",
    "record_schema",
]

_QUANTUM = Decimal(1).scaleb(-18)
_MONEY_LIMIT = Decimal(10) ** 20
_DECIMAL_OR_NONE = frozenset({Decimal, type(None)})


@dataclasses.dataclass(frozen=True)
class RecordDataset:
    """A lake dataset fed by one record class."""

    dataset: Dataset
    record: type

    def frame(self, records: Iterable[Any], *, fetched_at: datetime | None = None) -> pl.DataFrame:
        """Records → a frame typed as the dataset declares (`fetched_at` overrides per row).

        A page kept as columns (`FrameRows`) is typed from them, its records never made."""
        if isinstance(records, FrameRows):
            typed = self._typed(records.frame, fetched_at)
            if typed is not None:
                return typed
        rows = list(records)
        # An absent optional key part (a fee schedule for all markets) is stored as "".
        blank_if_none = {k for k in self.dataset.key if self.dataset.schema[k] == pl.String}
        series = []
        for name, dtype in self.dataset.schema.items():
            if name == "fetched_at" and fetched_at is not None:
                values: list[Any] = [fetched_at] * len(rows)
            elif name == "fetched_at":
                values = [getattr(row, name, None) for row in rows]
            elif name == "extra":
                values = [encode_json(dict(row.extra)) if row.extra else "{}" for row in rows]
            elif name == "movements":
                values = [
                    [{"asset": m.asset, "amount": m.amount} for m in row.movements] for row in rows
                ]
            else:
                values = [getattr(row, name) for row in rows]
            if name in blank_if_none:
                values = ["" if value is None else value for value in values]
            series.append(_series(name, values, dtype))
        return pl.DataFrame(series)

    def page_frames(self, pages: Iterable[tuple[Sequence[Any], datetime]]) -> list[pl.DataFrame]:
        """The frames of pages of records, each with its fetch time, in order (for one
        `chunks.combine`): one frame typed at once when every page with rows is kept as
        columns (`FrameRows`; polars then works a few calls per chunk instead of per page),
        else a frame per page. Either way the same rows and values."""
        listed = [(records, fetched_at) for records, fetched_at in pages if len(records)]
        kept = [records for records, _ in listed if isinstance(records, FrameRows)]
        moments = [_aware_micros(fetched_at) for _, fetched_at in listed]
        if len(kept) > 1 and len(kept) == len(listed) and None not in moments:
            # pages that hold only some of their columns, all completed alike: completed at once
            complete = kept[0].complete
            alike = complete is not None and all(page.complete == complete for page in kept)
            try:  # (pages of another column layout do not concatenate: typed one by one)
                joined = pl.concat([page.held if alike else page.frame for page in kept])
            except pl.exceptions.PolarsError:
                joined = None
            if joined is not None:  # each row's fetch time, its page's
                pairs = zip(kept, moments, strict=True)
                each = [moment for page, moment in pairs for _ in range(len(page))]
                joined = joined.hstack([pl.Series("fetched_at", each, pl.Int64)])
            if joined is not None:
                if alike:
                    assert complete is not None
                    fetched = joined["fetched_at"]
                    joined = complete(joined).hstack([fetched])  # (it makes no fetch time)
                typed = self._typed(joined, pl.col("fetched_at").cast(TIMESTAMP))
                if typed is not None:
                    return [typed]
        return [self.frame(records, fetched_at=fetched_at) for records, fetched_at in listed]

    def _typed(
        self, frame: pl.DataFrame, fetched_at: datetime | pl.Expr | None
    ) -> pl.DataFrame | None:
        """The columns of a `FrameRows` typed as `frame` types its records' values, or None when
        a money column or a naive `fetched_at` needs the record path (see `_money`,
        `_timestamps`). `fetched_at` may be the expression of a column of them."""
        if isinstance(fetched_at, datetime):
            moment = _aware_micros(fetched_at)
            if moment is None:
                return None
            fetched_at = pl.lit(moment, pl.Int64).cast(TIMESTAMP)
        elif fetched_at is None:
            fetched_at = pl.lit(None, pl.Int64).cast(TIMESTAMP)
        money = [name for name, dtype in self.dataset.schema.items() if dtype == MONEY]
        casts = _money_casts(frame, money)
        if casts is None:
            return None
        columns = [
            fetched_at.alias(name) if name == "fetched_at" else casts.get(name, pl.col(name))
            for name in self.dataset.schema
        ]
        try:
            return frame.select(columns)
        except pl.exceptions.InvalidOperationError:
            return None  # over 38 digits: built from Decimals, for the lake to refuse


def _aware_micros(moment: datetime) -> int | None:
    """An aware moment as microseconds since the epoch; None for a naive one."""
    return None if moment.tzinfo is None else to_epoch_us(moment)


def _series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    if dtype == MONEY:
        return _money(name, values)
    if dtype == TIMESTAMP:
        return _timestamps(name, values)
    if dtype == MOVEMENTS:
        for index, movements in enumerate(values):
            for movement in movements:
                if not fits_money(movement["amount"]):
                    raise LakeError(
                        f"column {name} row {index}: {movement['amount']} does not fit "
                        "DECIMAL(38,18) exactly"
                    )
    return pl.Series(name, values, dtype=dtype, strict=True)


def _money(name: str, values: list[Any]) -> pl.Series:
    """Decimals typed exactly as polars infers them from Decimal objects (DECIMAL(38, the most
    places any has)), but read from their fixed-point text, which polars does faster. The
    scale must be the inferred one, not the lake's 18: frames of several pages are concatenated
    to their common type before the lake refuses what DECIMAL(38,18) would round or overflow."""
    if values and set(map(type, values)) <= _DECIMAL_OR_NONE:
        text = pl.Series(name, [None if v is None else format(v, "f") for v in values], pl.String)
        money = _money_text(text)
        if money is not None:
            return money
    # Built with the inferred scale: the lake refuses what DECIMAL(38,18) would round.
    return pl.Series(name, values, dtype=None if values else MONEY, strict=False)


def _money_text(text: pl.Series) -> pl.Series | None:
    """Fixed-point text (of Decimals, or as sent) cast exactly to DECIMAL(38, the most places
    any value has), or None when not all of it fits (or none is there)."""
    frame = text.to_frame()
    casts = _money_casts(frame, [text.name])
    try:
        return None if casts is None else frame.select(*casts.values()).to_series()
    except pl.exceptions.InvalidOperationError:
        return None  # over 38 digits, or not finite: built from Decimals, for the lake to refuse


def _money_casts(frame: pl.DataFrame, names: list[str]) -> dict[str, pl.Expr] | None:
    """Casts of the text columns `names` to DECIMAL(38, the most places a column's values
    have), or None when a column has more than 18 places or no value at all."""
    if not frame.height:
        return None
    found = frame.select(
        *(_places(pl.col(n)).max().alias(f"places {n}") for n in names),
        *(pl.col(n).count().alias(f"count {n}") for n in names),
    ).row(0)
    casts = {}
    for name, most, count in zip(names, found, found[len(names) :], strict=False):
        scale = most if isinstance(most, int) else 0  # None: no value has a point
        if scale > MONEY.scale or count == 0:
            return None
        casts[name] = pl.col(name).cast(pl.Decimal(38, scale), strict=True)
    return casts


def _places(text: pl.Expr) -> pl.Expr:
    """The digits after the point of fixed-point text (null without a point)."""
    return text.str.len_bytes() - text.str.find(".", literal=True) - 1


def _timestamps(name: str, values: list[Any]) -> pl.Series:
    """Aware datetimes as UTC microseconds (polars converts datetime objects slowly)."""
    try:
        micros = [None if v is None else to_epoch_us(v) for v in values]
    except TypeError:  # a naive datetime, or not a datetime at all: polars decides
        return pl.Series(name, values, dtype=TIMESTAMP, strict=True)
    return pl.Series(name, micros, pl.Int64).cast(TIMESTAMP)


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
    """The columns `RecordDataset.frame` makes of `record`'s fields, in their order."""
    hints = typing.get_type_hints(record)
    schema = {f.name: _dtype(hints[f.name]) for f in dataclasses.fields(record)}
    if with_fetched_at and "fetched_at" not in schema:
        schema["fetched_at"] = TIMESTAMP
    return schema


RECORDS: Mapping[str, type] = {
    "candles": Candle,
    "public_trades": PublicTrade,
    "fills": Fill,
    "transfers": Transfer,
    "other_events": OtherEvent,
    "bitstamp_ledger": LedgerEntry,
    "bitvavo_history": BitvavoHistoryItem,
    "bitvavo_history_matches": HistoryMatch,
    "balance_snapshots": BalanceSnapshot,
    "fee_schedules": FeeSchedule,
    "withdrawal_fees": WithdrawalFee,
}
"""The record class that feeds each dataset of `pipelines.lake_datasets.ALL`."""

ALL: Mapping[str, RecordDataset] = {
    name: RecordDataset(dataset, RECORDS[name]) for name, dataset in defined.ALL.items()
}

CANDLES = ALL["candles"]
PUBLIC_TRADES = ALL["public_trades"]
FILLS = ALL["fills"]
TRANSFERS = ALL["transfers"]
OTHER_EVENTS = ALL["other_events"]
BITSTAMP_LEDGER = ALL["bitstamp_ledger"]
BITVAVO_HISTORY = ALL["bitvavo_history"]
BITVAVO_HISTORY_MATCHES = ALL["bitvavo_history_matches"]
BALANCE_SNAPSHOTS = ALL["balance_snapshots"]
FEE_SCHEDULES = ALL["fee_schedules"]
WITHDRAWAL_FEES = ALL["withdrawal_fees"]
