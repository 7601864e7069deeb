"""What a `synced_lake(...)` lake holds, and how it is synced (the fixture is in conftest.py).

A `LakeSpec` names a sandbox world (seed, days, frozen now, variants) and what is synced from
it: steps, in order, each a small frozen dataclass, so that a spec is a value: equal specs are
the same lake, and `key()` names it the same in every xdist worker. A spec of several steps
extends the lake of the spec without its last step (`parent()`): that lake is synced once,
copied, and the copy synced further, so that modules whose lakes differ only in a last step
share the rest. A step may name the sandbox variant options its endpoints read (`options`); the
parent is synced with the other options at their default, so that variants which change only
what the last step reads share one parent lake (test_variants.py: one candles lake for most).
A lake's warehouse is built when the lake is handed to a test, not when it is only the parent
of another.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Protocol

import polars as pl
from sandbox_fixtures import shared_world
from sandbox_runtime import sandbox_runtime, write_sandbox_config
from warehouse_build import build

from pipelines.config import Settings, load_settings
from pipelines.datasets import BITSTAMP_LEDGER
from pipelines.flows.account_streams import sync_account
from pipelines.flows.candles import sync_candles
from pipelines.flows.plan import Window
from pipelines.flows.public_trades import sync_public_trades
from pipelines.flows.runtime import Runtime
from pipelines.quarantine import quarantine_lake
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants, parse_variants
from pipelines.sandbox.world import World

EXCHANGES = ("bitstamp", "bitvavo")
CONFIG = "tally.toml"
_WORLDS: dict[tuple[int, int, datetime], World] = {}
# the catalog and a build's temporary file and WAL (`warehouse.build`)
_WAREHOUSE_FILES = shutil.ignore_patterns("warehouse.duckdb*", ".warehouse.duckdb.*")


class Step(Protocol):
    """One thing to sync, at the runtime's (frozen) now, from the sandbox serving `world`.

    A step with a class attribute `options` (a frozenset of variant option names) says that no
    other option changes what it lands; a step without one may read every option."""

    def run(self, rt: Runtime, world: World) -> None: ...


@dataclass(frozen=True)
class Accounts:
    """Both accounts, every stream: Bitstamp, then Bitvavo."""

    def run(self, rt: Runtime, world: World) -> None:
        sync_account(rt, "bitstamp")
        sync_account(rt, "bitvavo")


@dataclass(frozen=True)
class Candles:
    """1h candles over the account window (the last `days` before now) or `span`, of every
    configured market of each exchange, or of `markets` only."""

    markets: tuple[str, ...] | None = None
    span: Window | None = None
    # what the OHLC and candles endpoints read of the variants (pipelines/sandbox/*_api.py)
    options: ClassVar[frozenset[str]] = frozenset(
        {
            "bitstamp-ohlc-before-listing",
            "bitvavo-candles-settle",
            "bitvavo-error-text",
            "bitstamp-json-spacing",
            "bitvavo-json-spacing",
        }
    )

    def run(self, rt: Runtime, world: World) -> None:
        now = rt.now()
        span = self.span or Window(now - timedelta(days=world.days), now)
        for exchange in EXCHANGES:
            for market in self.markets or rt.settings.exchange(exchange).markets:
                sync_candles(rt, exchange, market, "1h", span)


@dataclass(frozen=True)
class Trades:
    """Public trades since `back` before now, of every configured market of `exchanges`, or of
    `markets` only."""

    back: timedelta
    exchanges: tuple[str, ...] = EXCHANGES
    markets: tuple[str, ...] | None = None

    def run(self, rt: Runtime, world: World) -> None:
        for exchange in self.exchanges:
            for market in self.markets or rt.settings.exchange(exchange).markets:
                sync_public_trades(rt, exchange, market, since=rt.now() - self.back)


@dataclass(frozen=True)
class CandlesAroundOldRows:
    """1h candles of Bitstamp `markets` from a day before to a day after each day with a
    Bitstamp ledger row older than the account window (so that the old rows have a price)."""

    markets: tuple[str, ...]

    def run(self, rt: Runtime, world: World) -> None:
        start = rt.now() - timedelta(days=world.days)
        old_days = sorted(
            {
                moment.replace(hour=0, minute=0, second=0, microsecond=0)
                for moment in (
                    datetime.fromisoformat(str(e["datetime"])).replace(tzinfo=UTC)
                    for e in world.bitstamp.user_transactions
                )
                if moment < start
            }
        )
        for day in old_days:
            for market in self.markets:
                span = Window(day - timedelta(days=1), day + timedelta(days=1))
                sync_candles(rt, "bitstamp", market, "1h", span)


@dataclass(frozen=True)
class CandlesFromFirstRow:
    """1h candles of one market from the day of the account's first Bitstamp ledger row to now
    (as `tally sync` fetches the candles that value the oldest rows)."""

    exchange: str
    market: str

    def run(self, rt: Runtime, world: World) -> None:
        first = rt.lake.scan(BITSTAMP_LEDGER.dataset).select(pl.col("executed_at").min())
        start = first.collect().item().replace(hour=0, minute=0, second=0, microsecond=0)
        sync_candles(rt, self.exchange, self.market, "1h", Window(start, rt.now()))


@dataclass(frozen=True)
class Quarantine:
    """`quarantine_lake`, as `sync_flow` runs it before and after the streams."""

    def run(self, rt: Runtime, world: World) -> None:
        quarantine_lake(rt.settings)


@dataclass(frozen=True)
class LakeSpec:
    """A sandbox world and what is synced from it; `warehouse`: build the catalog at the end."""

    seed: int
    days: int
    now: datetime
    what: tuple[Step, ...]
    variants: Variants = field(default_factory=Variants)
    warehouse: bool = True

    def key(self) -> str:
        """The same name for the same spec in every process (the reprs are plain values)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def parent(self) -> LakeSpec | None:
        """The spec this one extends by its last step (None for a single step), played with
        only the variant options that its steps read."""
        if len(self.what) < 2:
            return None
        what = self.what[:-1]
        return replace(self, what=what, variants=_read_by(what, self.variants))

    def world(self) -> World:
        """The world of this spec, built once per process (a World is a pure function of seed,
        days and now; test_variants served one World to every variant's sandbox before)."""
        key = (self.seed, self.days, self.now)
        if key not in _WORLDS:
            _WORLDS[key] = shared_world(seed=self.seed, days=self.days, now_ms=_ms(self.now))
        return _WORLDS[key]

    def sandbox(self, world: World) -> Sandbox:
        return start_sandbox(seed=self.seed, world=world, variants=self.variants)


