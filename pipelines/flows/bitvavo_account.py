"""Bitvavo account streams: account history, fills, deposits, withdrawals, snapshots.

Run in the order the adapter declares them (`flows.account_streams.sync_account`); each stream
reads what it needs from the lake, so any of them can also run alone. Time-windowed walks go
forward in chunks (`CHUNK`), each landed
before the next is fetched, so that a crash never leaves a hole behind newer rows. Each stream
keeps one file per source: one moved to the quarantine (unreadable) is read again from the
beginning, like a stream with nothing landed.

History (`bitvavo_history`)
    `/account/history` is the only listing of app ("Price Guarantee") trades. It is read from
    the newest landed item − 2 days (from `epoch` when nothing is landed) to now, `toDate`
    pinned per walk, and upserted into BITVAVO_HISTORY (stem `history`), every type kept.

Snapshots (`bitvavo_snapshots`)
    The balance, then the fee schedule of every traded market still listed, merged into stem
    `snapshots` (`taken_at` is in the key: each run adds one snapshot).

Fills (`bitvavo_trades`)
    `/v2/trades` for every market the account trades (`traded_markets`): the configured ones,
    those the history names (delisted ones too), and asset-EUR for every asset held. Per
    market, from the oldest unsettled fill (else the newest fill) − 1 day, or from the
    account's beginning when nothing is landed; upserted into FILLS stem `trades-{MARKET}`, so
    that a fill read again once settled replaces its unsettled row. Should `/v2/trades` refuse
    a window's span (errorCode 205), the client walks it in 24 h (or shorter) pieces. A delisted
    market is read like any other where `/v2/trades` still answers for it; where it refuses the
    market (any errorCode 205 but a span refusal, for a market `/v2/markets` no longer lists;
    its text is not relied on: the docs and real logs word it differently) the refusal is
    recorded as a gap of stream `fills` with its reason (`gaps`, `coverage`) and the other
    markets go on: the market's trades are then kept from the history (derived below), never
    dropped.

Deposits and withdrawals (`bitvavo_transfers`)
    Re-read from 30 days before the newest landed one (or from the beginning) and upserted into
    TRANSFERS (stems `deposit-history`, `withdrawal-history`): a status change replaces the row,
    and a withdrawal first listed without a txid is replaced by its row with the txid.

Derived history (`derive_bitvavo_history`, local)
    The landed history classified (`classify_history_item`) into FILLS, TRANSFERS and
    OTHER_EVENTS (stem `account-history`, unknown types kept as kind "unknown"). Its buys and
    sells are matched to every landed `/v2/trades` fill by market, side, time and exact amounts
    (`match_history`: per fill or per order, never by id alone): FILLS gets the app trades only,
    so that every trade is in FILLS once, and BITVAVO_HISTORY_MATCHES (stem `account-history`)
    the links of the others to their fills, ambiguous ones with their problem. Rebuilt whole
    from the lake on every run, after the fills: a history item whose fills land on a later
    sync is matched then, and whatever crashed before converges.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import polars as pl

from pipelines.datasets import (
    BALANCE_SNAPSHOTS,
    BITVAVO_HISTORY,
    BITVAVO_HISTORY_MATCHES,
    FEE_SCHEDULES,
    FILLS,
    OTHER_EVENTS,
    TRANSFERS,
)
from pipelines.exchanges.bitvavo import EXCHANGE, BitvavoClient
from pipelines.exchanges.bitvavo_match import match_history
from pipelines.exchanges.bitvavo_parse import classify_history_item
from pipelines.exchanges.bitvavo_walk import is_span_refusal
from pipelines.exchanges.records import BitvavoHistoryItem, Fill, OtherEvent, Transfer
from pipelines.flows.account_lake import (
    Meter,
    column_range,
    file_path,
    pages_frame,
    partition_range,
    read_stem,
    records_from_frame,
    replace_stem,
    stamped_frame,
    upsert,
    upsert_transfers,
    windows,
)
from pipelines.flows.gaps import record_gap
from pipelines.flows.runtime import ACCOUNT, Runtime, StreamResult
from pipelines.http import InvalidRequestError
from pipelines.lake import Lake, reading
from pipelines.lake_store import readable
from pipelines.quarantine import holes

PARTITION = {"exchange": EXCHANGE, "account": ACCOUNT}
HISTORY_PARTITION = {"account": ACCOUNT}
HISTORY_STEM = "history"
DERIVED_STEM = "account-history"
TRADES_PREFIX = "trades-"
QUOTE = "EUR"  # Bitvavo quotes (almost) everything in EUR: a held asset X trades as X-EUR

EPOCH = datetime(2018, 1, 1, tzinfo=UTC)
"""Where an account with nothing landed is read from: before Bitvavo's public launch."""
HISTORY_REREAD = timedelta(days=2)
TRADES_REREAD = timedelta(days=1)
TRANSFERS_REREAD = timedelta(days=30)
BEGINNING_MARGIN = timedelta(days=1)
MARKET_REFUSED = "205"  # Bitvavo's errorCode for an invalid parameter, whatever its wording
FILLS_STREAM = "fills"

