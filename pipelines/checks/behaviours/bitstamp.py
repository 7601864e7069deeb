"""Probes of Bitstamp's open points: crypto-transactions paging, OHLC before a listing,
perpetual markets.

- `bitstamp-crypto-limit`: crypto-transactions with `limit=1` (needs the key). One row from
  each of two lists: `per-list`. One row in all: the same with `limit=1000`; rows in two lists
  or more: `combined`; rows in one list only: both readings page it alike. 1–2 requests.
- `bitstamp-ohlc-before-listing`: daily OHLC of a market with `end` = `BEFORE_BITSTAMP` (before
  Bitstamp traded anything, so before every pair's listing), `limit=1`. Nothing: `empty`;
  zero-volume candles at or before `end`: `zero`; a candle after `end`: `first`, once OHLC with
  `end` = that candle's time confirms it is the pair's first (not the newest: `end` ignored).
  1–2 requests, public.
- `bitstamp-perps`: `/markets/`; a market with `market_type` PERPETUAL (or a `-perp` symbol):
  `on`; only spot markets: `off`; another kind of market is reported as seen. 1 request, public.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide, settled, unknown, unsettled
from pipelines.exchanges.bitstamp import CRYPTO_PAGE, BitstampClient, pair_symbol
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.records import MarketInfo, OtherEvent, Transfer
from pipelines.flows.runtime import Runtime
from pipelines.http import InvalidRequestError

EXCHANGE = BITSTAMP.name
CRYPTO = "bitstamp-crypto-limit"
OHLC = "bitstamp-ohlc-before-listing"
PERPS = "bitstamp-perps"
BEFORE_BITSTAMP = datetime(2011, 1, 1, tzinfo=UTC)
OHLC_INTERVAL = "1d"
DEFAULT_MARKET = "BTC-USD"
LISTS = {"deposit": "deposits", "withdrawal": "withdrawals", "ripple_iou": "ripple IOUs"}


def probe_crypto_limit(rt: Runtime) -> CheckRow:
    """Whether crypto-transactions' `limit` slices each list or the lists together."""
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitstampClient))
    one = _per_list(client.crypto_transactions(offset=0, limit=1).records)
    if not one:
        return unsettled(EXCHANGE, CRYPTO, "the account has no crypto deposit or withdrawal", spend)
    if max(one.values()) > 1:
        seen = f"limit=1 returned {_counts(one)}: `limit` is not applied as either reading has it."
        return unknown(EXCHANGE, CRYPTO, seen, spend)
    if len(one) > 1:
        return settled(EXCHANGE, CRYPTO, "per-list", f"limit=1 returned {_counts(one)}", spend)
    page = _per_list(client.crypto_transactions(offset=0, limit=CRYPTO_PAGE).records)
    if len(page) > 1:
        seen = f"limit=1 returned {_counts(one)} in all, limit={CRYPTO_PAGE} {_counts(page)}"
        return settled(EXCHANGE, CRYPTO, "combined", seen, spend)
    (only,) = page
    why = f"the account's crypto transactions are all {only}, which both readings page alike"
    return unsettled(EXCHANGE, CRYPTO, why, spend)


def probe_ohlc_before_listing(rt: Runtime, market: str | None = None) -> CheckRow:
    """What daily OHLC answers for an `end` before the pair's listing."""
    market = market or _market(rt)
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitstampClient))
    asked = (
        f"/ohlc/{pair_symbol(market)}/ step 86400 with end {int(BEFORE_BITSTAMP.timestamp())} "
        f"({BEFORE_BITSTAMP.date()}, before Bitstamp's first trade)"
    )
    evidence = Evidence()
    try:
        candles = client.ohlc(market, OHLC_INTERVAL, end=BEFORE_BITSTAMP, limit=1).records
    except InvalidRequestError as error:  # an answer too, if none tally was built for
        evidence.add((), f"{asked} was refused: {error}.")
        return decide(EXCHANGE, OHLC, evidence, spend, nothing="")
    if not candles:
        evidence.add({"empty"}, f"{asked} returned no candle")
    for candle in candles:
        volume = candle.volume.normalize()
        at = f"a candle opening at {candle.open_time.isoformat()}, volume {volume:f}"
        if candle.open_time <= BEFORE_BITSTAMP:
            fits = {"zero"} if candle.volume == 0 else set()
            evidence.add(fits, f"{asked} returned {at}")
            continue
        again = client.ohlc(market, OHLC_INTERVAL, end=candle.open_time, limit=1).records
        newest = max((c.open_time for c in again), default=None)
        confirmed = newest == candle.open_time
        evidence.add(
            {"first"} if confirmed else (),
            f"{asked} returned {at}, and end {int(candle.open_time.timestamp())} returned "
            + ("it as the newest candle: the pair's first" if confirmed else f"{newest}")
            + ("" if confirmed else " as the newest: `end` is ignored or clamped"),
        )
    return decide(EXCHANGE, OHLC, evidence, spend, nothing="")


def probe_perps(rt: Runtime) -> CheckRow:
    """Whether `/markets/` lists perpetual markets."""
    spend = Spend()
    markets = spend.use(rt.client(EXCHANGE)).markets()
    kinds = Counter(market_kind(m) for m in markets)
    named = {kind: [m.market for m in markets if market_kind(m) == kind] for kind in kinds}
    others = sorted(kind for kind in kinds if kind not in ("SPOT", "PERPETUAL"))
    if others:
        listed = "; ".join(f"{k}: {', '.join(named[k][:3])}" for k in others)
        return unknown(
            EXCHANGE,
            PERPS,
            f"/markets/ lists markets neither spot nor perpetual ({listed}).",
            spend,
        )
    if kinds["PERPETUAL"]:
        perps = ", ".join(named["PERPETUAL"][:3])
        count = kinds["PERPETUAL"]
        seen = f"/markets/ lists {count} perpetual market{'' if count == 1 else 's'} ({perps})"
        return settled(EXCHANGE, PERPS, "on", seen, spend)
    return settled(
        EXCHANGE, PERPS, "off", f"/markets/ lists {kinds['SPOT']} spot markets only", spend
    )


def market_kind(market: MarketInfo) -> str:
    """SPOT, PERPETUAL or whatever else `market_type` says (a `-perp` symbol without one is
    PERPETUAL; none at all, as in the older pair lists, is SPOT)."""
    kind = market.extra.get("market_type")
    if isinstance(kind, str) and kind:
        return kind.upper()
    return "PERPETUAL" if market.symbol.lower().endswith("-perp") else "SPOT"


def _per_list(rows: Iterable[Transfer | OtherEvent]) -> Counter[str]:
    """Rows per list of a crypto-transactions page."""
    return Counter(LISTS.get(row.kind, row.kind) for row in rows)


def _counts(lists: Counter[str]) -> str:
    return ", ".join(f"{count} of {name}" for name, count in sorted(lists.items()))


def _market(rt: Runtime) -> str:
    markets = rt.settings.exchange(EXCHANGE).markets
    return markets[0] if markets else DEFAULT_MARKET


PROBES = (
    Probe(CRYPTO, BITSTAMP, True, lambda r: probe_crypto_limit(r.rt)),
    Probe(OHLC, BITSTAMP, False, lambda r: probe_ohlc_before_listing(r.rt)),
    Probe(PERPS, BITSTAMP, False, lambda r: probe_perps(r.rt)),
)
