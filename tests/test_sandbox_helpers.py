"""Test-local clients for the sandbox tests: signers written from EXCHANGES.md, not imported.

Neither `pipelines.exchanges` nor the sandbox's own `auth` module is used here: these signers are
a third, independent reading of the documented schemes, so a shared misreading cannot pass.
(This module holds no tests; the `test_` prefix only keeps it inside the sandbox test area.)
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

NOW_MS = 1_711_843_200_000  # 2024-03-31T00:00:00Z
DAYS = 90
SEED = 1
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@cache
def shared_world() -> Any:
    """One real World for every sandbox test module (servers are cheap, the world less so)."""
    from pipelines.sandbox.world import World

    return World(seed=SEED, days=DAYS, now_ms=NOW_MS)


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def ledger_ms(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000


class BitstampClient:
    """Signs Bitstamp v2 requests: X-Auth headers over the documented string to sign."""

    def __init__(self, base_url: str, key: str, secret: str) -> None:
        self.base_url = base_url
        self.key = key
        self.secret = secret
        self.session = requests.Session()
        self.host = urlsplit(base_url).netloc

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        return self.session.get(f"{self.base_url}{path}", params=params, timeout=30)

    def headers(
        self,
        method: str,
        path: str,
        body: str,
        *,
        query: str = "",
        nonce: str | None = None,
        timestamp_ms: int | None = None,
        key: str | None = None,
        secret: str | None = None,
        host: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, str]:
        key = self.key if key is None else key
        secret = self.secret if secret is None else secret
        nonce = str(uuid.uuid4()) if nonce is None else nonce
        timestamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        if content_type is None:
            content_type = "application/x-www-form-urlencoded" if body else ""
        message = (
            "BITSTAMP "
            + key
            + method
            + (self.host if host is None else host)
            + path
            + query
            + content_type
            + nonce
            + timestamp
            + "v2"
            + body
        )
        signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        headers = {
            "X-Auth": f"BITSTAMP {key}",
            "X-Auth-Signature": signature,
            "X-Auth-Nonce": nonce,
            "X-Auth-Timestamp": timestamp,
            "X-Auth-Version": "v2",
        }
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def post(
        self, path: str, fields: Mapping[str, Any] | None = None, **options: Any
    ) -> requests.Response:
        body = urlencode(fields or {})
        headers = self.headers("POST", path, body, **options)
        return self.send("POST", path, body, headers)

    def send(
        self, method: str, path: str, body: str, headers: Mapping[str, str]
    ) -> requests.Response:
        return self.session.request(
            method,
            f"{self.base_url}{path}",
            data=body.encode() if body else None,
            headers=dict(headers),
            timeout=30,
        )


class BitvavoClient:
    """Signs Bitvavo requests: hex HMAC-SHA256 of timestamp + METHOD + "/v2" + path + body."""

    def __init__(self, base_url: str, key: str, secret: str) -> None:
        self.base_url = base_url  # ".../v2"
        self.key = key
        self.secret = secret
        self.session = requests.Session()

    def url(self, path: str, params: Mapping[str, Any] | None) -> tuple[str, str]:
        path_with_query = path + (f"?{urlencode(params)}" if params else "")
        return f"{self.base_url}{path_with_query}", path_with_query

    def public(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        url, _ = self.url(path, params)
        return self.session.get(url, timeout=30)

    def signed_headers(
        self,
        method: str,
        path_with_query: str,
        *,
        body: str = "",
        key: str | None = None,
        secret: str | None = None,
        timestamp_ms: int | str | None = None,
        window: int | None = None,
    ) -> dict[str, str]:
        secret = self.secret if secret is None else secret
        stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        message = f"{stamp}{method}/v2{path_with_query}{body}"
        headers = {
            "Bitvavo-Access-Key": self.key if key is None else key,
            "Bitvavo-Access-Timestamp": stamp,
            "Bitvavo-Access-Signature": hmac.new(
                secret.encode(), message.encode(), hashlib.sha256
            ).hexdigest(),
        }
        if window is not None:
            headers["Bitvavo-Access-Window"] = str(window)
        return headers

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, **options: Any
    ) -> requests.Response:
        url, path_with_query = self.url(path, params)
        headers = self.signed_headers("GET", path_with_query, **options)
        return self.session.get(url, headers=headers, timeout=30)


def clients(sandbox: Any) -> tuple[BitstampClient, BitvavoClient]:
    return (
        BitstampClient(sandbox.bitstamp.base_url, sandbox.bitstamp.key, sandbox.bitstamp.secret),
        BitvavoClient(sandbox.bitvavo.base_url, sandbox.bitvavo.key, sandbox.bitvavo.secret),
    )