TransferKind = Literal["deposit", "withdrawal"]


# --- history -----------------------------------------------------------------------------------


def bitvavo_history(rt: Runtime, *, epoch: datetime = EPOCH) -> StreamResult:
    """Upsert `/account/history` from the newest landed item − 2 days (or `epoch`) to now."""
    lake, client, now = rt.lake, rt.client_as(EXCHANGE, BitvavoClient), rt.now()
    meter = Meter(f"account_history {EXCHANGE}", EXCHANGE, client.http)
    dataset = BITVAVO_HISTORY.dataset
    _, newest = column_range(lake, dataset, HISTORY_STEM, HISTORY_PARTITION)
    start = newest - HISTORY_REREAD if newest is not None else epoch
    for window_start, window_end in windows(start, now):
        pages = list(client.account_history_window(window_start, window_end))
        frame = pages_frame(BITVAVO_HISTORY, pages)
        if frame.height:
            merged = upsert(lake, dataset, frame, HISTORY_STEM, HISTORY_PARTITION)
            meter.landed(dataset, merged, int(merged > 0))
    first, last = column_range(lake, dataset, HISTORY_STEM, HISTORY_PARTITION)
    return meter.result(first=first, last=last)


def landed_history(lake: Lake) -> list[tuple[BitvavoHistoryItem, datetime | None]]:
    frame = read_stem(lake, BITVAVO_HISTORY.dataset, HISTORY_STEM, HISTORY_PARTITION)
    return [] if frame is None else records_from_frame(BitvavoHistoryItem, frame)


def account_beginning(lake: Lake, epoch: datetime = EPOCH) -> datetime:
    """The earliest landed history item or deposit − 1 day; `epoch` when none is landed."""
    starts = [
        column_range(lake, BITVAVO_HISTORY.dataset, HISTORY_STEM, HISTORY_PARTITION)[0],
        column_range(lake, TRANSFERS.dataset, "deposit-history", PARTITION)[0],
    ]
    known = [s for s in starts if s is not None]
    return min(known) - BEGINNING_MARGIN if known else epoch


# --- markets and snapshots ---------------------------------------------------------------------


def traded_markets(rt: Runtime, client: BitvavoClient) -> tuple[list[str], set[str]]:
    """(markets to read fills of, markets listed now).

    The union of the configured markets, every market the landed history trades in or that
    has landed fills (listed or not: a delisted market still has its fills) or a fills file in
    the quarantine, and asset-EUR for each asset the newest balance snapshot holds, when that
    market is listed.
    """
    lake = rt.lake
    listed = {m.market for m in client.markets()}
    markets = set(rt.settings.exchange(EXCHANGE).markets)
    for item, _ in landed_history(lake):
        row = classify_history_item(item)
        if isinstance(row, Fill):
            markets.add(row.market)
    stems = lake.stems(FILLS.dataset, **PARTITION)
    stems |= {hole.stem for hole in holes(lake, FILLS.dataset, **PARTITION)}
    markets |= {
        stem.removeprefix(TRADES_PREFIX) for stem in stems if stem.startswith(TRADES_PREFIX)
    }
    for asset in held_assets(lake):
        if asset != QUOTE and f"{asset}-{QUOTE}" in listed:
            markets.add(f"{asset}-{QUOTE}")
    return sorted(markets), listed


def held_assets(lake: Lake) -> set[str]:
    """Assets with a non-zero total in the newest landed balance snapshot."""
    path = file_path(lake, BALANCE_SNAPSHOTS.dataset, "snapshots", PARTITION)
    if not path.exists():
        return set()
    with reading(path):
        latest = (
            pl.scan_parquet(readable(path))
            .filter(pl.col("taken_at") == pl.col("taken_at").max(), pl.col("total") != 0)
            .select("asset")
            .collect()
        )
    return set(latest.get_column("asset").to_list())


