"""ccxt's one-year 1-minute candle backfill over the sandbox, for comparison: the loop a ccxt user
writes (`fetch_ohlcv` forward from `since`, a page of the exchange's largest size at a time; ccxt
asks each window by its start and end), in this process: candles, requests (its market listing
included), wall and CPU seconds (imports excluded).

    python -m benchmarks.ccxt_backfill SANDBOX_INFO_FILE bitstamp DAYS NOW_MS   # one JSON line

ccxt keeps the candles as Python lists of floats: it lands nothing, so its CPU is a floor for
fetching alone, not for landing exactly.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import ccxt

MINUTE_MS = 60_000
PAGE = {"bitstamp": 1000, "bitvavo": 1440}


class _Counted:
    """Counts every HTTP request ccxt sends."""

    requests_sent = 0

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.requests_sent += 1
        return super().fetch(url, method, headers, body)  # type: ignore[misc]


class _Bitvavo(_Counted, ccxt.bitvavo):
    pass


class HttpsSignedBitstamp(ccxt.bitstamp):
    """ccxt's Bitstamp signs `url.replace('https://', '')`; against plain http that would sign
    "http://host/path". So it is given https URLs to sign, and the request goes out over http:
    the string signed is still the documented host + path."""

    def sign(
        self, path: str, api: Any = "public", method: str = "GET", params: Any = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = super().sign(path, api, method, params or {})
        request["url"] = request["url"].replace("https://", "http://", 1)
        return request


class _Bitstamp(_Counted, HttpsSignedBitstamp):
    pass


def exchange_for(name: str, info: dict[str, Any]) -> Any:
    served = info[name]
    if name == "bitstamp":
        client = _Bitstamp({"apiKey": served["key"], "secret": served["secret"]})
        api = served["base_url"].replace("http://", "https://", 1) + "/api"
        client.urls["api"] = {"public": api, "private": api}
    else:
        client = _Bitvavo({"apiKey": served["key"], "secret": served["secret"]})
        root = served["base_url"].removesuffix("/v2")
        client.urls["api"] = {"public": root, "private": root}
    client.enableRateLimit = False  # a sandbox of its own: one backfill stays within its budget
    return client


def backfill(client: Any, name: str, *, days: int, now_ms: int) -> int:
    """The candles of a `days` backfill of BTC/EUR 1m candles up to `now_ms` (pages overlap by
    a candle: counted as ccxt returns them)."""
    client.load_markets()
    candles = 0
    window = PAGE[name] * MINUTE_MS
    since = now_ms - days * 86_400_000
    while since < now_ms:
        page = client.fetch_ohlcv("BTC/EUR", "1m", since=since, limit=PAGE[name])
        candles += len(page)
        since += window
    return candles


def main(argv: list[str] | None = None) -> None:
    info_file, name, days, now_ms = argv if argv is not None else sys.argv[1:5]
    with open(info_file, encoding="utf-8") as file:
        info = json.load(file)
    client = exchange_for(name, info)
    began, cpu = time.perf_counter(), time.process_time()
    candles = backfill(client, name, days=int(days), now_ms=int(now_ms))
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    result = {"rows": candles, "requests": client.requests_sent, "wall_s": wall, "cpu_s": cpu}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
