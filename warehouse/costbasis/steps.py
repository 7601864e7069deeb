"""Events prepared for a method: in processing order, with their lot key and local day, and the
pieces every method builds its gains from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal

from warehouse.costbasis.exact import EXACT, Splitter
from warehouse.costbasis.model import ZERO, Event, Gain, Lot, LotUse

NO_ACQUISITION = "no-acquisition"


@dataclass(frozen=True)
class Step:
    """An event as a method sees it: `key` is the lot wallet ("pooled" or the event's wallet),
    `to_key` a move's destination key, `day` the calendar day in the method's zone."""

    event: Event
    key: str
    to_key: str | None
    day: date

    @property
    def asset(self) -> str:
        return self.event.asset

    @property
    def quantity(self) -> Decimal:
        return self.event.quantity


@dataclass
class Outcome:
    """What a method returns to `compute`: gains in disposal order, open lots, warnings."""

    gains: list[Gain]
    open_lots: list[Lot]
    warnings: list[str]


def local_day(at: datetime, zone: tzinfo) -> date:
    return at.astimezone(zone).date()


def one_year_after(day: date) -> date:
    """The last day of the year that starts the day after `day` (BGB §§ 187(1), 188(2): the
    same calendar day a year later; from 29 February, 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return date(day.year + 1, 2, 28)


def held_over_a_year(acquired: date, disposed: date) -> bool:
    """Held more than one year: disposed of on a later day than `one_year_after(acquired)`.
    A disposal on the anniversary itself is within the year. The same count serves § 23 EStG
    (de) and the US long-term holding period (IRS Publication 544: counting starts the day
    after the acquisition, the disposal day counts)."""
    return disposed > one_year_after(acquired)


def holding_days(step: Step, lots: Sequence[LotUse], zone: tzinfo) -> int | None:
    """Calendar days from the latest acquisition among `lots` to the disposal."""
    if not lots:
        return None
    return min((step.day - local_day(lot.acquired_at, zone)).days for lot in lots)


def disposal_splitter(step: Step) -> Splitter:
    """Shares of a disposal's proceeds and fees, by quantity."""
    value = step.event.value if step.event.value is not None else ZERO
    return Splitter(step.quantity, value, step.event.fees)


def gain_part(
    step: Step,
    splitter: Splitter,
    quantity: Decimal,
    cost: Decimal,
    match_type: str,
    lots: Sequence[LotUse],
    holding_days: int | None,
    *,
    exempt: Decimal = ZERO,
    note: str = "",
) -> Gain:
    """A Gain for `quantity` of the disposal `step`: its share of proceeds and fees, `cost`.
    `exempt` is the part of the gain that is not taxable (de); the rest is taxable."""
    proceeds, fees = splitter.take(quantity)
    gain = EXACT.subtract(EXACT.subtract(proceeds, cost), fees)
    notes = [text for text in (step.event.note, note) if text]
    return Gain(
        date=step.day,
        asset=step.asset,
        quantity=quantity,
        proceeds=proceeds,
        cost=cost,
        fees=fees,
        gain=gain,
        match_type=match_type,
        lots=tuple(lots),
        holding_days=holding_days,
        taxable=EXACT.subtract(gain, exempt),
        exempt=exempt,
        wallet=step.event.wallet,
        reference=step.event.reference,
        note="; ".join(notes),
    )


def no_acquisition(step: Step, splitter: Splitter, quantity: Decimal) -> tuple[Gain, str]:
    """The part of a disposal no known acquisition covers: reported at cost 0, with a warning."""
    where = f"{step.key}" if step.key == step.event.wallet else f"{step.event.wallet} ({step.key})"
    warning = (
        f"{step.asset}: {quantity} disposed of on {step.day.isoformat()} in {where} "
        f"(reference {step.event.reference or '-'}) with no acquisition known: reported at cost 0"
    )
    gain = gain_part(
        step, splitter, quantity, ZERO, NO_ACQUISITION, (), None, note="no acquisition known"
    )
    return gain, warning
