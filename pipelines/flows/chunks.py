"""Landing time-windowed chunks: read the files a chunk replaces, land it, drop what it replaced.

Shared by the market-data streams (candles, public trades). A chunk's file is always written
whole and atomically (`Lake.land`); the files it supersedes are unlinked only after it landed,
so a crash in between leaves an overlap (never a hole), which the next run removes before
anything else (`drop_superseded`). A stream also sweeps its own partition's stale temp files. An
empty window that was fetched successfully is landed as an empty file: coverage then says
"covered, nothing there" rather than "missing".

Every stream writes only its own partition, so two streams never race on a file; two syncs of
the same stream must not run at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.datasets import RecordDataset
from pipelines.exchanges.paging import Page
from pipelines.flows.plan import ChunkPlan, Window, chunk_of
from pipelines.lake import Dataset, Lake, reading
from pipelines.lake_store import LakeFile, readable

SETTLE = timedelta(seconds=60)
"""Candles and trades are final only this long after they closed (`plan.final_cutoff`)."""


def partition_files(
    lake: Lake, dataset: Dataset, partition: Mapping[str, Any]
) -> dict[str, LakeFile]:
    """The partition's landed files by stem (hidden temp files excluded)."""
    return {path.stem: path for path in lake.files(dataset, **partition)}


def landed_windows(files: Mapping[str, LakeFile]) -> list[Window]:
    """The windows named by the stems (stems that are not windows are ignored), sorted."""
    return sorted(w for w in map(Window.from_stem, files) if w is not None)


