"""What an export was asked for, and the reporting period that follows from it.

A method has its own calendar: "uk" counts Europe/London days and UK tax years (6 April to
5 April; year 2024 is the tax year 2024/25), "de" Europe/Berlin days and "nl" Europe/Amsterdam
days of calendar years, every other method calendar years in UTC, unless a timezone is given.
Without a year the period is the whole history. Lots are per account for "de" (the BMF letter
of 10 May 2022: "walletbezogene Betrachtung") and pooled otherwise, unless asked; "uk" refuses
per-account lots: HMRC pools each type of token per person, whatever wallet holds it
(Cryptoassets Manual CRYPTO22200, TCGA92/S104).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.currencies import DEFAULT_REPORTING_CURRENCY, REPORTING_CURRENCIES

FORMATS = ("ledger", "gains", "income", "holdings", "koinly", "cointracking", "bittytax")
REPORTS = ("summary",)  # built from the formats' rows, written only when asked for
METHODS = ("fifo", "lifo", "hifo", "uk", "de", "nl")
LOT_MODES = ("pooled", "per-account")
CURRENCIES = REPORTING_CURRENCIES
UK_TIMEZONE = "Europe/London"
METHOD_TIMEZONES = {"uk": UK_TIMEZONE, "de": "Europe/Berlin", "nl": "Europe/Amsterdam"}
# HMRC's 30-day rule matches a disposal with acquisitions of the 30 days after it.
UK_MATCHING_DAYS = 30


class ExportOptionError(ValueError):
    """An option has a value no export accepts."""


@dataclass(frozen=True)
class ExportOptions:
    year: int | None = None
    method: str = "fifo"
    lots: str | None = None  # None: the method's own (de: per-account, others pooled)
    currency: str = DEFAULT_REPORTING_CURRENCY
    timezone: str | None = None  # None: the method's own (METHOD_TIMEZONES, others UTC)
    on: date | None = None  # holdings: the day whose opening balances are valued

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ExportOptionError(f"unknown method {self.method!r}: one of {', '.join(METHODS)}")
        if self.lots is None:
            object.__setattr__(self, "lots", "per-account" if self.method == "de" else "pooled")
        if self.lots not in LOT_MODES:
            raise ExportOptionError(f"unknown lots {self.lots!r}: one of {', '.join(LOT_MODES)}")
        if self.method == "uk" and self.lots == "per-account":
            raise ExportOptionError(
                "method uk cannot use --lots per-account: HMRC pools each type of token per "
                "person, whatever wallet or exchange holds it (CRYPTO22200)"
            )
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
        return METHOD_TIMEZONES.get(self.method, "UTC")

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

    @property
    def matching_end_at(self) -> datetime | None:
        """uk: the end of the 30 days after the period, whose acquisitions can still match
        the period's disposals (CRYPTO22253); None for other calendars or the whole history."""
        if not self.uk or self.end is None:
            return None
        return self.instant(self.end + timedelta(days=UK_MATCHING_DAYS))

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
