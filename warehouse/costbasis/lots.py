"""The lot book behind fifo, lifo, hifo, de and nl: open lots per (wallet key, asset), kept
sorted in the method's identification order, moved between wallets in FIFO order.

A disposal consumes lots from the front of that order (from the back for lifo), so the lots it
empties are always a run at that end: taking is proportional to the lots touched, not held.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from warehouse.costbasis.exact import EXACT, share
from warehouse.costbasis.model import ZERO, Lot, LotUse


@dataclass
class OpenLot:
    asset: str
    wallet: str
    acquired_at: datetime
    quantity: Decimal
    cost: Decimal
    reference: str
    sequence: int  # creation order: the tie-break after acquired_at
    sort_key: Any = field(default=None, compare=False)

    def frozen(self) -> Lot:
        return Lot(
            self.asset, self.wallet, self.acquired_at, self.quantity, self.cost, self.reference
        )


def arrival(lot: OpenLot) -> tuple[datetime, int]:
    return (lot.acquired_at, lot.sequence)


def dearest(lot: OpenLot) -> tuple[Fraction, datetime, int]:
    """Highest unit cost first (exact, as acquired), then first in."""
    unit = Fraction(lot.cost) / Fraction(lot.quantity) if lot.quantity else Fraction(0)
    return (-unit, lot.acquired_at, lot.sequence)


@dataclass(frozen=True)
class Order:
    """How a disposal picks lots: ascending `key`, or descending when `reverse`."""

    key: Callable[[OpenLot], Any]
    reverse: bool = False


FIRST_IN = Order(arrival)
ORDERS: dict[str, Order] = {"fifo": FIRST_IN, "lifo": Order(arrival, True), "hifo": Order(dearest)}


class LotBook:
    def __init__(self, order: Order) -> None:
        self._order = order
        self._lots: dict[tuple[str, str], list[OpenLot]] = {}
        self._sequence = 0

    def add(
        self,
        wallet: str,
        asset: str,
        acquired_at: datetime,
        quantity: Decimal,
        cost: Decimal,
        reference: str,
    ) -> None:
        self._sequence += 1
        lot = OpenLot(asset, wallet, acquired_at, quantity, cost, reference, self._sequence)
        lot.sort_key = self._order.key(lot)
        held = self._lots.setdefault((wallet, asset), [])
        if held and held[-1].sort_key > lot.sort_key:
            bisect.insort(held, lot, key=lambda open_lot: open_lot.sort_key)
        else:
            held.append(lot)

    def take(self, wallet: str, asset: str, quantity: Decimal) -> tuple[list[LotUse], Decimal]:
        """Consume up to `quantity` in the book's order: the lot parts used and the shortfall."""
        held = self._lots.get((wallet, asset), [])
        ordered = reversed(held) if self._order.reverse else held
        uses, needed = _consume(ordered, quantity)
        emptied = sum(1 for use in uses if use.emptied)
        if emptied and self._order.reverse:
            del held[len(held) - emptied :]
        elif emptied:
            del held[:emptied]
        return [use.part for use in uses], needed

    def move(
        self, wallet: str, to_wallet: str, asset: str, quantity: Decimal
    ) -> tuple[list[LotUse], Decimal]:
        """Move up to `quantity` from `wallet` to `to_wallet`, oldest lots first, keeping each
        lot's acquisition time, cost and reference; returns the parts moved and the shortfall."""
        held = self._lots.get((wallet, asset), [])
        in_arrival = held if self._order == FIRST_IN else sorted(held, key=arrival)
        uses, shortfall = _consume(in_arrival, quantity)
        if any(use.emptied for use in uses):
            self._lots[(wallet, asset)] = [lot for lot in held if lot.quantity != ZERO]
        for use in uses:
            part = use.part
            self.add(
                to_wallet, asset, part.acquired_at, part.quantity, part.cost, part.lot_reference
            )
        return [use.part for use in uses], shortfall

    def open_lots(self) -> list[Lot]:
        lots = [lot for held in self._lots.values() for lot in held if lot.quantity != ZERO]
        lots.sort(key=lambda lot: (lot.asset, lot.wallet, lot.acquired_at, lot.sequence))
        return [lot.frozen() for lot in lots]


@dataclass(frozen=True)
class _Use:
    part: LotUse
    emptied: bool


def _consume(lots: Iterable[OpenLot], quantity: Decimal) -> tuple[list[_Use], Decimal]:
    uses: list[_Use] = []
    needed = quantity
    for lot in lots:
        if needed == ZERO:
            break
        used = min(needed, lot.quantity)
        cost = lot.cost if used == lot.quantity else share(lot.cost, used, lot.quantity)
        lot.quantity = EXACT.subtract(lot.quantity, used)
        lot.cost = EXACT.subtract(lot.cost, cost)
        needed = EXACT.subtract(needed, used)
        uses.append(_Use(LotUse(lot.reference, lot.acquired_at, used, cost), lot.quantity == ZERO))
    return uses, needed
