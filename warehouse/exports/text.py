"""How values are written into export files: decimals as plain digits, times in fixed formats.

Every writer goes through these, so that the same lake always gives byte-identical files.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

# Wide enough that normalising a DECIMAL(38,18) value or an exact product never rounds it.
WIDE = Context(prec=200, rounding=ROUND_HALF_EVEN)


def plain(value: Decimal | int | None) -> str:
    """Plain decimal digits, trailing fractional zeros removed, never an exponent; '' for None."""
    if value is None:
        return ""
    number = Decimal(value)
    if number == 0:
        return "0"
    if number == number.to_integral_value():
        return format(number.quantize(Decimal(1), context=WIDE), "f")
    return format(number.normalize(WIDE), "f")


def iso_utc(at: datetime) -> str:
    """'2024-03-01T12:00:00.123000Z': UTC, microseconds always written (fixed width)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_utc(at: datetime) -> str:
    """'2024-03-01 12:00:00' in UTC (the zone is stated by the format or its sidecar)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def day(value: date) -> str:
    return value.strftime("%Y-%m-%d")