@dataclass(frozen=True)
class SyncedLake:
    """A synced directory: `tally.toml` (on a sandbox no longer running) and its data directory.
    Shared: read it, never write into it (`copy` gives a directory of one's own)."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / CONFIG

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    def copy(self, directory: Path, *, sandbox: Sandbox | None = None) -> SyncedLake:
        """A copy of the whole directory (a copy, not links: a sync rewrites files in place),
        its warehouse, if it has one, built again over the copy's own lake; its tally.toml on
        `sandbox` if given (a sandbox of the same world, for a test that syncs the copy)."""
        shutil.copytree(self.directory, directory)
        if sandbox is not None:
            write_sandbox_config(sandbox, directory)
        copied = SyncedLake(directory)
        settings = copied.settings
        if settings.warehouse_path.exists():
            build(settings)
        return copied


class SyncedLakeFactory:
    """The `synced_lake` fixture: lakes synced into `root`, each once (see conftest.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self,
        *,
        seed: int,
        days: int,
        now: datetime,
        what: tuple[Step, ...],
        variants: Variants | None = None,
        warehouse: bool = True,
    ) -> SyncedLake:
        spec = LakeSpec(seed, days, now, what, variants or Variants(), warehouse)
        with ExitStack() as stack:
            running: dict[Variants, Sandbox] = {}

            def sandbox(of: LakeSpec) -> Sandbox:  # one per variants, started only if needed
                if of.variants not in running:
                    running[of.variants] = stack.enter_context(of.sandbox(of.world()))
                return running[of.variants]

            return self._synced(spec, sandbox)

    def _synced(
        self, spec: LakeSpec, sandbox: Callable[[LakeSpec], Sandbox], *, built: bool = True
    ) -> SyncedLake:
        """The lake of `spec`, synced if no process has; its warehouse built if `spec` has one
        and the lake is handed to a test (`built`), not only copied by a spec extending it."""
        key = spec.key()
        directory, done = self.root / key, self.root / f"{key}.done"
        warehouse = self.root / f"{key}.warehouse"
        with _locked(self.root / f"{key}.lock"):  # a spec locks its parent's after its own
            if not done.exists():
                parent = spec.parent()
                parent_lake = self._synced(parent, sandbox, built=False) if parent else None
                if directory.exists():  # a sync that died half way
                    shutil.rmtree(directory)
                sync_into(
                    spec, directory, parent=parent_lake, sandbox=sandbox(spec), world=spec.world()
                )
                done.write_text(repr(spec), encoding="utf-8")
            lake = SyncedLake(directory)
            if built and spec.warehouse and not warehouse.exists():
                build(lake.settings)
                warehouse.touch()
            return lake


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync_into(
    spec: LakeSpec, directory: Path, *, parent: SyncedLake | None, sandbox: Sandbox, world: World
) -> SyncedLake:
    """Sync `spec` into `directory` from the running `sandbox`: all its steps, or, given the
    lake of `spec.parent()`, a copy of that (but its warehouse, which may be being built) and
    the last step. The warehouse is not built."""
    steps = spec.what
    if parent is not None:
        shutil.copytree(parent.directory, directory, ignore=_WAREHOUSE_FILES)
        steps = steps[-1:]
    rt = sandbox_runtime(sandbox, directory, now=spec.now)
    try:
        for step in steps:
            step.run(rt, world)
    finally:
        rt.close()
    return SyncedLake(directory)


def _read_by(steps: tuple[Step, ...], variants: Variants) -> Variants:
    """`variants` with every option that none of `steps` reads back at its default."""
    read: set[str] = set()
    for step in steps:
        options = getattr(step, "options", None)
        if options is None:
            return variants
        read |= options
    return parse_variants(f"{k}={v}" for k, v in variants.changed().items() if k in read)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
