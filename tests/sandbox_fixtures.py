"""Module-scoped sandbox fixtures, declared in one line each instead of written out per module.

A test module that serves one frozen simulated world says

    world = world_fixture(seed=23, days=5, now_ms=NOW_MS)
    sandbox = sandbox_fixture()
    perps_sandbox = sandbox_fixture(variants=Variants(bitstamp_perps="on"))
    serve = fresh_sandboxes_fixture(rate_scale=100.0)  # serve(Variants(...)) in a test

pytest registers each under the name it is assigned to. `world_fixture` builds a `World` once per
module, or shares the one a synced lake of the process was built from (`shared_world`);
`sandbox_fixture` serves that module's `world` fixture (with the world's own seed) for the whole
module and stops it afterwards; `fresh_sandboxes_fixture` gives a test a function that starts a
fresh sandbox (its own request counts and rate budget) of given variants over the module's
`world`, each stopped after the test. `served(sandbox)` reads a Bitvavo sandbox's
`/_sandbox/stats`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.world import World

_LIVE: weakref.WeakValueDictionary[tuple[int, int, int], World] = weakref.WeakValueDictionary()


def shared_world(*, seed: int, days: int, now_ms: int) -> World:
    """The `World` of these arguments that some fixture of this process still holds, else a new
    one: a World is a pure function of them, and tests only read it."""
    key = (seed, days, now_ms)
    world = _LIVE.get(key)
    if world is None:
        world = _LIVE[key] = World(seed=seed, days=days, now_ms=now_ms)
    return world


def world_fixture(*, seed: int, days: int, now_ms: int) -> Callable[..., Any]:
    @pytest.fixture(scope="module")
    def world() -> World:
        return shared_world(seed=seed, days=days, now_ms=now_ms)

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


def fresh_sandboxes_fixture(*, rate_scale: float = 1.0) -> Callable[..., Any]:
    @pytest.fixture
    def serve(world: World) -> Iterator[Callable[[Variants], Sandbox]]:
        running: list[Sandbox] = []

        def start(variants: Variants) -> Sandbox:
            sandbox = start_sandbox(
                seed=world.seed, world=world, variants=variants, rate_scale=rate_scale
            )
            running.append(sandbox.__enter__())
            return running[-1]

        yield start
        for sandbox in running:
            sandbox.__exit__(None, None, None)

    return serve


def served(sandbox: Sandbox) -> dict[str, Any]:
    """The Bitvavo sandbox's request counts (`/_sandbox/stats`)."""
    stats: dict[str, Any] = requests.get(sandbox.bitvavo.stats_url, timeout=5).json()
    return stats
