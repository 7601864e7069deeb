"""`compute(events, method=…, lots=…, timezone=…)`: gains, income and open lots.

Events are processed in time order; at the same instant acquisitions and income come first,
then moves, then disposals (what arrives at an instant can leave at it), otherwise in the
order given. Fiat (`model.FIAT_CURRENCIES`) is a currency, not an asset: it never gets lots,
and only its income is listed. With `lots="pooled"` every wallet shares one set of lots per
asset (wallet "pooled") and moves change nothing; with `lots="per-account"` each wallet has
its own and a move carries lots (FIFO, for uk the pool's average cost) to the other wallet.
Without `lots`, de is per account (the BMF letter's "walletbezogene Betrachtung") and every
other method pooled; without `timezone`, a method counts its own days (`METHOD_TIMEZONES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import localcontext
from zoneinfo import ZoneInfo

from warehouse.costbasis import de, identified, nl, uk
from warehouse.costbasis.exact import EXACT
from warehouse.costbasis.model import (
    EVENT_KINDS,
    LOT_MODES,
    METHODS,
    POOLED,
    ZERO,
    Event,
    Income,
    MissingPriceError,
    Result,
    default_lots,
    is_fiat,
    method_timezone,
)
from warehouse.costbasis.steps import Outcome, Step, local_day

UK_TIMEZONE = "Europe/London"
_RANK = {"acquire": 0, "income": 0, "move": 1, "dispose": 2}


def compute(
    events: Sequence[Event],
    *,
    method: str,
    lots: str | None = None,
    timezone: str | None = None,
) -> Result:
    """Gains (by `method`), income and open lots of `events`.

    method: "fifo", "lifo", "hifo" (a disposal's lots held over one year and those held one
    year or less are separate Gains), "uk" (HMRC matching on Europe/London days whatever
    `timezone` says), "de" (FIFO per wallet, gains held over one year exempt, Europe/Berlin days
    by default), "nl" (no gains). `timezone` decides the calendar day of every Gain and Income.
    Raises MissingPriceError when an acquisition, disposal or income has no value.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    lots = default_lots(method) if lots is None else lots
    if lots not in LOT_MODES:
        raise ValueError(f"unknown lots {lots!r}: one of {', '.join(LOT_MODES)}")
    zone_name = UK_TIMEZONE if method == "uk" else timezone or method_timezone(method)
    zone = ZoneInfo(zone_name)
    _check(events)
    pooled = lots == POOLED
    with localcontext(EXACT):
        ordered = sorted(
            enumerate(events), key=lambda pair: (pair[1].at, _RANK[pair[1].kind], pair[0])
        )
        steps: list[Step] = []
        income: list[Income] = []
        warnings: list[str] = []
        for _, event in ordered:
            if event.warning:
                warnings.append(event.warning)
            if event.kind == "income" and event.value is not None:
                income.append(
                    Income(
                        date=local_day(event.at, zone),
                        asset=event.asset,
                        quantity=event.quantity,
                        value=event.value,
                        wallet=event.wallet,
                        kind=event.category or "income",
                        reference=event.reference,
                    )
                )
            if is_fiat(event.asset) or event.quantity == ZERO:
                continue
            key = POOLED if pooled else event.wallet
            to_key = None if event.to_wallet is None else POOLED if pooled else event.to_wallet
            steps.append(Step(event, key, to_key, local_day(event.at, zone)))
        outcome = _run(method, steps, zone)
    return Result(
        gains=tuple(outcome.gains),
        income=tuple(income),
        open_lots=tuple(outcome.open_lots),
        warnings=tuple(warnings + outcome.warnings),
        method=method,
        lots=lots,
        timezone=zone_name,
    )


def _run(method: str, steps: list[Step], zone: ZoneInfo) -> Outcome:
    if method == "uk":
        return uk.run(steps)
    if method == "de":
        return de.run(steps, zone)
    if method == "nl":
        return nl.run(steps)
    return identified.run(steps, method, zone)


def _check(events: Sequence[Event]) -> None:
    missing = []
    for event in events:
        if event.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event.kind!r} (reference {event.reference})")
        if event.at.tzinfo is None:
            raise ValueError(f"event time without a zone: {event.at} ({event.reference})")
        if event.quantity < ZERO:
            raise ValueError(
                f"negative quantity {event.quantity} {event.asset} ({event.reference}): "
                "the kind says the direction"
            )
        if event.kind == "move":
            if event.to_wallet is None:
                raise ValueError(f"a move without to_wallet ({event.reference})")
        elif event.value is None:
            missing.append((event.asset, event.at))
    if missing:
        raise MissingPriceError(missing)
