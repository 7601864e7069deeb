"""The quarantine: lake files that cannot be read are moved aside, noted, and fetched again.

    report = quarantine_lake(settings)      # `tally sync` and `tally warehouse`, before they read
    report = inspect_lake(settings)         # `tally status`, `tally doctor`: moves nothing

`quarantine_lake` checks every lake file (`lake_check`: placement, footer, columns, pages; a file
verified before and unchanged since is skipped) and moves each unreadable one from
`<data_dir>/lake/<path>` (or the lake's prefix on S3: copied, then deleted) to
`<data_dir>/quarantine/<path>`, with a note beside it
(`<name>.parquet.json`: the original path, dataset, partition, the window or id range its name
tells, what it held when last verified, size, sha256, when, the reader's error, and what happens
next).
The notes are the record; the lake dataset `quarantined_files` (one file, rewritten from the
notes whenever they change) is their index, for the warehouse (`coverage` shows each hole with
its reason) and for the streams (`holes`).

How a hole is filled again: the next sync reads the lake, which no longer holds the file.
Windowed streams (candles, Bitvavo public trades) plan the hole's window again (`holes`); the
Bitstamp ledger restarts its walk at the hole's first id (`holes`); streams kept in one file per
source (the Bitvavo history, fills, deposits, withdrawals; Bitstamp crypto transactions) read
from the beginning when their file is missing; derived files (fills, transfers and other events
of a ledger page or of the Bitvavo history, the history matches) are derived again from their
source. Snapshots (balances, fees), recorded gaps and Bitstamp public trades older than its 24 h
window cannot be fetched again: their notes say so. Each run of `quarantine_lake` marks a note
restored once the lake covers its file again (the same window, id range or file), and `coverage`
stops showing it.

What is left in place (`plan`): the files of a dataset of which `BREAKER` or more fail the same
way (a change of tally, of its readers or of a dataset's layout looks like that, damage does
not), and a file of a dataset that cannot be fetched again failing for its columns (a schema
reason, not damage); the other files move, and the report says why each kept one stayed, one
line each: a sync goes on (a reader that meets a kept file stops there naming it, exit 1), and
`tally warehouse`, whose views would read them, stops (`strict`, exit 1). A file is moved only
if it is still the version that was checked (size, mtime, inode), and its note is written before
it moves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.atomic import write_bytes, write_text
from pipelines.config import Settings
from pipelines.datasets import ALL, GAPS, PUBLIC_TRADES, QUARANTINED_FILES
from pipelines.exchanges.ingestion import RollingTrades
from pipelines.exchanges.registry import EXCHANGES
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.lake import TIMESTAMP, Dataset, Lake, UnreadableFileError
from pipelines.lake_check import CACHE_NAME, BadFile, LakeCheck, check_lake, stamp_of
from pipelines.lake_store import LakeFile, ObjectPath

QUARANTINE_DIR = "quarantine"
LAKE_DIR = "lake"  # how paths are shown: relative to the data directory
INDEX_STEM = "index"
CHECKED: tuple[Dataset, ...] = (*(source.dataset for source in ALL.values()), GAPS)
"""The datasets whose files are checked (the index below is rewritten from the notes instead)."""

BREAKER = 3
"""Files of one dataset failing the same way that stop the quarantine (see `plan`)."""
REFETCH = "the next `tally sync` fetches it again"
NOTHING_MISSING = "nothing is missing: tally never reads a file there"
_LOST = {
    "balance_snapshots": "a snapshot is taken when read: those in this file are lost "
    "(the next sync takes a new one)",
    "fee_schedules": "a snapshot is taken when read: those in this file are lost "
    "(the next sync takes a new one)",
    "withdrawal_fees": "a snapshot is taken when read: those in this file are lost "
    "(the next sync takes a new one)",
    "gaps": "the gaps recorded in this file are lost (a stream records a gap again when it "
    "meets it again)",
}
_EXCHANGE_OF_DATASET = {
    dataset: exchange.name
    for exchange in EXCHANGES.values()
    for stream in exchange.ingestion.streams
    for dataset in (stream.dataset, *stream.also)
    if "exchange" not in ALL[dataset].dataset.schema
}
"""The datasets of one exchange's own (no `exchange` column: the dataset names it)."""
_WINDOW = re.compile(r"^(\d{8}T\d{6})-(\d{8}T\d{6})$")
_IDS = re.compile(r"^(?P<prefix>.*?)ids-(?P<first>\d+)-(?P<last>\d+)$")
_MARKET = re.compile(r"^[a-z_]+-(?P<market>[A-Z0-9]+-[A-Z0-9]+)$")  # e.g. trades-BTC-EUR
_STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class Note:
    """What the quarantine knows of one file it holds (the fields of `QUARANTINED_FILES`)."""

    path: str
    quarantined_at: datetime
    dataset: str
    partition: str
    stem: str
    exchange: str | None
    market: str | None
    interval: str | None
    window_start: datetime | None
    window_end: datetime | None
    first_id: int | None
    last_id: int | None
    rows: int | None
    first_at: datetime | None
    last_at: datetime | None
    size: int
    sha256: str
    reason: str
    refetchable: bool
    refetch: str
    held_at: str
    restored_at: datetime | None = None

    def to_json(self, original: LakeFile) -> str:
        data: dict[str, Any] = {"original": str(original)}
        for name, value in dataclasses.asdict(self).items():
            data[name] = value.isoformat() if isinstance(value, datetime) else value
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Note:
        data = json.loads(text)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = data.get(field.name)
            if value is not None and QUARANTINED_FILES.schema[field.name] == TIMESTAMP:
                value = datetime.fromisoformat(value)
            values[field.name] = value
        return cls(**values)

    @property
    def waiting(self) -> bool:
        """Not covered again yet, and the next sync will fetch it."""
        return self.restored_at is None and self.refetchable

    @property
    def lost(self) -> bool:
        return self.restored_at is None and not self.refetchable


