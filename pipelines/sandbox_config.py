"""The configuration of a running sandbox, as data: its URLs, throw-away keys, markets and
pacing for every exchange tally knows (`tally sandbox --write-config`, `tally demo`, tests and
benchmarks). It lives outside `pipelines.sandbox`, which never imports tally's configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelines.config_file import ConfigDocument, config_document
from pipelines.config_schema import SECTIONS
from pipelines.exchanges import registry
from pipelines.sandbox.ratelimit import RateLimits

SANDBOX_COMMENT = "Written by `tally sandbox`: points tally at the loopback emulators."

# Of a fixed request window, tally's default budget takes 8,000 of the real 10,000: a sandbox
# whose window is scaled gets the same share of it.
_SHARE_NUMERATOR, _SHARE_DENOMINATOR = 4, 5


def sandbox_document(sandbox: Any) -> ConfigDocument:
    """A tally.toml document pointing at `sandbox` (a running `pipelines.sandbox.Sandbox`):
    `data_dir = "data"`, the world's clock if it is frozen, and per exchange its base URL, key,
    secret, markets and (when the sandbox's rate limits are scaled) its pacing."""
    served = sandbox.info()
    world = sandbox.world
    now = None
    if world.frozen:
        frozen = datetime.fromtimestamp(world.now_ms() / 1000, UTC)
        now = frozen.isoformat().replace("+00:00", "Z")
    sections = {
        name: {
            "base_url": served[name]["base_url"],
            "api_key": served[name]["key"],
            "api_secret": served[name]["secret"],
            "markets": sorted(
                f"{market.base}-{market.quote}"
                for (exchange, _), market in world.markets.items()
                if exchange == name
            ),
            **_pacing(name, sandbox.rate_limits),
        }
        for name in registry.names()
    }
    return config_document(data_dir="data", now=now, **sections)


def _pacing(name: str, limits: RateLimits) -> dict[str, Any]:
    """`requests_per_window` and `window_seconds` for an exchange paced by a fixed window (its
    section has those keys) when the sandbox's window is not the real one; else nothing."""
    if "requests_per_window" not in SECTIONS[name].model_fields:
        return {}  # paced from the exchange's own rate-limit headers
    budget, window_ms = _window(limits, name)
    if (budget, window_ms) == _window(RateLimits(), name):
        return {}
    return {
        "requests_per_window": max(1, budget * _SHARE_NUMERATOR // _SHARE_DENOMINATOR),
        "window_seconds": window_ms / 1000,
    }


def _window(limits: RateLimits, name: str) -> tuple[int, int]:
    """The sandbox's budget of `name`'s fixed request window and its length in ms."""
    return getattr(limits, f"{name}_budget"), getattr(limits, f"{name}_window_ms")
