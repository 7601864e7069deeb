"""Probes of Bitvavo's trades endpoints: the span account trades accept, and what `end` and
`start` mean.

- `bitvavo-trades-span`: account `/v2/trades` of a market over the span one sync window asks
  for (`CHUNK`, 91 days), limit 1. Accepted: `none`. Refused with a 205 about the span: the same
  over 24 h; accepted: `24h`. 1–2 requests, weight 5–10. Needs the key.
- `bitvavo-trades-end`: the newest public trade of a market in the last `RECENT` (limit 1), then
  the newest trade with `end` = that trade's timestamp (limit 1). A trade at exactly `end`
  comes back: `inclusive`; an older one or none: `exclusive`. 2 requests, weight 10 (1 and 5
  when the market had no trade lately: skipped), public.
- `bitvavo-trades-start`: the newest public trade of a market in the last `RECENT` (limit 1),
  then the trades from `start` = that trade's timestamp to now (limit 1000). The trade at
  exactly `start` comes back: `inclusive`; only later ones, or none: `exclusive`. 2 requests,
  weight 10 (1 and 5 when the market had no trade lately: skipped), public.
  Account trades are taken to read `end` and `start` as public trades do; tally's walks are
  right either way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide, settled, unknown, unsettled
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_walk import is_span_refusal
from pipelines.exchanges.limits import MAX_TRADE_SPAN
from pipelines.flows.account_lake import CHUNK
from pipelines.flows.runtime import Runtime
from pipelines.http import InvalidRequestError

EXCHANGE = BITVAVO.name
SPAN = "bitvavo-trades-span"
END = "bitvavo-trades-end"
START = "bitvavo-trades-start"
RECENT = timedelta(hours=12)
DEFAULT_MARKET = "BTC-EUR"


def probe_trades_span(rt: Runtime, market: str | None = None) -> CheckRow:
    """Whether account `/v2/trades` accepts a sync window's span, or only 24 h."""
    market = market or _market(rt)
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    try:
        client.trades(market, start=now - CHUNK, end=now, limit=1)
    except InvalidRequestError as error:
        if not is_span_refusal(error):
            return unknown(
                EXCHANGE,
                SPAN,
                f"/v2/trades?market={market} over {CHUNK.days} days was refused, not for its "
                f"span: {error}.",
                spend,
            )
        long_refusal = error
    else:
        seen = f"/v2/trades?market={market} over {CHUNK.days} days answered"
        return settled(EXCHANGE, SPAN, "none", seen, spend)
    try:
        client.trades(market, start=now - MAX_TRADE_SPAN, end=now, limit=1)
    except InvalidRequestError as error:
        return unknown(
            EXCHANGE,
            SPAN,
            f"/v2/trades?market={market} was refused over {CHUNK.days} days ({long_refusal}) "
            f"and over 24 h too ({error}); tally halves the span until one is accepted.",
            spend,
        )
    seen = (
        f"/v2/trades?market={market} over {CHUNK.days} days was refused ({long_refusal}), "
        "over 24 h answered"
    )
    return settled(EXCHANGE, SPAN, "24h", seen, spend)


def probe_trades_end(rt: Runtime, market: str | None = None) -> CheckRow:
    """Whether a trades request includes the trades at exactly its `end` (public trades)."""
    market = market or _market(rt)
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    newest = client.public_trades(market, start=now - RECENT, end=now, limit=1).records
    if not newest:
        hours = int(RECENT.total_seconds() // 3600)
        return unsettled(EXCHANGE, END, f"{market} had no trade in the last {hours} h", spend)
    trade = newest[0]
    moment = trade.traded_at
    page = client.public_trades(market, start=moment - RECENT, end=moment, limit=1)
    asked = f"/{market}/trades with end {_ms(moment)}, the time of trade {trade.trade_id},"
    evidence = Evidence()
    if not page.records:
        evidence.add({"exclusive"}, f"{asked} returned no trade")
    else:
        got = page.records[0]
        at = f"trade {got.trade_id} at {_ms(got.traded_at)}"
        if got.traded_at == moment:
            evidence.add({"inclusive"}, f"{asked} returned {at}, at exactly end")
        elif got.traded_at < moment:
            evidence.add({"exclusive"}, f"{asked} returned {at} as the newest, before end")
        else:
            evidence.add((), f"{asked} returned {at}, after end.")
    return decide(EXCHANGE, END, evidence, spend, nothing="")


def probe_trades_start(rt: Runtime, market: str | None = None) -> CheckRow:
    """Whether a trades request includes the trades at exactly its `start` (public trades)."""
    market = market or _market(rt)
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    newest = client.public_trades(market, start=now - RECENT, end=now, limit=1).records
    if not newest:
        hours = int(RECENT.total_seconds() // 3600)
        return unsettled(EXCHANGE, START, f"{market} had no trade in the last {hours} h", spend)
    trade = newest[0]
    moment = trade.traded_at
    page = client.public_trades(market, start=moment, end=now, limit=1000)
    asked = f"/{market}/trades with start {_ms(moment)}, the time of trade {trade.trade_id},"
    evidence = Evidence()
    times = [got.traded_at for got in page.records]
    if moment in times:
        evidence.add({"inclusive"}, f"{asked} returned trades at exactly start")
    elif all(time > moment for time in times):
        evidence.add({"exclusive"}, f"{asked} returned {len(times)} trades, none at start")
    else:
        evidence.add((), f"{asked} returned a trade before start.")
    return decide(EXCHANGE, START, evidence, spend, nothing="")


def _market(rt: Runtime) -> str:
    markets = rt.settings.exchange(EXCHANGE).markets
    return markets[0] if markets else DEFAULT_MARKET


def _ms(moment: datetime) -> str:
    milliseconds = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return f"{milliseconds} ({moment.isoformat()})"


PROBES = (
    Probe(SPAN, BITVAVO, True, lambda r: probe_trades_span(r.rt)),
    Probe(END, BITVAVO, False, lambda r: probe_trades_end(r.rt)),
    Probe(START, BITVAVO, False, lambda r: probe_trades_start(r.rt)),
)
