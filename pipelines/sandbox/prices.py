"""Hourly price paths: the level the simulated tape trades around, a pure function of the hour.

A path gives the natural log of a market's price at every hour boundary `h` (hours since the
Unix epoch). It is computed in blocks of 1024 hours and cached per block, so any hour of any
year costs one dict lookup once its block exists.

- `WalkPath`: a deterministic random walk. Block boundaries follow a mean-reverting AR(1) chain
  (so levels stay plausible over years), and inside a block a Brownian bridge with the market's
  hourly volatility joins them. Optionally anchored to real closes: inside the real series the
  path interpolates the real closes (plus the walk's bridge inside gaps between anchors) and
  outside it continues from the nearest real close as a walk.
- `SpreadPath`: another venue's price of the same market, a small independent noise away.
- `SumPath`: log(a) + log(b), e.g. BTC-USD = BTC-EUR × EUR-USD.

Floats are used here only to *generate* a random level; every price that leaves the sandbox is
an integer number of ticks turned into an exact Decimal (see market.py).
"""

from __future__ import annotations

import gzip
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

BLOCK_HOURS = 1024
_REFERENCE_BLOCK = (1_577_836_800 // 3600) // BLOCK_HOURS  # the block holding 2020-01-01
_TWO_PI = 2.0 * math.pi  # `normal` computes (2.0 * pi) * u


class Path(Protocol):
    def log_at(self, hour: int) -> float: ...
    def logs(self, first: int, count: int) -> list[float]: ...


def rng_for(*parts: int) -> random.Random:
    """A Random seeded by integers only (stable across platforms and Python versions)."""
    value = 0
    for part in parts:
        value = (value << 64) | (part & 0xFFFF_FFFF_FFFF_FFFF)
    return random.Random(value)


def normal(rng: random.Random) -> float:
    """A standard normal draw (Box–Muller on `random()` only, so the stream is stable)."""
    u = rng.random()
    return math.sqrt(-2.0 * math.log(1.0 - u)) * math.cos(2.0 * math.pi * rng.random())


def normals(rng: random.Random, n: int) -> list[float]:
    """`[normal(rng) for _ in range(n)]`, the same floats bit for bit, in one call."""
    rnd, log, sqrt, cos = rng.random, math.log, math.sqrt, math.cos
    return [sqrt(-2.0 * log(1.0 - rnd())) * cos(_TWO_PI * rnd()) for _ in range(n)]


@dataclass(frozen=True, slots=True)
class Anchors:
    """Real closes as (hour boundary, log close), ascending; hour = bar open + bar length."""

    hours: tuple[int, ...]
    logs: tuple[float, ...]


@cache
def real_anchors(name: str) -> Anchors:
    """Load a packaged close series lazily: "btc_eur" or "eth_eur"."""
    points: dict[int, float] = {}
    for filename, bar_hours in ((f"{name}_1h_closes.csv.gz", 1), (f"{name}_1d_closes.csv.gz", 24)):
        resource = resources.files("pipelines.sandbox").joinpath("data", filename)
        if not resource.is_file():
            continue
        text = gzip.decompress(resource.read_bytes()).decode()
        for line in text.splitlines()[1:]:
            hour, close = line.split(",")
            points[int(hour) + bar_hours] = math.log(float(close))
    if not points:
        raise FileNotFoundError(f"no packaged price data for {name}")
    hours = tuple(sorted(points))
    return Anchors(hours, tuple(points[h] for h in hours))


class _BlockCache:
    """Per-block arrays of log levels, generated on first use."""

    def __init__(self) -> None:
        self._blocks: dict[int, list[float]] = {}

    def log_at(self, hour: int) -> float:
        return self._block_of(hour // BLOCK_HOURS)[hour % BLOCK_HOURS]

    def logs(self, first: int, count: int) -> list[float]:
        """`[log_at(h) for h in range(first, first + count)]`, a block at a time."""
        out: list[float] = []
        hour, end = first, first + count
        while hour < end:
            index, offset = divmod(hour, BLOCK_HOURS)
            take = min(BLOCK_HOURS - offset, end - hour)
            out.extend(self._block_of(index)[offset : offset + take])
            hour += take
        return out

    def _block_of(self, index: int) -> list[float]:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = self._block(index)
        return block

    def _block(self, index: int) -> list[float]:
        raise NotImplementedError


class WalkPath(_BlockCache):
    """A random walk of log price around `level`, optionally following real closes.

    `anchors` names a packaged close series ("btc_eur"), loaded on first use.
    """

    def __init__(
        self,
        key: int,
        *,
        level: float,
        hourly_vol: float,
        reversion: float = 0.85,
        noise: float = 0.0,
        anchors: str | None = None,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self._key = key
        self._level = math.log(level)
        self._vol = hourly_vol
        self._rho = reversion
        self._top_vol = hourly_vol * math.sqrt(BLOCK_HOURS)
        self._noise = noise
        self._anchor_name = anchors
        self._anchors: Anchors | None = None
        self._clamp = clamp
        self._tops: dict[int, float] = {_REFERENCE_BLOCK: 0.0}
        self._walks: dict[int, list[float]] = {}

    def _top(self, index: int) -> float:
        """The walk at the start of block `index`: AR(1) away from the 2020 reference block."""
        if index in self._tops:
            return self._tops[index]
        step = 1 if index > _REFERENCE_BLOCK else -1
        j = index
        while j - step not in self._tops:
            j -= step
        value = self._tops[j - step]
        while True:
            value = self._rho * value + self._top_vol * normal(rng_for(self._key, 1, j))
            self._tops[j] = value
            if j == index:
                return value
            j += step

    def walk(self, hour: int) -> float:
        """The raw walk (log units, around 0) at `hour`."""
        return self._walk_of(hour // BLOCK_HOURS)[hour % BLOCK_HOURS]

    def _walk_of(self, index: int) -> list[float]:
        walk = self._walks.get(index)
        if walk is None:
            walk = self._walks[index] = self._walk_block(index)
        return walk

    def _walk_block(self, index: int) -> list[float]:
        vol = self._vol
        steps = [0.0]
        x = 0.0
        for draw in normals(rng_for(self._key, 2, index), BLOCK_HOURS):
            x += vol * draw
            steps.append(x)
        a, b = self._top(index), self._top(index + 1)
        end = steps[-1]
        n = BLOCK_HOURS
        return [a + (b - a - end) * i / n + steps[i] for i in range(n)]

    def _block(self, index: int) -> list[float]:
        if self._anchor_name is not None and self._anchors is None:
            self._anchors = real_anchors(self._anchor_name)
        if self._anchors is None:
            level = self._level
            out = [level + step for step in self._walk_of(index)]
        else:
            out = self._anchored_block(index)
        if self._noise:
            noise = self._noise
            draws = normals(rng_for(self._key, 3, index), BLOCK_HOURS)
            out = [value + noise * draw for value, draw in zip(out, draws, strict=True)]
        if self._clamp is not None:
            low, high = self._clamp
            out = [min(max(value, low), high) for value in out]
        return out

    def _anchored_block(self, index: int) -> list[float]:
        """Block `index` of the walk tied to the real closes, in one pass over its hours: at a
        close the close itself, between two closes the line between them plus the walk's bridge
        between them, before the first (after the last) close the walk from that close on."""
        assert self._anchors is not None
        hours, logs = self._anchors.hours, self._anchors.logs
        end = len(hours) - 1
        at = self.walk
        walk = self._walk_of(index)  # the walk at each hour of the block
        first = index * BLOCK_HOURS
        i = bisect_right(hours, first) - 1
        segment = -1  # the i that w0, w1 belong to
        w0 = w1 = 0.0
        out: list[float] = []
        append = out.append
        for hour, w in enumerate(walk, first):
            while i < end and hours[i + 1] <= hour:
                i += 1
            if i < 0:
                append(logs[0] + w - at(hours[0]))
            elif i == end:
                append(logs[i] + w - at(hours[i]))
            elif hour == hours[i]:
                append(logs[i])
            else:
                h0, h1 = hours[i], hours[i + 1]
                frac = (hour - h0) / (h1 - h0)
                if segment != i:
                    segment, w0, w1 = i, at(h0), at(h1)
                bridge = w - (w0 + (w1 - w0) * frac)
                append(logs[i] + (logs[i + 1] - logs[i]) * frac + bridge)
        return out


class SpreadPath(_BlockCache):
    """`parent` plus small independent noise: the same market on another venue."""

    def __init__(self, key: int, parent: Path, noise: float) -> None:
        super().__init__()
        self._key, self._parent, self._noise = key, parent, noise

    def _block(self, index: int) -> list[float]:
        first, noise = index * BLOCK_HOURS, self._noise
        draws = normals(rng_for(self._key, 4, index), BLOCK_HOURS)
        parent = self._parent.logs(first, BLOCK_HOURS)
        return [level + noise * draw for level, draw in zip(parent, draws, strict=True)]


class SumPath(_BlockCache):
    """log(a) + log(b) (+ small noise): a cross rate such as BTC-USD = BTC-EUR × EUR-USD."""

    def __init__(self, key: int, a: Path, b: Path, noise: float) -> None:
        super().__init__()
        self._key, self._a, self._b, self._noise = key, a, b, noise

    def _block(self, index: int) -> list[float]:
        first, noise = index * BLOCK_HOURS, self._noise
        draws = normals(rng_for(self._key, 5, index), BLOCK_HOURS)
        a, b = self._a.logs(first, BLOCK_HOURS), self._b.logs(first, BLOCK_HOURS)
        return [x + y + noise * draw for x, y, draw in zip(a, b, draws, strict=True)]
