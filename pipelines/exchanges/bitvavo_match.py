"""Which Bitvavo `/account/history` buys and sells are order-book trades (EXCHANGES.md, open point).

`/account/history` lists every balance change, order-book trades included; `/v2/trades` lists the
order-book fills only. A history buy/sell that is an order-book trade may carry the fill's id, an
id of its own, or stand for a whole order (sandbox variant `bitvavo-history-ids`), so it is
matched to fills by what it says rather than by its id:

- market (its price currency and the currencies it sent and received) and side;
- amounts, exactly: the base amount and the quote amount (amount × price, the fee apart) of one
  fill, or their sums over every landed fill of one order (`orderId`);
- time: within `TOLERANCE` of the fill, or of the span from the order's first fill to its last.

Fees are not compared (a fill has none until settled), so unsettled fills match too. An item id
equal to a fill id of the same market and side is one more signal: it picks that fill among
equal candidates, and on its own (amounts or time differ) still makes the item an order-book
trade, with a problem.

Every item ends in exactly one state:

- **matched** to the fills of one candidate; `signal` says how: 'amounts', 'amounts+id', 'id',
  or 'group' (k items that fit the same k interchangeable candidates cover them together);
- **ambiguous**: it fits order-book fills, but no candidate better than another (or only fills
  already matched to other items). It is no app trade: its fills count from `/v2/trades`, and
  each candidate fill carries the problem text, for `fill_checks`;
- **app trade**: it fits no fill, and is kept as a fill of its own (source account/history).

Matching is one-to-one: a fill matched to one item is no candidate for another.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pipelines.exchanges.records import Fill, Side

TOLERANCE = timedelta(seconds=60)
"""How far an item's `executedAt` may lie from its fill (or its order's span of fills): clock
and rounding differences, never two trades minutes apart."""

MatchStatus = Literal["matched", "ambiguous"]
_Group = tuple[Fill, ...]  # the fills one candidate stands for, oldest first


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
    for item in ordered:
        found = candidates.of(item)
        same_id = candidates.by_id.get((item.market, item.side, item.fill_id))
        if same_id is not None:
            with_id = [g for g in found if same_id in g]
            if len(with_id) == 1:
                state.decide(item, with_id[0], "amounts+id")
                continue
            if not with_id:
                state.decide(item, (same_id,), "id", _differs(item, same_id))
                continue
            found = with_id
        if found:
            state.pending[item.fill_id] = (item, found)
        else:
            state.app_trades.append(item)
    state.resolve()
    return HistoryMatching(tuple(state.app_trades), tuple(state.links))


class _Candidates:
    """Order-book fills and multi-fill orders indexed by (market, side, base, quote)."""

    def __init__(self, book: Iterable[Fill], tolerance: timedelta) -> None:
        self.tolerance = tolerance
        self.by_amounts: dict[tuple[str, str, Decimal, Decimal], list[_Group]] = defaultdict(list)
        self.by_id: dict[tuple[str, str, str], Fill] = {}
        orders: dict[tuple[str, str], list[Fill]] = defaultdict(list)
        for fill in sorted(book, key=lambda f: (f.executed_at, f.fill_id)):
            self.by_id[(fill.market, fill.side, fill.fill_id)] = fill
            key = (fill.market, fill.side, fill.base_amount, fill.quote_amount)
            self.by_amounts[key].append((fill,))
            if fill.order_id is not None:
                orders[(fill.market, fill.order_id)].append(fill)
        for fills in orders.values():
            if len(fills) > 1 and len({f.side for f in fills}) == 1:
                base = sum((f.base_amount for f in fills), Decimal(0))
                quote = sum((f.quote_amount for f in fills), Decimal(0))
                self.by_amounts[(fills[0].market, fills[0].side, base, quote)].append(tuple(fills))

    def of(self, item: Fill) -> list[_Group]:
        key = (item.market, item.side, item.base_amount, item.quote_amount)
        return [
            group
            for group in self.by_amounts.get(key, ())
            if group[0].executed_at - self.tolerance
            <= item.executed_at
            <= group[-1].executed_at + self.tolerance
        ]


class _Resolution:
    """Decides the pending items one-to-one: unique candidates first, then groups."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[Fill, list[_Group]]] = {}
        self.app_trades: list[Fill] = []
        self.links: list[HistoryMatch] = []
        self.claimed: dict[tuple[str, str], str] = {}  # (market, fill id) → item id

    def decide(
        self, item: Fill, group: Sequence[Fill], signal: str, problem: str | None = None
    ) -> None:
        taken = self._taken_by(group)
        if taken:
            self._ambiguous(item, [tuple(group)], _already(item, taken))
            return
        for fill in group:
            self.claimed[(fill.market, fill.fill_id)] = item.fill_id
            self.links.append(_link(item, fill, "matched", signal, problem))

    def resolve(self) -> None:
        progress = True
        while progress:
            progress = self._unique() or self._groups()
        for item, groups in self.pending.values():
            free = [g for g in groups if not self._taken_by(g)]
            if free:
                self._ambiguous(item, free, _equal(item, free))
            else:
                taken = sorted({t for g in groups for t in self._taken_by(g)})
                self._ambiguous(item, groups, _already(item, taken))
        self.pending.clear()

    def _unique(self) -> bool:
        progress = False
        for item_id, (item, groups) in list(self.pending.items()):
            free = [g for g in groups if not self._taken_by(g)]
            if len(free) == 1:
                del self.pending[item_id]
                self.decide(item, free[0], "amounts")
                progress = True
        return progress

    def _groups(self) -> bool:
        """k items whose free candidates are the same k disjoint groups cover them together:
        which item stands for which group cannot be told, and need not be."""
        together: dict[frozenset[frozenset[str]], list[str]] = defaultdict(list)
        for item_id, (_, groups) in self.pending.items():
            free = frozenset(
                frozenset(f.fill_id for f in g) for g in groups if not self._taken_by(g)
            )
            if len(free) > 1:
                together[free].append(item_id)
        for free, item_ids in together.items():
            if len(item_ids) != len(free) or len(frozenset.union(*free)) != sum(map(len, free)):
                continue
            groups = self.pending[item_ids[0]][1]
            fills = [f for g in groups if not self._taken_by(g) for f in g]
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

    def _ambiguous(self, item: Fill, groups: Sequence[_Group], problem: str) -> None:
        fills = {f.fill_id: f for g in groups for f in g}
        for fill in fills.values():
            self.links.append(_link(item, fill, "ambiguous", "amounts", problem))


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


def _equal(item: Fill, groups: Sequence[_Group]) -> str:
    options = " or ".join("+".join(f.fill_id for f in group) for group in groups)
    return (
        f"{_describe(item)} fits {len(groups)} sets of order-book fills equally ({options}): "
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
