"""One process taking slots from a Prefect global concurrency limit with slot decay (a rate
limit) for tests/test_prefect_postgres.py (not a test module).

    python tests/rate_limit_worker.py LIMIT_NAME COUNT

Prefect's API is the one the environment names (PREFECT_API_URL). The process imports Prefect,
prints `ready`, reads a start time (epoch seconds) from stdin and sleeps until then, so that the
processes a test lets go together start together; then takes COUNT slots, one at a time, with
`prefect.concurrency.sync.rate_limit(LIMIT_NAME, occupy=1, strict=True)`, as a client of an
exchange would before each request. It prints one JSON object: `calls`, a [start, end] pair of
epoch seconds per `rate_limit` call, and `attempts`, a [sent, answered, status] triple per HTTP
request that Prefect's client made to take a slot (200: taken; 423: refused, Prefect waits for
the Retry-After it names and asks again). The attempts are observed by wrapping the client's
method, which still sends every request to the server: the server alone decides.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import Any


def main(argv: list[str]) -> None:
    name, count = argv[1], int(argv[2])
    import httpx
    from prefect.client.orchestration import PrefectClient
    from prefect.concurrency.sync import rate_limit

    attempts: list[tuple[float, float, int]] = []
    original = PrefectClient.increment_concurrency_slots

    @functools.wraps(original)
    async def observed(self: PrefectClient, *args: Any, **kwargs: Any) -> httpx.Response:
        sent = time.time()
        try:
            response = await original(self, *args, **kwargs)
        except httpx.HTTPStatusError as error:
            attempts.append((sent, time.time(), error.response.status_code))
            raise
        attempts.append((sent, time.time(), response.status_code))
        return response

    PrefectClient.increment_concurrency_slots = observed  # type: ignore[method-assign,assignment]

    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    calls: list[tuple[float, float]] = []
    for _ in range(count):
        began = time.time()
        rate_limit(name, occupy=1, strict=True)
        calls.append((began, time.time()))
    print(json.dumps({"calls": calls, "attempts": attempts}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
