"""Bitstamp account streams: the ledger, crypto transactions, balance and fee snapshots.

Ledger (`bitstamp_ledger`)
    Every `user_transactions` page (ascending ids, up to 1000 rows, every type kept) lands as
    one BITSTAMP_LEDGER file `ids-{first:015d}-{last:015d}`; THEN its rows are classified
    (`classify_entry`) into FILLS, TRANSFERS and OTHER_EVENTS, each as the file
    `user_transactions-ids-…` of the same range. The derived files are always built from the
    landed ledger file, never from memory, so that the repair below and a normal run are one
    code path.

    The walk resumes at the newest file: after its largest id when it holds a full page; at its
    first id when it holds fewer rows (the newest rows as of the last run), so that the page
    read again, old rows plus new ones, replaces it and files stay one exchange page each
    instead of one small file per run. A page read again with nothing new writes nothing: a
    run with nothing new makes one request and no write. A ledger file in the quarantine (it
    could not be read) is a hole behind the newest file: the walk starts at its first id instead,
    reads the pages after it again (landed ones unchanged are skipped) and lands the hole's page.

    Every run first repairs locally, without a request: a file contained in a newer one (a
    crash between landing the replacement and deleting the replaced) is deleted; derived files
    whose ledger file is gone are deleted; a ledger file whose derived files are missing (a
    crash between the two writes) is derived again.

Crypto transactions (`bitstamp_crypto_transactions`)
    `crypto-transactions` (addresses, txids) has no cursor: every run reads it all, by offset,
    until every list is exhausted whether `limit` applies to each list or to the lists together
    (`BitstampClient.all_crypto_transactions`, each row once), and upserts it into TRANSFERS
    (ripple IOU rows into OTHER_EVENTS), stem `crypto-transactions`, source
    "crypto-transactions". The warehouse matches them to ledger rows (±1 h and amount).

Snapshots (`bitstamp_snapshots`)
    Balances, trading fees and withdrawal fees, merged into stem `snapshots`; `taken_at` (the
    response time) is part of the key, so every run adds one snapshot.
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl

from pipelines.datasets import (
    BALANCE_SNAPSHOTS,
    BITSTAMP_LEDGER,
    FEE_SCHEDULES,
    FILLS,
    OTHER_EVENTS,
    TRANSFERS,
    WITHDRAWAL_FEES,
    RecordDataset,
)
from pipelines.exchanges.bitstamp import CRYPTO_PAGE, EXCHANGE, LEDGER_PAGE, BitstampClient
from pipelines.exchanges.bitstamp_parse import classify_entry
from pipelines.exchanges.records import Fill, LedgerEntry, OtherEvent, Transfer
from pipelines.flows.account_lake import (
    Meter,
    file_path,
    partition_range,
    read_stem,
    records_from_frame,
    replace_stem,
    stamped_frame,
    upsert,
    upsert_transfers,
)
from pipelines.flows.runtime import ACCOUNT, Runtime, StreamResult
from pipelines.lake import Lake, reading
from pipelines.lake_store import LakeFile, readable
from pipelines.quarantine import holes

LEDGER_PARTITION = {"account": ACCOUNT}
PARTITION = {"exchange": EXCHANGE, "account": ACCOUNT}
DERIVED = (FILLS, TRANSFERS, OTHER_EVENTS)
DERIVED_PREFIX = "user_transactions-"
_LEDGER_STEM = re.compile(r"^ids-(\d{15})-(\d{15})$")


def ledger_stem(first: int, last: int) -> str:
    return f"ids-{first:015d}-{last:015d}"


def ledger_range(stem: str) -> tuple[int, int] | None:
    """`ids-…-…` → (first id, last id); None for any other stem."""
    match = _LEDGER_STEM.match(stem)
    return (int(match.group(1)), int(match.group(2))) if match else None


def derived_stem(stem: str) -> str:
    return f"{DERIVED_PREFIX}{stem}"


# --- ledger ----------------------------------------------------------------------------------


def bitstamp_ledger(rt: Runtime) -> StreamResult:
    """Land every new `user_transactions` page and its classified rows (see module docstring)."""
    lake = rt.lake
    client = rt.client_as(EXCHANGE, BitstampClient)
    meter = Meter(f"ledger {EXCHANGE}", EXCHANGE, client.http)
    repair_ledger(lake, meter)
    stems = _ledger_stems(lake)
    since, known_max = _resume(lake, stems)
    missing = [h.ids for h in holes(lake, BITSTAMP_LEDGER.dataset, **LEDGER_PARTITION) if h.ids]
    since = min([since, *(first for first, _ in missing)])
    for page in client.ledger_since(since):
        if not page.records:
            break
        ids = [entry.entry_id for entry in page.records]
        first, last = min(ids), max(ids)
        stem = ledger_stem(first, last)
        if stem in stems and _row_count(_ledger_path(lake, stem)) == len(ids):
            continue  # the newest page (or one after a hole) read again: nothing new
        frame = BITSTAMP_LEDGER.frame(page.records, fetched_at=page.fetched_at)
        lake.land(BITSTAMP_LEDGER.dataset, frame, stem=stem)
        # rows are new above the largest id landed, and all of them in a hole filled again
        new_after = first - 1 if any(a <= last and first <= b for a, b in missing) else known_max
        meter.landed(BITSTAMP_LEDGER.dataset, sum(1 for i in ids if i > new_after), 1)
        derive_ledger_file(lake, stem, meter, new_after=new_after)
        for old, (old_first, old_last) in list(stems.items()):
            if old != stem and first <= old_first and old_last <= last:
                drop_ledger_file(lake, old)
                del stems[old]
        stems[stem] = (first, last)
    first_at, last_at = partition_range(lake, BITSTAMP_LEDGER.dataset, LEDGER_PARTITION)
    return meter.result(first=first_at, last=last_at)


def _ledger_path(lake: Lake, stem: str) -> LakeFile:
    return file_path(lake, BITSTAMP_LEDGER.dataset, stem, LEDGER_PARTITION)


def _ledger_stems(lake: Lake) -> dict[str, tuple[int, int]]:
    stems = {}
    for stem in lake.stems(BITSTAMP_LEDGER.dataset, **LEDGER_PARTITION):
        bounds = ledger_range(stem)
        if bounds is not None:
            stems[stem] = bounds
    return stems


def _row_count(path: LakeFile) -> int:
    with reading(path):
        return int(pl.scan_parquet(readable(path)).select(pl.len()).collect().item())


def _resume(lake: Lake, stems: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(since_id to ask for, largest id landed): re-read the newest file unless it is full."""
    if not stems:
        return 1, 0
    stem, (first, last) = max(stems.items(), key=lambda item: item[1][1])
    if _row_count(_ledger_path(lake, stem)) < LEDGER_PAGE:
        return first, last
    return last + 1, last


