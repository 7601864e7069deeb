"""One exchange's rows → records: what both exchanges' parsers do alike.

`Rows` reads the rows of a response as `RowReader`s whose errors name the exchange, the
endpoint and the row, and builds the records whose rows both exchanges shape alike (a market, a
deposit or withdrawal), each keeping its row's unknown fields and text (`RowReader.kept`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypedDict, Unpack

from pipelines.exchanges.records import MarketInfo, Transfer, TransferKind
from pipelines.exchanges.values import RowParseError, RowReader, rows_of


@dataclass(frozen=True, slots=True)
class MarketFields:
    """The fields of an exchange's market rows that `MarketInfo` takes as they are."""

    status: str
    base_decimals: str
    quote_decimals: str
    price_precision: str | None = None


class TransferNames(TypedDict):
    """What `Rows.transfer` takes as it is given."""

    account: str
    transfer_id: str
    kind: TransferKind
    amount: Decimal
    address: str | None
    txid: str | None
    executed_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class Rows:
    """One exchange's row readers and record builders: every error names `exchange`."""

    exchange: str

    def reader(self, endpoint: str, index: int | None, value: object) -> RowReader:
        return RowReader(self.exchange, endpoint, index, value)

    def each(self, endpoint: str, payload: object) -> Iterator[RowReader]:
        """A reader for each row of a JSON array, in order (a RowParseError if it is none)."""
        exchange = self.exchange
        for index, value in enumerate(rows_of(exchange, endpoint, payload)):
            yield RowReader(exchange, endpoint, index, value)

    def error(self, endpoint: str, index: int | None, reason: str) -> RowParseError:
        return RowParseError(self.exchange, endpoint, index, reason)

    def market(
        self,
        row: RowReader,
        fields: MarketFields,
        *,
        symbol: str,
        market: str,
        base: str,
        quote: str,
    ) -> MarketInfo:
        """A market row, its names as given; the rest is read as `fields` says, in its order."""
        return MarketInfo(
            exchange=self.exchange,
            market=market,
            symbol=symbol,
            base_asset=base,
            quote_asset=quote,
            status=row.optional_text(fields.status),
            base_decimals=row.optional_integer(fields.base_decimals),
            quote_decimals=row.optional_integer(fields.quote_decimals),
            price_precision=(
                None
                if fields.price_precision is None
                else row.optional_integer(fields.price_precision)
            ),
            **row.kept(),
        )

    def transfer(
        self, row: RowReader, asset: str, fee: Decimal | None, **names: Unpack[TransferNames]
    ) -> Transfer:
        """A deposit or withdrawal row: the fee is in the moved asset; ``network`` and ``status``
        are read last, as sent."""
        return Transfer(
            exchange=self.exchange,
            asset=asset,
            fee=fee,
            fee_asset=asset if fee is not None else None,
            network=row.optional_text("network"),
            status=row.optional_text("status"),
            **names,
            **row.kept(),
        )
