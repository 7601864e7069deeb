"""Which Bitvavo `/account/history` buys and sells are order-book trades (an open point).

`/account/history` lists every balance change, order-book trades included; `/v2/trades` lists the
order-book fills only. A history buy/sell that is an order-book trade may carry the fill's id, an
id of its own, or stand for a whole order (sandbox variant `bitvavo-history-ids`), so it is
matched to fills by what it says rather than by its id:

- market (its price currency and the currencies it sent and received) and side;
- amounts: the base amount and the quote amount (amount × price, the fee apart) of one fill, or
  their sums over every landed fill of one order (`orderId`);
- time: within `TOLERANCE` of the fill, or of the span from the order's first fill to its last.

Nothing proves that history shows a fill's amounts exactly (sandbox variant
`bitvavo-history-amounts`), so amounts are compared in two tiers. First exactly. An item that
fits nothing exactly is then compared nearly: the base amount still exactly, the quote amount
within rounding to the quote currency's precision (less than one `quote_unit` per fill of the
candidate, whatever the rounding mode), or equal within that rounding once the fee of the item
or of the fills is added or removed. An item that nearly fits order-book fills is never an app
trade: it is matched when one candidate fits, or reported ambiguous. Near candidates are
decided after every exact one, so a near item never takes a fill from an item that fits exactly.

Fees are not needed for exact matches (a fill has none until settled), so unsettled fills match
too. An item id equal to a fill id of the same market and side is one more signal: it picks that
fill among equal candidates, and on its own (amounts or time differ beyond rounding and fee)
still makes the item an order-book trade, with a problem.

Every item ends in exactly one state:

- **matched** to the fills of one candidate; `signal` says how: 'amounts' (exactly),
  'rounded' (the quote within rounding), 'fee' (the quote with the fee inside), each with '+id'
  when the id agrees too, 'id' (the id alone), or 'group' (k items that fit the same k
  interchangeable candidates cover them together);
- **ambiguous**: it fits order-book fills, but no candidate better than another (or only fills
  already matched to other items). It is no app trade: its fills count from `/v2/trades`, and
  each candidate fill carries the problem text, for `fill_checks`;
- **app trade**: it fits no fill, and is kept as a fill of its own (source account/history).

Matching is one-to-one: a fill matched to one item is no candidate for another.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pipelines.exchanges.records import Fill, Side

TOLERANCE = timedelta(seconds=60)
"""How far an item's `executedAt` may lie from its fill (or its order's span of fills): clock
and rounding differences, never two trades minutes apart."""

QUOTE_DECIMALS: Mapping[str, int] = {"EUR": 2}
"""The decimals a quote currency is kept in (Bitvavo `/v2/assets` `decimals`): how far a history
amount rounded to them may lie from a fill's exact amount × price. A currency not listed here
is taken to be rounded to the decimals its amount shows."""

MatchStatus = Literal["matched", "ambiguous"]
_Group = tuple[Fill, ...]  # the fills one candidate stands for, oldest first
_Option = tuple[_Group, str]  # a candidate and how it fits ('amounts', 'rounded', 'fee')


@dataclass(frozen=True, slots=True)
class HistoryMatch:
    """One link between an `/account/history` buy/sell and an order-book fill of `/v2/trades`."""

    account: str
    transaction_id: str  # the history item's id
    executed_at: datetime  # the history item's time
    market: str
    side: Side
    fill_id: str
    order_id: str | None
    status: MatchStatus
    signal: str
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryMatching:
    """The history trades that are app trades, and the links of the others to their fills."""

    app_trades: tuple[Fill, ...]
    links: tuple[HistoryMatch, ...]


def match_history(
    items: Sequence[Fill], book: Sequence[Fill], *, tolerance: timedelta = TOLERANCE
) -> HistoryMatching:
    """Split history trades (`classify_history_item` fills) into app trades and matches to the
    order-book fills `book` (every landed `/v2/trades` fill)."""
    candidates = _Candidates(book, tolerance)
    ordered = sorted(items, key=lambda i: (i.executed_at, i.fill_id))
    state = _Resolution()
    near_items: list[tuple[Fill, list[_Option]]] = []
    for item in ordered:
        found = candidates.of(item)
        same_id = candidates.by_id.get((item.market, item.side, item.fill_id))
        if same_id is not None:
            with_id = [g for g in found if same_id in g]
            if len(with_id) == 1:
                state.decide(item, with_id[0], "amounts+id")
                continue
            if not with_id:
                near = [(g, how) for g, how in candidates.near(item) if same_id in g]
                if len(near) == 1:
                    state.decide(item, near[0][0], f"{near[0][1]}+id")
                else:
                    state.decide(item, (same_id,), "id", _differs(item, same_id))
                continue
            found = with_id
        if found:
            state.pending[item.fill_id] = (item, [(g, "amounts") for g in found])
        elif near := candidates.near(item):
            near_items.append((item, near))
        else:
            state.app_trades.append(item)
    state.settle()  # the exact candidates first: a near item never takes an exact one's fills
    for item, near in near_items:
        state.pending[item.fill_id] = (item, near)
    state.resolve()
    return HistoryMatching(tuple(state.app_trades), tuple(state.links))


def quote_unit(item: Fill) -> Decimal:
    """One unit of the last decimal `item`'s quote amount may have been rounded to."""
    decimals = QUOTE_DECIMALS.get(item.quote_asset)
    if decimals is None:
        exponent = item.quote_amount.as_tuple().exponent
        decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return Decimal(1).scaleb(-decimals)