def sweep_partition(lake: Lake, dataset: Dataset, partition: Mapping[str, Any]) -> int:
    """Remove temp files a killed writer left in this partition (only this stream writes it)."""
    directory = lake.partition_dir(dataset, partition)
    if not isinstance(directory, Path) or not directory.is_dir():  # S3: no temp objects
        return 0
    stale = list(directory.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def drop_superseded(lake: Lake, dataset: Dataset, partition: Mapping[str, Any], unit: str) -> int:
    """Unlink landed windows that lie inside another landed window of the same chunk (`unit`).

    A chunk's file is only ever rewritten as a window containing every window it replaces, with
    their rows folded in, and those are unlinked after it landed: a window inside another is a
    leftover of a crash between the two steps, and its rows are already in the larger file.
    """
    files = partition_files(lake, dataset, partition)
    windows = {stem: w for stem, w in ((s, Window.from_stem(s)) for s in files) if w is not None}
    superseded = [
        stem
        for stem, window in windows.items()
        if any(
            other != stem
            and outer.start <= window.start
            and window.end <= outer.end
            and chunk_of(outer.start, unit) == chunk_of(window.start, unit)
            for other, outer in windows.items()
        )
    ]
    for stem in superseded:
        files[stem].unlink(missing_ok=True)
    return len(superseded)


def read_files(
    dataset: Dataset, paths: Iterable[LakeFile], partition: Mapping[str, Any]
) -> list[pl.DataFrame]:
    """Exactly these files (not the whole partition), typed as declared, partition columns set."""
    frames = []
    for path in paths:
        with reading(path):
            stored = pl.read_parquet(readable(path))
        frames.append(
            stored.select(
                (
                    pl.lit(partition[name])
                    if name in dataset.partition_by
                    else pl.col(name)
                    if name in stored.columns
                    else pl.lit(None)
                )
                .cast(dtype)
                .alias(name)
                for name, dtype in dataset.schema.items()
            )
        )
    return frames


def combine(
    dataset: Dataset, old: Sequence[pl.DataFrame], new: Sequence[pl.DataFrame]
) -> pl.DataFrame:
    """Old rows then new rows (so that `Lake.land`'s last-wins dedupe keeps the new ones)."""
    frames = [*old, *new]
    if not frames:
        return pl.DataFrame(schema=dict(dataset.schema))
    if len(frames) == 1 and frames[0].columns == list(dataset.schema):
        return frames[0]  # (the usual chunk: fresh rows alone, in order; no polars query)
    # Relaxed: fresh Decimal columns carry the scale the exchange sent; the lake refuses any
    # that DECIMAL(38,18) would round.
    return pl.concat(frames, how="vertical_relaxed").select(list(dataset.schema))


def land_window(
    lake: Lake,
    dataset: Dataset,
    frame: pl.DataFrame,
    *,
    stem: str,
    partition: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> LakeFile:
    """Land `frame` as the partition's window `stem`, writing an empty file for no rows."""
    (path,) = lake.land(dataset, frame, stem=stem, partition=partition, metadata=metadata).files
    return path


def land_plan(
    lake: Lake,
    source: RecordDataset,
    plan: ChunkPlan,
    pages: Iterable[Page[Any]],
    partition: Mapping[str, Any],
    *,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Carry out one `ChunkPlan`: walk the missing range, fold in the files it extends, land the
    chunk as `plan.target` (with `metadata` in its footer), then drop the replaced files.

    Returns the rows landed: fetched keys that were not held, or held with other values (a
    range read again lands only what changed). Only this chunk's pages and files are held in
    memory.
    """
    dataset = source.dataset
    fresh = source.page_frames((page.records, page.fetched_at) for page in pages)
    # (listed only when the chunk replaces files: a backfill's day after day would otherwise
    # list a partition that grows by a file a day)
    files = partition_files(lake, dataset, partition) if plan.replaces else {}
    old = read_files(dataset, (files[stem] for stem in plan.replaces if stem in files), partition)
    landed = lake.land(
        dataset,
        combine(dataset, old, fresh),
        stem=plan.target.stem,
        partition=partition,
        metadata=metadata,
    )
    drop_replaced(files, plan.replaces, keep=plan.target.stem)
    if not old:  # every key landed is new: the lake counted them (one row per key)
        return landed.rows
    return changed_keys(dataset, old, fresh)


def changed_keys(
    dataset: Dataset, old: Sequence[pl.DataFrame], fresh: Sequence[pl.DataFrame]
) -> int:
    """How many keys of `fresh` (last row per key winning) `old` lacks or holds otherwise."""
    if not fresh:
        return 0
    columns = pl.Schema({n: dtype for n, dtype in dataset.schema.items() if n != "fetched_at"})
    new = combine(dataset, (), fresh).unique(subset=list(dataset.key), keep="last")
    new = new.select(list(columns)).cast(columns)
    if not old:
        return new.height
    held = combine(dataset, old, ()).select(list(columns)).cast(columns)
    return new.join(held, on=list(columns), how="anti", nulls_equal=True).height


def drop_replaced(files: Mapping[str, LakeFile], stems: Iterable[str], keep: str) -> None:
    """Unlink the replaced windows' files once their replacement `keep` has landed."""
    for stem in stems:
        if stem != keep and stem in files:
            files[stem].unlink(missing_ok=True)


def held_range(
    lake: Lake, dataset: Dataset, column: str, partition: Mapping[str, Any]
) -> tuple[datetime | None, datetime | None]:
    """The smallest and largest `column` value the partition holds.

    Window files are disjoint and ordered in time, so only the oldest and the newest non-empty
    files are read (one column each), not the whole history.
    """
    files = partition_files(lake, dataset, partition)
    ordered = sorted((w, files[w.stem]) for w in landed_windows(files))
    if len(ordered) != len(files):  # a file not named by its window: read them all
        series = lake.scan(dataset, **partition).select(column).collect()[column]
        return _as_moment(series.min()), _as_moment(series.max())
    return _extreme(ordered, column, "min"), _extreme(reversed(ordered), column, "max")


def _extreme(files: Iterable[tuple[Window, LakeFile]], column: str, which: str) -> datetime | None:
    for _, path in files:
        with reading(path):
            series = pl.read_parquet(readable(path), columns=[column])[column]
        value = _as_moment(series.min() if which == "min" else series.max())
        if value is not None:
            return value
    return None


def _as_moment(value: object) -> datetime | None:
    if value is not None and not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp column, got {value!r}")
    return value


def done_share(span: Window, moment: datetime) -> float:
    """How much of `span` lies before `moment` (0..1), for the progress display's ETA."""
    total = (span.end - span.start).total_seconds()
    if total <= 0:
        return 1.0
    return min(1.0, max(0.0, (moment - span.start).total_seconds() / total))