def derive_ledger_file(lake: Lake, stem: str, meter: Meter, *, new_after: int = 0) -> None:
    """(Re)build the FILLS / TRANSFERS / OTHER_EVENTS files of the ledger file `stem`.

    Local only. Files already holding the right rows are left alone; `meter` counts the rows
    of entries with an id above `new_after`.
    """
    frame = read_stem(lake, BITSTAMP_LEDGER.dataset, stem, LEDGER_PARTITION)
    if frame is None:
        return
    by_kind: dict[str, list[tuple[Fill | Transfer | OtherEvent, datetime | None]]] = {
        d.dataset.name: [] for d in DERIVED
    }
    fresh = dict.fromkeys(by_kind, 0)
    for entry, fetched_at in records_from_frame(LedgerEntry, frame):
        row = classify_entry(entry)
        name = _target(row).dataset.name
        by_kind[name].append((row, fetched_at))
        fresh[name] += int(entry.entry_id > new_after)
    for source in DERIVED:
        name = source.dataset.name
        derived = stamped_frame(source, by_kind[name])
        written, _ = replace_stem(lake, source.dataset, derived, derived_stem(stem), PARTITION)
        meter.landed(source.dataset, fresh[name] if written else 0, written)


def _target(row: Fill | Transfer | OtherEvent) -> RecordDataset:
    if isinstance(row, Fill):
        return FILLS
    if isinstance(row, Transfer):
        return TRANSFERS
    return OTHER_EVENTS


