"""Exact Decimal arithmetic for the engine.

Sums and products are exact (`EXACT` has 200 digits of precision: DECIMAL(38,18) amounts
multiplied by DECIMAL(38,18) prices never round). Only a proportional share — part of a lot's
cost, part of a disposal's proceeds — needs a division: it is kept exact when it ends within 18
decimal places and rounded half-even to 18 places otherwise. `Splitter` hands out shares so that
the last one takes what remains: the parts always add up to the whole, exactly.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

from warehouse.costbasis.model import ZERO

EXACT = Context(
    prec=200, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
QUANTUM = Decimal("1e-18")


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """total × part / whole (whole ≠ 0), exact to 18 decimal places."""
    if part == whole:
        return total
    result = EXACT.divide(EXACT.multiply(total, part), whole)
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        result = result.quantize(QUANTUM, rounding=ROUND_HALF_EVEN, context=EXACT)
    return tidy(result)


def tidy(value: Decimal) -> Decimal:
    """The same number without trailing fractional zeros (never in exponent notation)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=EXACT)
    return value.normalize(EXACT)


class Splitter:
    """Hands out shares of some amounts (proceeds, fees) by quantity; the last share (the one
    that reaches the whole quantity) takes exactly what remains."""

    def __init__(self, quantity: Decimal, *amounts: Decimal) -> None:
        self._quantity = quantity
        self._amounts = list(amounts)

    @property
    def remaining(self) -> Decimal:
        return self._quantity

    def take(self, quantity: Decimal) -> tuple[Decimal, ...]:
        if quantity > self._quantity:
            raise ValueError(f"cannot take {quantity} of {self._quantity}")
        if quantity == self._quantity:
            parts = tuple(self._amounts)
        else:
            parts = tuple(share(amount, quantity, self._quantity) for amount in self._amounts)
        self._quantity = EXACT.subtract(self._quantity, quantity)
        self._amounts = [
            EXACT.subtract(amount, part) for amount, part in zip(self._amounts, parts, strict=True)
        ]
        if self._quantity == ZERO:
            self._amounts = [ZERO for _ in self._amounts]
        return parts
