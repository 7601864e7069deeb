"""What a running sandbox served, read from its `GET /_sandbox/stats` (one copy for the tests).

`requests_by_endpoint(sandbox)` counts the requests served per endpoint on both exchanges, keyed
`"<exchange> <endpoint>"` (e.g. `"bitvavo markets"`); `grown(before, after)` is what changed
between two such counts (the requests a step made).
"""

from __future__ import annotations

import requests

from pipelines.sandbox.server import Sandbox


def requests_by_endpoint(sandbox: Sandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for side in (sandbox.bitstamp, sandbox.bitvavo):
        stats = requests.get(side.stats_url, timeout=10).json()
        for name, endpoint in stats["endpoints"].items():
            counts[f"{stats['exchange']} {name}"] = int(endpoint["requests"])
    return counts


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