def drop_ledger_file(lake: Lake, stem: str) -> None:
    """Delete a ledger file, then its derived files (a crash in between leaves orphans that
    `repair_ledger` removes)."""
    _ledger_path(lake, stem).unlink(missing_ok=True)
    for source in DERIVED:
        file_path(lake, source.dataset, derived_stem(stem), PARTITION).unlink(missing_ok=True)


def repair_ledger(lake: Lake, meter: Meter) -> None:
    """Make the derived files match the ledger files, without any request (module docstring)."""
    stems = _ledger_stems(lake)
    for stem, (first, last) in list(stems.items()):
        if any(o != stem and f <= first and last <= t for o, (f, t) in stems.items()):
            drop_ledger_file(lake, stem)
            del stems[stem]
    expected = {derived_stem(stem) for stem in stems}
    present = {}
    for source in DERIVED:
        landed = {
            s for s in lake.stems(source.dataset, **PARTITION) if s.startswith(DERIVED_PREFIX)
        }
        for orphan in landed - expected:
            file_path(lake, source.dataset, orphan, PARTITION).unlink(missing_ok=True)
        present[source.dataset.name] = landed & expected
    for stem in sorted(stems):
        if not all(derived_stem(stem) in names for names in present.values()):
            # Some files may be legitimately absent (a page without transfers): deriving again
            # rewrites only what is missing or different.
            derive_ledger_file(lake, stem, meter)


# --- crypto transactions -----------------------------------------------------------------------


def bitstamp_crypto_transactions(rt: Runtime, *, limit: int = CRYPTO_PAGE) -> StreamResult:
    """Read every crypto deposit and withdrawal (addresses, txids) and upsert them; `limit`
    is the page size (the API's maximum unless a test pages in small steps)."""
    lake = rt.lake
    client = rt.client_as(EXCHANGE, BitstampClient)
    meter = Meter(f"crypto_transactions {EXCHANGE}", EXCHANGE, client.http)
    pages = list(client.all_crypto_transactions(limit=limit))
    transfers = [
        (row, page.fetched_at)
        for page in pages
        for row in page.records
        if isinstance(row, Transfer)
    ]
    events = [
        (row, page.fetched_at)
        for page in pages
        for row in page.records
        if isinstance(row, OtherEvent)
    ]
    stem = "crypto-transactions"
    if transfers:
        merged = upsert_transfers(lake, stamped_frame(TRANSFERS, transfers), stem, PARTITION)
        meter.landed(TRANSFERS.dataset, merged, int(merged > 0))
    if events:
        merged = upsert(
            lake, OTHER_EVENTS.dataset, stamped_frame(OTHER_EVENTS, events), stem, PARTITION
        )
        meter.landed(OTHER_EVENTS.dataset, merged, int(merged > 0))
    times = [row.executed_at for row, _ in transfers] + [row.executed_at for row, _ in events]
    return meter.result(first=min(times, default=None), last=max(times, default=None))


# --- snapshots -------------------------------------------------------------------------------


def bitstamp_snapshots(rt: Runtime) -> StreamResult:
    """One snapshot of the balances, trading fees and withdrawal fees."""
    lake = rt.lake
    client = rt.client_as(EXCHANGE, BitstampClient)
    meter = Meter(f"snapshots {EXCHANGE}", EXCHANGE, client.http)
    balances = client.balances()
    trading = client.trading_fees()
    withdrawal = client.withdrawal_fees()
    taken = [s.taken_at for group in (balances, trading, withdrawal) for s in group]
    for source, records, partition in (
        (BALANCE_SNAPSHOTS, balances, PARTITION),
        (FEE_SCHEDULES, trading, PARTITION),
        (WITHDRAWAL_FEES, withdrawal, {"exchange": EXCHANGE}),
    ):
        if records:
            frame = stamped_frame(source, ((r, r.taken_at) for r in records))
            merged = upsert(lake, source.dataset, frame, "snapshots", partition)
            meter.landed(source.dataset, merged, int(merged > 0))
    return meter.result(first=min(taken, default=None), last=max(taken, default=None))