@dataclass(frozen=True)
class Hole:
    """A quarantined file a stream must read again: its stem, and the window or the id range
    its name tells."""

    stem: str
    window: tuple[datetime, datetime] | None
    ids: tuple[int, int] | None


@dataclass(frozen=True)
class QuarantineReport:
    check: LakeCheck
    moved: tuple[Note, ...] = ()
    restored: tuple[Note, ...] = ()
    notes: tuple[Note, ...] = ()  # every file held, after this run
    unreadable: tuple[BadFile, ...] = ()  # found and not moved (an inspection moves nothing)
    refused: tuple[str, ...] = ()  # why nothing will be moved, one line each (see `plan`)


def quarantine_dir(settings: Settings) -> Path:
    return settings.data_dir / QUARANTINE_DIR


def quarantine_lake(
    settings: Settings, *, now: datetime | None = None, strict: bool = False
) -> QuarantineReport:
    """Move every unreadable lake file that `plan` lets move to the quarantine, mark the holes
    the lake covers again as restored, and rewrite the index when the notes changed. The files
    `plan` keeps stay where they are, named in the report's `refused` lines; with `strict`
    (`tally warehouse`, whose views would read them) those lines then raise an `OperatorError`
    (exit 1), after the others have moved."""
    now = now or datetime.now(UTC)
    lake = Lake.of(settings)
    check = check_lake(lake, CHECKED, settings.data_dir / CACHE_NAME, save=True)
    movable, refused = plan(check.bad)
    try:
        moved = tuple(
            note for bad in movable if (note := _move(settings, lake, bad, now)) is not None
        )
    except OSError as error:  # a full disk, a read-only data directory
        raise OperatorError(
            f"cannot move an unreadable lake file to {quarantine_dir(settings)}: {error}",
            exit_code=ExitCode.DATA,
        ) from error
    notes = held_notes(settings)
    restored = []
    for note_path, note in notes:
        if note.restored_at is None and _covered_again(lake, note):
            note = dataclasses.replace(note, restored_at=now)
            _write_text(note_path, note.to_json(lake.root / note.path))
            restored.append(note)
    final = tuple(note for _, note in held_notes(settings))
    write_index(lake, final)
    if refused and strict:
        raise OperatorError(*refused, exit_code=ExitCode.DATA)
    kept = tuple(bad for bad in check.bad if bad not in movable)
    return QuarantineReport(check, moved, tuple(restored), final, unreadable=kept, refused=refused)


