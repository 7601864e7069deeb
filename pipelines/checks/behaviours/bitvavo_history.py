"""Probes of how Bitvavo `/account/history` shows order-book trades: their ids and amounts.

One sample serves both probes (`history_sample`): the newest page of history buys and of
history sells (2 requests, weight 2), then `/v2/trades` of the market with the newest history
trade over the `TRADES_SPAN` before it (1 request, weight 5), then of the next market, up to
`SAMPLE_MARKETS` markets, until both points are decided. The history items are matched to the
fills as a sync matches them (`match_history`: by market, side, time and amounts, never by id);
each item matched to the fills of one candidate is one observation:

- ids: the item carries a fill's id (`fill`); it stands for several fills of one order
  (`order`); it stands for one fill of an order that has several (`own`); one fill of a
  one-fill order fits `own` and `order` alike;
- amounts: its quote amount equals the fills' amount × price (`exact`), that rounded down or
  up to the quote currency's decimals (`rounded`), or that plus (a buy) or minus (a sell) the
  item's fee (`fee`).

Items within `EDGE` of the start of the trades read are not judged (their order's first fills
may lie before it); app trades, ambiguous items and items matched as a group tell nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.bitvavo_errors import reason
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import MEANINGS, Evidence
from pipelines.checks.behaviours.rows import Spend, decide
from pipelines.exchanges.bitvavo import TRADE_LIMIT, BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_match import TOLERANCE, HistoryMatch, match_history, quote_unit
from pipelines.exchanges.bitvavo_parse import classify_history_item
from pipelines.exchanges.records import Fill
from pipelines.flows.runtime import Runtime
from pipelines.http import InvalidRequestError

EXCHANGE = BITVAVO.name
IDS = "bitvavo-history-ids"
AMOUNTS = "bitvavo-history-amounts"
HISTORY_FROM = datetime(2018, 1, 1, tzinfo=UTC)  # before Bitvavo's launch: the whole history
SIDES = ("buy", "sell")
SAMPLE_MARKETS = 3
TRADES_SPAN = timedelta(hours=12)  # under a 24 h cap, should account trades have one
EDGE = timedelta(hours=1)


@dataclass(frozen=True)
class HistorySample:
    """History trades, the fills read around them, and how a sync matches the two."""

    items: tuple[Fill, ...]  # every history buy/sell read (as `classify_history_item` fills)
    judged: tuple[Fill, ...]  # the items that lie where fills were read
    fills: tuple[Fill, ...]
    links: tuple[HistoryMatch, ...]
    markets: tuple[str, ...]  # the markets whose fills were read
    refused: tuple[str, ...]  # "market (why)" of each market whose /v2/trades refused
    spend: str  # what the sample cost, as its rows state it

    def matched(self) -> list[tuple[Fill, tuple[Fill, ...], str]]:
        """(item, its fills, how matched) of every item matched to one candidate's fills."""
        items = {item.fill_id: item for item in self.judged}
        fills = {(fill.market, fill.fill_id): fill for fill in self.fills}
        grouped: dict[str, list[HistoryMatch]] = defaultdict(list)
        for link in self.links:
            if link.status == "matched" and link.signal != "group":
                grouped[link.transaction_id].append(link)
        return [
            (
                items[item_id],
                tuple(fills[(link.market, link.fill_id)] for link in links),
                links[0].signal,
            )
            for item_id, links in grouped.items()
        ]


def history_sample(rt: Runtime) -> HistorySample:
    """Read the sample both probes judge (module docstring); at most 2 + `SAMPLE_MARKETS`
    requests, weight 2 + 5 × `SAMPLE_MARKETS`."""
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    items = _history_trades(client, now)
    newest: dict[str, datetime] = {}
    for item in items:
        newest[item.market] = max(item.executed_at, newest.get(item.market, item.executed_at))
    order = sorted(newest, key=lambda market: newest[market], reverse=True)
    judged: list[Fill] = []
    fills: list[Fill] = []
    links: list[HistoryMatch] = []
    markets: list[str] = []
    refused: list[str] = []
    for market in order[:SAMPLE_MARKETS]:
        try:
            market_fills, start, end = _market_fills(client, market, newest[market], now)
        except InvalidRequestError as error:  # e.g. a delisted market, no longer served
            if error.code != "205":
                raise
            refused.append(f"{market} ({reason(error)})")
            continue
        markets.append(market)
        here = [
            item
            for item in items
            if item.market == market and start + EDGE <= item.executed_at <= end - TOLERANCE
        ]
        judged += here
        fills += market_fills
        links += match_history(here, market_fills).links
        sample = HistorySample(tuple(items), tuple(judged), tuple(fills), tuple(links), (), (), "")
        ids, amounts = ids_evidence(sample), amounts_evidence(sample)
        if ids.decided(MEANINGS[IDS]) and amounts.decided(MEANINGS[AMOUNTS]):
            break
    read = ", ".join(markets) or "no market"
    return HistorySample(
        tuple(items),
        tuple(judged),
        tuple(fills),
        tuple(links),
        tuple(markets),
        tuple(refused),
        spend.text(f"history buys and sells, /v2/trades of {read}"),
    )


