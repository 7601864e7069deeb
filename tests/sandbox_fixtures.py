"""Module-scoped sandbox fixtures, declared in one line each instead of written out per module.

A test module that serves one frozen simulated world says

    world = world_fixture(seed=23, days=5, now_ms=NOW_MS)
    sandbox = sandbox_fixture()
    perps_sandbox = sandbox_fixture(variants=Variants(bitstamp_perps="on"))

pytest registers each under the name it is assigned to. `world_fixture` builds a `World` once per
module; `sandbox_fixture` serves that module's `world` fixture (with the world's own seed) for
the whole module and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World


def world_fixture(*, seed: int, days: int, now_ms: int) -> Callable[..., Any]:
    @pytest.fixture(scope="module")
    def world() -> World:
        return World(seed=seed, days=days, now_ms=now_ms)

    return world


def sandbox_fixture(
    *, variants: Variants | None = None, rate_scale: float = 1.0
) -> Callable[..., Any]:
    @pytest.fixture(scope="module")
    def sandbox(world: World) -> Iterator[Sandbox]:
        with start_sandbox(
            seed=world.seed, world=world, variants=variants, rate_scale=rate_scale
        ) as running:
            yield running

    return sandbox