def inspect_lake(settings: Settings) -> QuarantineReport:
    """What `quarantine_lake` would find, moving and writing nothing."""
    lake = Lake.of(settings)
    check = check_lake(lake, CHECKED, settings.data_dir / CACHE_NAME, save=False)
    notes = tuple(note for _, note in held_notes(settings))
    return QuarantineReport(check, notes=notes, unreadable=check.bad, refused=plan(check.bad)[1])


def plan(bad: Sequence[BadFile]) -> tuple[tuple[BadFile, ...], tuple[str, ...]]:
    """Which of `bad` to move, and why the others stay where they are (one line each).

    Kept in place:
    - `BREAKER` or more files of one dataset failing the same way: a schema change, a new
      version of a reader or of a dataset's layout fails every file alike, damage does not.
    - A file of a dataset that cannot be fetched again (snapshots, gaps, Bitstamp public
      trades) failing for its columns: a schema reason, not damage.
    A file out of place is always moved: no reader reads it, so moving it loses nothing.
    """
    lines: list[str] = []
    kept: set[str] = set()
    alike: dict[tuple[str, str, str], list[BadFile]] = {}
    for file in bad:
        if not file.misplaced:
            alike.setdefault((file.dataset.name, file.kind, _same_way(file)), []).append(file)
    for (dataset, _, _), files in alike.items():
        if len(files) >= BREAKER:
            kept.update(file.relative for file in files)
            lines.append(
                f"{len(files)} files of {dataset} fail the same way ({files[0].reason}; e.g. "
                f"{LAKE_DIR}/{files[0].relative}): that looks like a change of tally or of "
                "its readers, not damage, so they were left in place: look at them before "
                "anything is moved (see README: When a file is damaged)"
            )
    for file in bad:
        lost = _lost(file.dataset, _exchange(file))
        if lost and file.kind == "columns" and file.relative not in kept:
            kept.add(file.relative)
            lines.append(
                f"{LAKE_DIR}/{file.relative}: {file.reason}; left in place, as {lost}: look "
                f"at it, and move it to {QUARANTINE_DIR}/ yourself if it is damaged"
            )
    return tuple(file for file in bad if file.relative not in kept), tuple(lines)


def _same_way(file: BadFile) -> str:
    """The reason, without the file's own path (some readers name it)."""
    return file.reason.replace(str(file.path), "<file>").replace(file.relative, "<file>")