class _Candidates:
    """Order-book fills and multi-fill orders indexed by (market, side, base[, quote])."""

    def __init__(self, book: Iterable[Fill], tolerance: timedelta) -> None:
        self.tolerance = tolerance
        self.by_amounts: dict[tuple[str, str, Decimal, Decimal], list[_Group]] = defaultdict(list)
        self.by_base: dict[tuple[str, str, Decimal], list[_Group]] = defaultdict(list)
        self.by_id: dict[tuple[str, str, str], Fill] = {}
        orders: dict[tuple[str, str], list[Fill]] = defaultdict(list)
        groups: list[_Group] = []
        for fill in sorted(book, key=lambda f: (f.executed_at, f.fill_id)):
            self.by_id[(fill.market, fill.side, fill.fill_id)] = fill
            groups.append((fill,))
            if fill.order_id is not None:
                orders[(fill.market, fill.order_id)].append(fill)
        groups += [
            tuple(fills)
            for fills in orders.values()
            if len(fills) > 1 and len({f.side for f in fills}) == 1
        ]
        for group in groups:
            market, side = group[0].market, group[0].side
            base = sum((f.base_amount for f in group), Decimal(0))
            quote = sum((f.quote_amount for f in group), Decimal(0))
            self.by_amounts[(market, side, base, quote)].append(group)
            self.by_base[(market, side, base)].append(group)

    def of(self, item: Fill) -> list[_Group]:
        """The candidates `item` fits exactly."""
        key = (item.market, item.side, item.base_amount, item.quote_amount)
        return [group for group in self.by_amounts.get(key, ()) if self._in_time(item, group)]

    def near(self, item: Fill) -> list[_Option]:
        """The candidates `item` fits nearly (module docstring), and how."""
        found = []
        for group in self.by_base.get((item.market, item.side, item.base_amount), ()):
            how = _near_quote(item, group) if self._in_time(item, group) else None
            if how is not None:
                found.append((group, how))
        return found

    def _in_time(self, item: Fill, group: _Group) -> bool:
        return (
            group[0].executed_at - self.tolerance
            <= item.executed_at
            <= group[-1].executed_at + self.tolerance
        )


def _near_quote(item: Fill, group: _Group) -> str | None:
    """'rounded' when `item`'s quote is the fills' within rounding, 'fee' when it is once a fee
    (the item's, or the fills' when all are settled) is added or removed; None otherwise."""
    slack = quote_unit(item) * len(group)
    difference = item.quote_amount - sum((f.quote_amount for f in group), Decimal(0))
    if abs(difference) < slack:
        return "rounded"
    fees = []
    if item.fee is not None and item.fee_asset == item.quote_asset:
        fees.append(item.fee)
    if all(f.fee is not None and f.fee_asset == f.quote_asset for f in group):
        fees.append(sum((f.fee or Decimal(0) for f in group), Decimal(0)))
    for fee in fees:
        if fee and min(abs(difference - fee), abs(difference + fee)) < slack:
            return "fee"
    return None


