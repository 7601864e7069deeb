"""uk: the gains export states HMRC's computation of each token's day, every figure in pence.

A token's disposals of one day are one disposal (TCGA92 s.105(1)(a), CRYPTO22252) with one
computation, in parts by the rule that matched its tokens (same day; 30 days, one part per
acquisition day, CRYPTO22255; section 104). Each part states its share of the day's
consideration, the acquisition cost itself and the incidental costs of acquisition and disposal
(CG14207 tells them apart), each rounded half to even to the penny as BittyTax 0.6.0 does
(tax_event.py: `quantize(Decimal("0.00"))` in the default context), so that BittyTax and tally
state the same figures. Every expected value is worked out by hand beside it, from those rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from warehouse.costbasis import Event, compute
from warehouse.exports.computation import Part, computations

D = Decimal
STAMP = "bitstamp/main"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def acquire(quantity: str, when: str, cost: str, ref: str, fees: str = "0") -> Event:
    """`cost` with its incidental costs, as the engine's events state it; `fees` those costs."""
    return Event("acquire", "X", D(quantity), STAMP, at(when), D(cost), D(fees), reference=ref)


def dispose(quantity: str, when: str, proceeds: str, ref: str, fees: str = "0") -> Event:
    return Event("dispose", "X", D(quantity), STAMP, at(when), D(proceeds), D(fees), reference=ref)


def figures(part: Part) -> tuple[tuple[Decimal, ...], tuple[Decimal, ...]]:
    """(quantity, proceeds, cost, fees, gain) as stated, and (proceeds, cost, fees, gain) exact."""
    s, e = part.stated, part.exact
    return (s.quantity, s.proceeds, s.cost, s.fees, s.gain), (e.proceeds, e.cost, e.fees, e.gain)


def test_a_days_two_disposals_are_one_computation_hmrc_example_2() -> None:
    # CRYPTO22252: 5,000 token X pooled for £500; on 23 June: dispose of 1,000 for £800,
    # acquire 1,600 for £1,000, dispose of 500 for £600: "a single disposal of 1,500 token B
    # for £1,400", same day cost £1,000 × 1,500 / 1,600 = £937.50 (HMRC writes £938), gain
    # £462.50 (£462).
    events = [
        Event("acquire", "X", D(5000), STAMP, at("2022-01-10 12:00"), D(500), reference="pool"),
        dispose("1000", "2023-06-23 08:00", "800", "morning"),
        acquire("1600", "2023-06-23 13:00", "1000", "afternoon"),
        dispose("500", "2023-06-23 19:00", "600", "evening"),
    ]
    (part,) = computations(compute(events, method="uk").gains)
    assert part.stated.match_type == "same-day" and part.stated.date == date(2023, 6, 23)
    assert part.stated.reference == "morning, evening"
    assert figures(part) == (
        (D(1500), D(1400), D("937.50"), D(0), D("462.50")),
        (D(1400), D("937.5"), D(0), D("462.5")),
    )


