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
    number = value if isinstance(value, Decimal) else Decimal(value)
    if number == 0:
        return "0"
    # 'f' writes a normalised integer (1E+2) in full digits (100)
    return format(number.normalize(WIDE), "f")


# `isoformat` writes what these strftime formats write, faster, for years of four digits
# (strftime writes year 999 as '999', isoformat as '0999').


def iso_utc(at: datetime) -> str:
    """'2024-03-01T12:00:00.123000Z': UTC, microseconds always written (fixed width)."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def seconds_utc(at: datetime) -> str:
    """'2024-03-01 12:00:00' in UTC (the zone is stated by the format or its sidecar)."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%d %H:%M:%S")
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def day(value: date) -> str:
    if value.year < 1000:
        return value.strftime("%Y-%m-%d")
    return value.isoformat()