def _history_trades(client: BitvavoClient, now: datetime) -> list[Fill]:
    """The newest page of history buys and of history sells (2 requests, weight 2); should
    `type` be refused, the newest page of every type (1 request, weight 1, after the refusal)."""
    try:
        pages = [
            client.account_history(from_date=HISTORY_FROM, to_date=now, kind=side)[0]
            for side in SIDES
        ]
    except InvalidRequestError:
        pages = [client.account_history(from_date=HISTORY_FROM, to_date=now)[0]]
    return [
        row
        for page in pages
        for item in page.records
        if item.type in SIDES and isinstance(row := classify_history_item(item), Fill)
    ]


def _market_fills(
    client: BitvavoClient, market: str, newest: datetime, now: datetime
) -> tuple[list[Fill], datetime, datetime]:
    """The account's fills in `market` over `TRADES_SPAN` up to just after `newest` (one
    request), and the span they cover."""
    end = min(newest + TOLERANCE + timedelta(seconds=1), now)
    start = end - TRADES_SPAN
    page = client.trades(market, start=start, end=end, limit=TRADE_LIMIT)
    fills = list(page.records)
    if page.received >= TRADE_LIMIT and fills:  # a full page: it covers from its oldest fill
        start = min(fill.executed_at for fill in fills)
    return fills, start, end


def ids_evidence(sample: HistorySample) -> Evidence:
    evidence = Evidence()
    fills_per_order: Counter[tuple[str, str | None]] = Counter(
        (f.market, f.order_id) for f in sample.fills if f.order_id
    )
    for item, fills, signal in sample.matched():
        seen = _describe(item)
        if "id" in signal.split("+"):
            if len(fills) == 1:
                evidence.add({"fill"}, f"{seen} carries the id of its fill")
            else:
                evidence.add((), f"{seen} carries a fill's id yet stands for {len(fills)} fills")
        elif len(fills) > 1:
            orders = {f.order_id for f in fills}
            evidence.add(
                {"order"} if len(orders) == 1 else (),
                f"{seen} has an id of its own and stands for {len(fills)} fills of "
                f"{'order ' + str(orders.pop()) if len(orders) == 1 else 'several orders'}",
            )
        elif fills_per_order[(fills[0].market, fills[0].order_id)] > 1:
            count = fills_per_order[(fills[0].market, fills[0].order_id)]
            evidence.add(
                {"own"},
                f"{seen} has an id of its own and stands for 1 of the {count} fills of order "
                f"{fills[0].order_id}",
            )
        else:
            evidence.add(
                {"own", "order"},
                f"{seen} has an id of its own and stands for the one fill of its order",
            )
    return evidence


def amounts_evidence(sample: HistorySample) -> Evidence:
    evidence = Evidence()
    for item, fills, _ in sample.matched():
        quote = sum((f.quote_amount for f in fills), Decimal(0))
        shown = item.quote_amount
        fits = set()
        if shown == quote:
            fits.add("exact")
        if shown in _roundings(item, quote):
            fits.add("rounded")
        fee = item.fee if item.fee is not None and item.fee_asset == item.quote_asset else None
        if fee is not None and shown == (quote + fee if item.side == "buy" else quote - fee):
            fits.add("fee")
        evidence.add(
            fits,
            f"{_describe(item)} shows {shown.normalize():f} {item.quote_asset}, its fills' "
            f"amount × price is {quote.normalize():f}"
            + (f", its fee {fee.normalize():f}" if fee is not None else ", no fee in the quote"),
        )
    return evidence


def _roundings(item: Fill, exact: Decimal) -> set[Decimal]:
    """`exact` rounded down and up to the decimals `item`'s quote currency is kept in (the
    decimals its amount shows, for a currency `QUOTE_DECIMALS` does not name)."""
    unit = quote_unit(item)
    return {exact.quantize(unit, rounding) for rounding in (ROUND_FLOOR, ROUND_CEILING)}


def probe_history_ids(rt: Runtime, sample: HistorySample | None = None) -> CheckRow:
    """Which `bitvavo-history-ids` reality the account's history shows (the sample's cost)."""
    return _decide(IDS, ids_evidence, sample or history_sample(rt))


def probe_history_amounts(rt: Runtime, sample: HistorySample | None = None) -> CheckRow:
    """Which `bitvavo-history-amounts` reality the account's history shows (the sample's
    cost: the same requests as `probe_history_ids` when they share it)."""
    return _decide(AMOUNTS, amounts_evidence, sample or history_sample(rt))


def _decide(
    behaviour: str, evidence: Callable[[HistorySample], Evidence], sample: HistorySample
) -> CheckRow:
    return decide(
        EXCHANGE, behaviour, evidence(sample), sample.spend, nothing=_nothing(sample), fix=_FIX
    )


_FIX = "nothing to do; run tally doctor again once the account has traded on the order book"


def _nothing(sample: HistorySample) -> str:
    if not sample.items:
        return "the account's history holds no buy or sell"
    if not sample.markets:
        refused = "; ".join(sample.refused)
        return f"/v2/trades refused the markets of the newest history trades: {refused}"
    return (
        f"none of the newest {len(sample.items)} history buys and sells matched an order-book "
        f"fill of {', '.join(sample.markets)} (app trades, or fills matched ambiguously)"
    )


def _describe(item: Fill) -> str:
    return (
        f"history {item.side} {item.fill_id} ({item.base_amount.normalize():f} {item.market} at "
        f"{item.executed_at.isoformat()})"
    )


PROBES = (
    Probe(IDS, BITVAVO, True, lambda r: probe_history_ids(r.rt, r.shared(history_sample))),
    Probe(AMOUNTS, BITVAVO, True, lambda r: probe_history_amounts(r.rt, r.shared(history_sample))),
)