class _Resolution:
    """Decides the pending items one-to-one: unique candidates first, then groups."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[Fill, list[_Option]]] = {}
        self.app_trades: list[Fill] = []
        self.links: list[HistoryMatch] = []
        self.claimed: dict[tuple[str, str], str] = {}  # (market, fill id) → item id

    def decide(
        self, item: Fill, group: Sequence[Fill], signal: str, problem: str | None = None
    ) -> None:
        taken = self._taken_by(group)
        if taken:
            self._ambiguous(item, [(tuple(group), signal)], _already(item, taken))
            return
        for fill in group:
            self.claimed[(fill.market, fill.fill_id)] = item.fill_id
            self.links.append(_link(item, fill, "matched", signal, problem))

    def settle(self) -> None:
        """Decide what the pending items decide by themselves; the rest stays pending."""
        progress = True
        while progress:
            progress = self._unique() or self._groups()

    def resolve(self) -> None:
        """Settle, then report every item still pending as ambiguous."""
        self.settle()
        for item, options in self.pending.values():
            free = [o for o in options if not self._taken_by(o[0])]
            if free:
                self._ambiguous(item, free, _equal(item, free))
            else:
                taken = sorted({t for g, _ in options for t in self._taken_by(g)})
                self._ambiguous(item, options, _already(item, taken))
        self.pending.clear()

    def _unique(self) -> bool:
        progress = False
        for item_id, (item, options) in list(self.pending.items()):
            free = [o for o in options if not self._taken_by(o[0])]
            if len(free) == 1:
                del self.pending[item_id]
                self.decide(item, *free[0])
                progress = True
        return progress

    def _groups(self) -> bool:
        """k items whose free candidates are the same k disjoint groups cover them together:
        which item stands for which group cannot be told, and need not be."""
        together: dict[frozenset[frozenset[str]], list[str]] = defaultdict(list)
        for item_id, (_, options) in self.pending.items():
            free = frozenset(
                frozenset(f.fill_id for f in g) for g, _ in options if not self._taken_by(g)
            )
            if len(free) > 1:
                together[free].append(item_id)
        for free, item_ids in together.items():
            if len(item_ids) != len(free) or len(frozenset.union(*free)) != sum(map(len, free)):
                continue
            options = self.pending[item_ids[0]][1]
            fills = [f for g, _ in options if not self._taken_by(g) for f in g]
            for item_id in item_ids:
                item, _ = self.pending.pop(item_id)
                self.links.extend(_link(item, fill, "matched", "group") for fill in fills)
            for fill in fills:
                self.claimed[(fill.market, fill.fill_id)] = ", ".join(sorted(item_ids))
            return True  # claims change what is free for the others: look again
        return False

    def _taken_by(self, group: Iterable[Fill]) -> list[str]:
        return [
            self.claimed[(f.market, f.fill_id)]
            for f in group
            if (f.market, f.fill_id) in self.claimed
        ]

    def _ambiguous(self, item: Fill, options: Sequence[_Option], problem: str) -> None:
        fills = {f.fill_id: (f, how) for g, how in options for f in g}
        for fill, how in fills.values():
            self.links.append(_link(item, fill, "ambiguous", how, problem))


def _link(
    item: Fill, fill: Fill, status: MatchStatus, signal: str, problem: str | None = None
) -> HistoryMatch:
    return HistoryMatch(
        account=item.account,
        transaction_id=item.fill_id,
        executed_at=item.executed_at,
        market=item.market,
        side=item.side,
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        status=status,
        signal=signal,
        problem=problem,
    )


def _describe(item: Fill) -> str:
    return (
        f"account/history {item.side} {item.fill_id} ({item.base_amount.normalize():f} "
        f"{item.market} at {item.executed_at.isoformat()})"
    )


def _equal(item: Fill, options: Sequence[_Option]) -> str:
    listed = " or ".join(
        "+".join(f.fill_id for f in group) + ("" if how == "amounts" else f" ({how})")
        for group, how in options
    )
    return (
        f"{_describe(item)} fits {len(options)} sets of order-book fills equally ({listed}): "
        "matched to none; its fills count once, from /v2/trades"
    )


def _already(item: Fill, taken: Sequence[str]) -> str:
    return (
        f"{_describe(item)} fits only fills already matched to {', '.join(sorted(set(taken)))}: "
        "listed twice? not counted again"
    )


def _differs(item: Fill, fill: Fill) -> str:
    return (
        f"{_describe(item)} carries this fill's id, but its amounts or time differ "
        f"(fill: {fill.base_amount.normalize():f} for {fill.quote_amount.normalize():f} "
        f"at {fill.executed_at.isoformat()}): matched by id"
    )