def bitvavo_snapshots(rt: Runtime) -> StreamResult:
    """The balance, then the fees of every traded market still listed."""
    lake, client = rt.lake, rt.client_as(EXCHANGE, BitvavoClient)
    meter = Meter(f"snapshots {EXCHANGE}", EXCHANGE, client.http)
    balances = client.balance()
    taken = [b.taken_at for b in balances]
    if balances:
        frame = stamped_frame(BALANCE_SNAPSHOTS, ((b, b.taken_at) for b in balances))
        merged = upsert(lake, BALANCE_SNAPSHOTS.dataset, frame, "snapshots", PARTITION)
        meter.landed(BALANCE_SNAPSHOTS.dataset, merged, int(merged > 0))
    markets, listed = traded_markets(rt, client)
    fees = [client.fees(market) for market in markets if market in listed]
    taken += [f.taken_at for f in fees]
    if fees:
        frame = stamped_frame(FEE_SCHEDULES, ((f, f.taken_at) for f in fees))
        merged = upsert(lake, FEE_SCHEDULES.dataset, frame, "snapshots", PARTITION)
        meter.landed(FEE_SCHEDULES.dataset, merged, int(merged > 0))
    return meter.result(first=min(taken, default=None), last=max(taken, default=None))


# --- fills ---------------------------------------------------------------------------------------


def bitvavo_trades(
    rt: Runtime, markets: Sequence[str] | None = None, *, epoch: datetime = EPOCH
) -> StreamResult:
    """Upsert `/v2/trades` of every traded market (or of `markets`), each from its own start.

    A market that fails does not hold the others back: they are read, then the first failure
    is raised (what landed stays landed; the next run resumes the failed market where it was).
    A delisted market that `/v2/trades` refuses is not a failure: it is recorded as a gap.
    """
    lake, client, now = rt.lake, rt.client_as(EXCHANGE, BitvavoClient), rt.now()
    meter = Meter(f"trades {EXCHANGE}", EXCHANGE, client.http)
    listed: set[str] | None = None
    if markets is None:
        markets, listed = traded_markets(rt, client)
    beginning = account_beginning(lake, epoch)
    failures: list[tuple[str, Exception]] = []
    gaps: list[str] = []
    for market in markets:
        try:
            _market_fills(rt, client, meter, market, beginning, now)
        except InvalidRequestError as error:
            first = None
            # the 205's text is worded two ways ("market parameter is invalid.", "Invalid
            # parameter: market"): any 205 but a span refusal, for an unlisted market
            if error.code == MARKET_REFUSED and not is_span_refusal(error):
                listed = {m.market for m in client.markets()} if listed is None else listed
                first = None if market in listed else first_traded(lake, market)
            if first is None:  # a listed market, or one the account never traded: a failure
                failures.append((market, error))
            else:
                gaps.append(_refused_market_gap(lake, market, error, first, now))
        except Exception as error:  # re-raised below, after the other markets
            failures.append((market, error))
    if failures:
        failure = failures[0][1]
        if len(failures) > 1:
            failure.add_note(f"bitvavo trades also failed for {[m for m, _ in failures[1:]]}")
        raise failure
    first, last = partition_range(lake, FILLS.dataset, PARTITION)
    return meter.result(first=first, last=last, gaps=gaps)


def first_traded(lake: Lake, market: str) -> datetime | None:
    """When the account first traded `market`, from the landed history and fills (None: never)."""
    times = [
        item.executed_at
        for item, _ in landed_history(lake)
        if isinstance(row := classify_history_item(item), Fill) and row.market == market
    ]
    first, _ = column_range(lake, FILLS.dataset, f"{TRADES_PREFIX}{market}", PARTITION)
    return min([*times, *([first] if first is not None else [])], default=None)


def _refused_market_gap(
    lake: Lake, market: str, error: InvalidRequestError, first: datetime, now: datetime
) -> str:
    """Record that `/v2/trades` refuses the delisted `market` the account traded: from its first
    trade to now its fills are not served (they are kept from `/account/history`)."""
    reason = (
        f"bitvavo /v2/trades refuses {market}, which /v2/markets no longer lists "
        f"(errorCode {error.code}: {error}); its trades are kept from /account/history"
    )
    return record_gap(
        lake,
        exchange=EXCHANGE,
        stream=FILLS_STREAM,
        market=market,
        gap_start=first,
        gap_end=now,
        reason=reason,
        detected_at=now,
    )