def held_notes(settings: Settings) -> list[tuple[Path, Note]]:
    """Every note in the quarantine, oldest first (a note that cannot be read is skipped)."""
    root = quarantine_dir(settings)
    if not root.is_dir():
        return []
    notes = []
    for path in root.rglob("*.parquet.json"):
        try:
            notes.append((path, Note.from_json(path.read_text("utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(notes, key=lambda item: (item[1].quarantined_at, item[1].path))


# --- moving a file ---------------------------------------------------------------------------


def _move(settings: Settings, lake: Lake, bad: BadFile, now: datetime) -> Note | None:
    """Write `bad`'s note in the quarantine, then move the file beside it (under a new name if
    one of the same path is held). None, moving nothing, when the file is gone or is no longer
    the version that was checked (a writer replaced it: the next run checks it again).

    An object of a lake on S3 is copied, noted, then deleted (if its listing still shows the
    version checked): a copy then a delete, not a rename."""
    held = quarantine_dir(settings) / bad.relative
    if held.exists():
        held = held.with_name(f"{held.stem}.{now.strftime(_STAMP)}{held.suffix}")
    if isinstance(bad.path, ObjectPath):
        return _copy_then_delete(settings, lake, bad, bad.path, held, now)
    try:
        with bad.path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if not bad.same_version(stamp_of(stat)):
                return None
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    note = describe(lake, bad, now=now, size=stat.st_size, sha256=digest)
    note = dataclasses.replace(note, held_at=held.relative_to(settings.data_dir).as_posix())
    held.parent.mkdir(parents=True, exist_ok=True)
    note_path = held.with_name(f"{held.name}.json")
    _write_text(note_path, note.to_json(bad.path))
    try:
        if not bad.same_version(stamp_of(os.stat(bad.path))):
            note_path.unlink()
            return None
        shutil.move(bad.path, held)
    except FileNotFoundError:
        note_path.unlink(missing_ok=True)
        return None
    except OSError:
        note_path.unlink(missing_ok=True)
        raise
    return note


def _copy_then_delete(
    settings: Settings, lake: Lake, bad: BadFile, source: ObjectPath, held: Path, now: datetime
) -> Note | None:
    try:
        before = source.info()
        if not bad.same_version((before.size, before.mtime_ns, before.version)):
            return None
        data = source.read_bytes()
    except FileNotFoundError:
        return None
    note = describe(lake, bad, now=now, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    note = dataclasses.replace(note, held_at=held.relative_to(settings.data_dir).as_posix())
    held.parent.mkdir(parents=True, exist_ok=True)
    note_path = held.with_name(f"{held.name}.json")
    write_bytes(held, data)
    _write_text(note_path, note.to_json(source))
    try:
        after = source.info()
        if not bad.same_version((after.size, after.mtime_ns, after.version)):
            raise FileNotFoundError(str(source))  # replaced meanwhile: keep the new version
        source.unlink()
    except FileNotFoundError:
        note_path.unlink(missing_ok=True)
        held.unlink(missing_ok=True)
        return None
    return note


def describe(lake: Lake, bad: BadFile, *, now: datetime, size: int, sha256: str) -> Note:
    """The note of `bad`: what its path and name tell, what it last held, what happens next."""
    dataset = bad.dataset
    relative = Path(bad.relative)
    values = dict(
        part.split("=", 1) for part in relative.parts[1:-1] if "=" in part
    )  # the partition, as its directories name it
    stem = relative.stem
    exchange = _exchange(bad)
    market = values.get("market")
    if market is None and (named := _MARKET.match(stem)):
        market = named.group("market")
    window = _window(stem)
    ids = _ids(stem)
    verified = bad.last_verified
    lost = _lost(dataset, exchange)
    if bad.misplaced:
        lost = NOTHING_MISSING
    return Note(
        path=bad.relative,
        quarantined_at=now,
        dataset=dataset.name,
        partition="/".join(relative.parts[1:-1]),
        stem=stem,
        exchange=exchange,
        market=market,
        interval=values.get("interval"),
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        first_id=ids[1] if ids else None,
        last_id=ids[2] if ids else None,
        rows=verified.rows if verified else None,
        first_at=_moment(verified.first) if verified else None,
        last_at=_moment(verified.last) if verified else None,
        size=size,
        sha256=sha256,
        reason=bad.reason,
        refetchable=lost is None,
        refetch=lost or REFETCH,
        held_at="",
        restored_at=now if bad.misplaced else None,  # not a hole: nothing to fill
    )


def _exchange(bad: BadFile) -> str | None:
    """The exchange of a file, as its partition or its dataset tells."""
    for part in Path(bad.relative).parts[1:-1]:
        if part.startswith("exchange="):
            return part.removeprefix("exchange=")
    return _EXCHANGE_OF_DATASET.get(bad.dataset.name)


def _lost(dataset: Dataset, exchange: str | None) -> str | None:
    """Why what a file of `dataset` held cannot be fetched again (None: it can)."""
    if dataset.name in _LOST:
        return _LOST[dataset.name]
    adapter = EXCHANGES.get(exchange or "")
    served = adapter.ingestion.public_trades if adapter is not None else None
    if dataset.name == PUBLIC_TRADES.dataset.name and isinstance(served, RollingTrades):
        return served.lost  # a rolling window: what fell out of it is gone
    return None


def _window(stem: str) -> tuple[datetime, datetime] | None:
    match = _WINDOW.match(stem)
    if match is None:
        return None
    start, end = (datetime.strptime(g, _STAMP).replace(tzinfo=UTC) for g in match.groups())
    return start, end


def _ids(stem: str) -> tuple[str, int, int] | None:
    match = _IDS.match(stem)
    if match is None:
        return None
    return match.group("prefix"), int(match.group("first")), int(match.group("last"))


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# --- filled again ------------------------------------------------------------------------------


def _covered_again(lake: Lake, note: Note) -> bool:
    """Whether the lake holds what the quarantined file held again: its window covered by the
    partition's windows, its id range inside one file's, or (a refetchable file named otherwise)
    a file of its name."""
    directory = lake.root / Path(note.path).parent
    if not directory.is_dir():
        return False
    stems = [p.stem for p in directory.glob("*.parquet") if not p.name.startswith(".")]
    if note.window_start is not None and note.window_end is not None:
        windows = sorted(w for w in map(_window, stems) if w is not None)
        reach = note.window_start
        for start, end in windows:
            if start <= reach < end:
                reach = end
        return reach >= note.window_end
    if note.first_id is not None and note.last_id is not None:
        prefix = _ids(note.stem)
        return any(
            ids[0] == (prefix[0] if prefix else "")
            and ids[1] <= note.first_id
            and note.last_id <= ids[2]
            for ids in map(_ids, stems)
            if ids is not None
        )
    return note.refetchable and note.stem in stems


def holes(lake: Lake, dataset: Dataset, **partition: Any) -> list[Hole]:
    """The quarantined files of `dataset` (in the partition, or under a prefix of it) that the
    lake does not cover again yet, read from the index: what a stream must read again."""
    if not lake.files(QUARANTINED_FILES):
        return []
    prefix = "/".join(f"{c}={partition[c]}" for c in dataset.partition_by if c in partition)
    inside = pl.col("partition").str.starts_with(f"{prefix}/") | (pl.col("partition") == prefix)
    frame = (
        lake.scan(QUARANTINED_FILES)
        .filter(
            pl.col("dataset") == dataset.name,
            pl.col("restored_at").is_null(),
            inside if prefix else pl.lit(True),
        )
        .collect()
    )
    found = []
    for row in frame.iter_rows(named=True):
        window = (row["window_start"], row["window_end"]) if row["window_start"] else None
        ids = (row["first_id"], row["last_id"]) if row["first_id"] is not None else None
        found.append(Hole(row["stem"], window, ids))
    return found


# --- the index ---------------------------------------------------------------------------------


def write_index(lake: Lake, notes: Sequence[Note]) -> None:
    """Make the index hold exactly `notes` (no file for none); written only when it differs."""
    target = lake.dataset_dir(QUARANTINED_FILES) / f"{INDEX_STEM}.parquet"
    if not notes:
        target.unlink(missing_ok=True)
        return
    frame = pl.DataFrame(
        [dataclasses.asdict(note) for note in notes], schema=dict(QUARANTINED_FILES.schema)
    )
    digest = hashlib.sha256(frame.write_json().encode()).hexdigest()
    if target.exists():
        try:
            if Lake.notes(target).get("notes") == digest:
                return
        except UnreadableFileError:  # rewritten from the notes
            pass
    lake.land(QUARANTINED_FILES, frame, stem=INDEX_STEM, metadata={"notes": digest})


# --- telling a person --------------------------------------------------------------------------


def moved_lines(report: QuarantineReport) -> list[str]:
    """One line per file moved, then one per reason a file was left in place, for a writer's
    output."""
    return [
        f"quarantined {LAKE_DIR}/{note.path}: {note.reason} (moved to {note.held_at}; "
        f"{note.refetch})"
        for note in report.moved
    ] + [f"warning: {line}" for line in report.refused]


def format_quarantine(report: QuarantineReport) -> str:
    """`tally status`'s part: the files held and the unreadable ones not moved yet ("" for none)."""
    lines = []
    if report.notes:
        lines.append(f"Quarantine ({QUARANTINE_DIR}/): {len(report.notes)} file(s) held")
        for note in report.notes:
            when = note.quarantined_at.strftime("%Y-%m-%d %H:%M")
            if note.restored_at is not None:
                state = f"restored {note.restored_at.strftime('%Y-%m-%d %H:%M')}"
            else:
                state = note.refetch
            lines.append(f"  {LAKE_DIR}/{note.path}  quarantined {when}: {note.reason}; {state}")
    if report.unreadable and report.refused:
        lines.append(
            f"Unreadable: {len(report.unreadable)} file(s); the next `tally sync` or `tally "
            "warehouse` moves those not left in place below"
        )
        lines += [f"  {LAKE_DIR}/{bad.relative}: {bad.reason}" for bad in report.unreadable]
        lines += [f"  {line}" for line in report.refused]
    elif report.unreadable:
        lines.append(f"Unreadable, not moved yet: {len(report.unreadable)} file(s)")
        lines += [
            f"  {LAKE_DIR}/{bad.relative}: {bad.reason}; the next `tally sync` or "
            f"`tally warehouse` moves it to {QUARANTINE_DIR}/, and the sync fetches it again"
            for bad in report.unreadable
        ]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    write_text(path, text)
