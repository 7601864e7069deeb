"""What an export was asked for, and the reporting period that follows from it.

A method has its own calendar: "uk" counts Europe/London days and UK tax years (6 April to
5 April; year 2024 is the tax year 2024/25), every other method counts calendar years in UTC
unless a timezone is given. Without a year the period is the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FORMATS = ("ledger", "gains", "income", "holdings", "koinly", "cointracking", "bittytax")
METHODS = ("fifo", "lifo", "hifo", "uk", "de", "nl")
LOT_MODES = ("pooled", "per-account")
CURRENCIES = ("EUR", "USD", "GBP")
UK_TIMEZONE = "Europe/London"


class ExportOptionError(ValueError):
    """An option has a value no export accepts."""


@dataclass(frozen=True)
class ExportOptions:
    year: int | None = None
    method: str = "fifo"
    lots: str = "pooled"
    currency: str = "EUR"
    timezone: str | None = None  # None: the method's own (uk: Europe/London, others UTC)
    on: date | None = None  # holdings: the day whose opening balances are valued

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ExportOptionError(f"unknown method {self.method!r}: one of {', '.join(METHODS)}")
        if self.lots not in LOT_MODES:
            raise ExportOptionError(f"unknown lots {self.lots!r}: one of {', '.join(LOT_MODES)}")
        if self.currency not in CURRENCIES:
            raise ExportOptionError(
                f"unknown currency {self.currency!r}: one of {', '.join(CURRENCIES)}"
            )
        if self.year is not None and not 2000 <= self.year <= 2100:
            raise ExportOptionError(f"year {self.year} is out of range")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ExportOptionError(f"unknown timezone {self.zone!r}") from None

    @property
    def zone(self) -> str:
        """The timezone whose days the export counts."""
        if self.timezone:
            return self.timezone
        return UK_TIMEZONE if self.method == "uk" else "UTC"

    @property
    def period(self) -> Period:
        return Period.of(self.year, uk=self.method == "uk", zone=self.zone)


@dataclass(frozen=True)
class Period:
    """[first, end) in days of `zone`; both None for the whole history."""

    label: str  # "2024", "2024-25" (a UK tax year), "all"
    first: date | None
    end: date | None  # the day after the last one
    zone: str
    uk: bool

    @classmethod
    def of(cls, year: int | None, *, uk: bool, zone: str) -> Period:
        if year is None:
            return cls("all", None, None, zone, uk)
        if uk:
            return cls(
                f"{year}-{(year + 1) % 100:02d}", date(year, 4, 6), date(year + 1, 4, 6), zone, uk
            )
        return cls(str(year), date(year, 1, 1), date(year + 1, 1, 1), zone, uk)

    @property
    def start_at(self) -> datetime | None:
        return None if self.first is None else self.instant(self.first)

    @property
    def end_at(self) -> datetime | None:
        return None if self.end is None else self.instant(self.end)

    def instant(self, day: date) -> datetime:
        """The first moment of `day` in the period's zone."""
        return datetime.combine(day, time(0), tzinfo=ZoneInfo(self.zone))

    def contains_day(self, day: date) -> bool:
        return (self.first is None or day >= self.first) and (self.end is None or day < self.end)

    def local_day(self, at: datetime) -> date:
        return at.astimezone(ZoneInfo(self.zone)).date()

    def year_label(self, day: date) -> str:
        """The (tax) year a day belongs to, labelled like a period: "2024" or "2024-25"."""
        if not self.uk:
            return str(day.year)
        start = day.year if day >= date(day.year, 4, 6) else day.year - 1
        return f"{start}-{(start + 1) % 100:02d}"

    def describe(self) -> dict[str, str | None]:
        return {
            "label": self.label,
            "first_day": None if self.first is None else self.first.isoformat(),
            "last_day": None
            if self.end is None
            else date.fromordinal(self.end.toordinal() - 1).isoformat(),
            "start": None if self.start_at is None else self.start_at.isoformat(),
            "end": None if self.end_at is None else self.end_at.isoformat(),
            "timezone": self.zone,
            "calendar": "UK tax year (6 April - 5 April)" if self.uk else "calendar year",
        }