def test_each_part_states_its_share_and_its_costs_in_pence_rounded_half_to_even() -> None:
    events = [
        # the pool: 4 X for 10.00 and a fee of 0.02
        acquire("4", "2024-01-01 12:00", "10.02", "pool", fees="0.02"),
        dispose("1", "2024-01-15 12:00", "3.00", "jan"),
        # 1 March: three disposals (4 X), one acquisition; the 30 days after bring two more
        dispose("1", "2024-03-01 09:00", "5.00", "d1", fees="0.01"),
        acquire("1", "2024-03-01 10:00", "3.0175", "same", fees="0.0175"),
        dispose("2", "2024-03-01 11:00", "10.00", "d2", fees="0.02"),
        dispose("1", "2024-03-01 12:00", "4.00", "d3", fees="-0.004"),  # a rebate of 0.004
        acquire("1", "2024-03-06 12:00", "4.10", "b1"),
        acquire("0.5", "2024-03-11 12:00", "2.00", "b2", fees="0.01"),
    ]
    result = compute(events, method="uk")
    january, same_day, march_6, march_11, pool = computations(result.gains)

    # 15 January, from the pool: cost 10.02 × 1/4 = 2.505 of which fees 0.02 × 1/4 = 0.005:
    # the cost itself 2.50, fees 0.005 → 0.00 (half to even; half up would give 0.01);
    # gain 3.00 - 2.50 - 0.00 = 0.50 (exact 3.00 - 2.50 - 0.005 = 0.495)
    assert january.stated.match_type == "section-104"
    assert figures(january) == (
        (D(1), D("3.00"), D("2.50"), D("0.00"), D("0.50")),
        (D(3), D("2.5"), D("0.005"), D("0.495")),
    )

    # 1 March is one disposal of 4 X: its consideration 5.00 + 10.00 + 4.00 + the rebate 0.004
    # = 19.004 and its incidental costs of disposal 0.01 + 0.02 = 0.03 are shared by quantity,
    # each part taking its share of what the parts before it left, in the order same day,
    # 30 days (6 March, then 11 March), pool:
    #   same day 1 of 4:      19.004 / 4 = 4.751,       0.03 / 4 = 0.0075 (left 14.253, 0.0225)
    #   6 March 1 of 3:       14.253 / 3 = 4.751,     0.0225 / 3 = 0.0075 (left 9.502, 0.015)
    #   11 March 0.5 of 2:    9.502 / 4 = 2.3755,     0.015 / 4 = 0.00375 (left 7.1265, 0.01125)
    #   pool 1.5: what is left, 7.1265 and 0.01125
    assert [p.stated.match_type for p in (same_day, march_6, march_11, pool)] == [
        "same-day",
        "bed-and-breakfast",
        "bed-and-breakfast",
        "section-104",
    ]
    assert {p.stated.reference for p in (same_day, march_6, march_11, pool)} == {"d1, d2, d3"}
    # same day: "same" costs 3.0175 of which fees 0.0175: cost 3.00; fees 0.0175 + 0.0075 =
    # 0.025 → 0.02 (half to even); proceeds 4.751 → 4.75; gain 4.75 - 3.00 - 0.02 = 1.73
    assert figures(same_day) == (
        (D(1), D("4.75"), D("3.00"), D("0.02"), D("1.73")),
        (D("4.751"), D("3.0000"), D("0.025"), D("1.726")),
    )
    # 6 March: cost 4.10, no fee of its own; fees 0.0075 → 0.01; 4.75 - 4.10 - 0.01 = 0.64
    assert figures(march_6) == (
        (D(1), D("4.75"), D("4.10"), D("0.01"), D("0.64")),
        (D("4.751"), D("4.10"), D("0.0075"), D("0.6435")),
    )
    # 11 March: 2.00 of which fees 0.01: cost 1.99; fees 0.01 + 0.00375 = 0.01375 → 0.01;
    # proceeds 2.3755 → 2.38; 2.38 - 1.99 - 0.01 = 0.38
    assert figures(march_11) == (
        (D("0.5"), D("2.38"), D("1.99"), D("0.01"), D("0.38")),
        (D("2.3755"), D("1.99"), D("0.01375"), D("0.37175")),
    )
    # pool after January: 3 X for 7.515 of which fees 0.015; 1.5 X of it: 3.7575 of which
    # 0.0075: cost 3.75; fees 0.0075 + 0.01125 = 0.01875 → 0.02; proceeds 7.1265 → 7.13;
    # 7.13 - 3.75 - 0.02 = 3.36
    assert figures(pool) == (
        (D("1.5"), D("7.13"), D("3.75"), D("0.02"), D("3.36")),
        (D("7.1265"), D("3.75"), D("0.01875"), D("3.35775")),
    )
    # the day's gain as stated, 1.73 + 0.64 + 0.38 + 3.36 = 6.11, is what BittyTax adds up; the
    # exact one, 1.726 + 0.6435 + 0.37175 + 3.35775 = 6.099, is the engine's, unchanged:
    # 19.00 - (0.03 - 0.004) - (3.0175 + 4.10 + 2.00 + 3.7575) = 6.099
    march = [g for g in result.gains if g.date == date(2024, 3, 1)]
    assert sum(g.gain for g in march) == D("6.099")
    assert sum(p.exact.gain for p in (same_day, march_6, march_11, pool)) == D("6.099")
    assert sum(p.stated.gain for p in (same_day, march_6, march_11, pool)) == D("6.11")


def test_the_pool_and_the_30_days_carry_the_acquisitions_incidental_costs() -> None:
    events = [
        acquire("4", "2024-01-01 12:00", "10.02", "pool", fees="0.02"),
        dispose("1", "2024-01-15 12:00", "3.00", "jan"),
        dispose("2", "2024-03-01 11:00", "10.00", "sale"),
        acquire("0.5", "2024-03-11 12:00", "2.00", "b", fees="0.01"),
        # bought for 5.00 less a rebate of 0.01: a cost of 4.99 and no incidental cost
        acquire("1", "2024-06-01 12:00", "4.99", "later", fees="-0.01"),
        dispose("2.5", "2024-07-01 12:00", "9.00", "july"),
    ]
    result = compute(events, method="uk")
    uses = [(g.reference, u.lot_reference, u.quantity, u.cost, u.fees) for g in result.gains
            for u in g.lots]  # fmt: skip
    assert uses == [
        # 1 of the pool's 4 (10.02, fees 0.02): 2.505 and 0.005
        ("jan", "section 104 pool", D(1), D("2.505"), D("0.005")),
        # 11 March is within 30 days: all of it, its fee 0.01 with it
        ("sale", "b", D("0.5"), D("2.00"), D("0.01")),
        # 1.5 of the pool's 3 (7.515, fees 0.015): 3.7575 and 0.0075
        ("sale", "section 104 pool", D("1.5"), D("3.7575"), D("0.0075")),
        # the rest, 1.5 (3.7575, fees 0.0075) and 1 (4.99, no fees): 8.7475 and 0.0075
        ("july", "section 104 pool", D("2.5"), D("8.7475"), D("0.0075")),
    ]
    assert not result.open_lots