def _market_fills(
    rt: Runtime,
    client: BitvavoClient,
    meter: Meter,
    market: str,
    beginning: datetime,
    now: datetime,
) -> None:
    lake, dataset = rt.lake, FILLS.dataset
    stem = f"{TRADES_PREFIX}{market}"
    start = fills_start(read_stem(lake, dataset, stem, PARTITION), beginning)
    for window_start, window_end in windows(start, now):
        frame = pages_frame(FILLS, client.trades_window(market, window_start, window_end))
        if frame.height:
            merged = upsert(lake, dataset, frame, stem, PARTITION)
            meter.landed(dataset, merged, int(merged > 0))


def fills_start(landed: pl.DataFrame | None, beginning: datetime) -> datetime:
    """(The oldest unsettled fill, else the newest fill) − 1 day; `beginning` for none."""
    if landed is None or landed.height == 0:
        return beginning
    unsettled = landed.filter(~pl.col("settled")).get_column("executed_at").min()
    anchor = unsettled if unsettled is not None else landed.get_column("executed_at").max()
    assert isinstance(anchor, datetime)
    return anchor - TRADES_REREAD


# --- deposits and withdrawals ------------------------------------------------------------------


def bitvavo_transfers(rt: Runtime, kind: TransferKind, *, epoch: datetime = EPOCH) -> StreamResult:
    """Re-read deposits (or withdrawals) from 30 days before the newest landed one and upsert."""
    lake, client, now = rt.lake, rt.client_as(EXCHANGE, BitvavoClient), rt.now()
    endpoint = "deposit_history" if kind == "deposit" else "withdrawal_history"
    meter = Meter(f"{endpoint} {EXCHANGE}", EXCHANGE, client.http)
    stem = f"{kind}-history"
    _, newest = column_range(lake, TRANSFERS.dataset, stem, PARTITION)
    start = newest - TRANSFERS_REREAD if newest is not None else account_beginning(lake, epoch)
    walk = client.deposit_history if kind == "deposit" else client.withdrawal_history
    for window_start, window_end in windows(start, now):
        frame = pages_frame(TRANSFERS, walk(start=window_start, end=window_end))
        if frame.height:
            merged = upsert_transfers(lake, frame, stem, PARTITION)
            meter.landed(TRANSFERS.dataset, merged, int(merged > 0))
    first, last = column_range(lake, TRANSFERS.dataset, stem, PARTITION)
    return meter.result(first=first, last=last)


# --- derived history -----------------------------------------------------------------------------


def derive_bitvavo_history(rt: Runtime) -> StreamResult:
    """Rebuild the `account-history` files of FILLS, TRANSFERS, OTHER_EVENTS and
    BITVAVO_HISTORY_MATCHES from the landed history and fills (no request)."""
    lake = rt.lake
    meter = Meter(f"account_history derived {EXCHANGE}", EXCHANGE)
    trades: list[Fill] = []
    transfers: list[tuple[Transfer, datetime | None]] = []
    events: list[tuple[OtherEvent, datetime | None]] = []
    fetched: dict[str, datetime | None] = {}
    items = landed_history(lake)
    for item, fetched_at in items:
        fetched[item.transaction_id] = fetched_at
        row = classify_history_item(item)
        if isinstance(row, Fill):
            trades.append(row)
        elif isinstance(row, Transfer):
            transfers.append((row, fetched_at))
        else:
            events.append((row, fetched_at))
    matching = match_history(trades, _order_book_fills(lake))
    fills = [(fill, fetched[fill.fill_id]) for fill in matching.app_trades]
    links = [(link, fetched[link.transaction_id]) for link in matching.links]
    derived = (
        (FILLS, fills, PARTITION),
        (TRANSFERS, transfers, PARTITION),
        (OTHER_EVENTS, events, PARTITION),
        (BITVAVO_HISTORY_MATCHES, links, HISTORY_PARTITION),
    )
    for source, rows, partition in derived:
        frame = stamped_frame(source, rows)
        files, fresh = replace_stem(lake, source.dataset, frame, DERIVED_STEM, partition)
        meter.landed(source.dataset, fresh, files)
    times = [item.executed_at for item, _ in items]
    return meter.result(first=min(times, default=None), last=max(times, default=None))


def _order_book_fills(lake: Lake) -> list[Fill]:
    """Every fill landed from `/v2/trades`, once (the newest fetch of each)."""
    frame = (
        lake.scan(FILLS.dataset, **PARTITION)
        .filter(pl.col("source") == "trades")
        .sort("fetched_at")
        .unique(subset=["market", "fill_id"], keep="last", maintain_order=True)
        .collect()
    )
    return [fill for fill, _ in records_from_frame(Fill, frame)]
