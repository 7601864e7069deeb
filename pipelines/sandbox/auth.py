"""The sandbox's side of both exchanges' request signing: keys, verifiers, error bodies.

Written from docs/exchanges.md alone (the sandbox shares no code with the clients, so that a bug in
a client's signer is caught here instead of being mirrored). The verifiers run on the sandbox's
*auth clock* (wall time by default), never on the world's frozen clock: a client signs with its
own clock, as it would against the real exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Clock = Callable[[], float]  # epoch seconds


class HeaderLookup(Protocol):
    """Request headers looked up by name, case-insensitively (`email.message.Message` in the
    server, werkzeug's `Headers` in tests, a plain dict where case does not matter)."""

    def get(self, name: str, /) -> str | None: ...


BITSTAMP_NONCE_TTL_S = 150.0
BITSTAMP_TIMESTAMP_TOLERANCE_S = 150.0
BITSTAMP_CONTENT_TYPE = "application/x-www-form-urlencoded"
BITVAVO_DEFAULT_WINDOW_MS = 10_000
BITVAVO_FUTURE_TOLERANCE_MS = 1_000

_NONCE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class KeyPair:
    key: str
    secret: str


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A rejected request: the HTTP status and the exchange's own error body."""

    status: int
    body: Mapping[str, Any]
    code: str


def derive_keys(seed: int, exchange: str) -> KeyPair:
    """Deterministic, random-looking credentials for `exchange` in the world of `seed`.

    Bitstamp: 32-character alphanumeric key and secret (the real format). Bitvavo: a 64-hex-digit
    key (the length the API checks) and a 128-hex-digit secret.
    """
    key_digest = hashlib.sha256(f"tally-sandbox/{seed}/{exchange}/key".encode()).digest()
    secret_digest = hashlib.sha512(f"tally-sandbox/{seed}/{exchange}/secret".encode()).digest()
    if exchange == "bitvavo":
        return KeyPair(key_digest.hex(), secret_digest.hex())
    return KeyPair(_alnum(key_digest, 32), _alnum(secret_digest, 32))


def _alnum(digest: bytes, length: int) -> str:
    return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:length])


def hmac_sha256_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def bitstamp_string_to_sign(
    *,
    key: str,
    method: str,
    host: str,
    path: str,
    query: str,
    content_type: str,
    nonce: str,
    timestamp: str,
    body: str,
) -> str:
    """`"BITSTAMP " + key + METHOD + host + path + query + content_type + nonce + ts + "v2" + body`.

    `query` is the query string as sent WITHOUT its leading `?` ("" or "a=1&b=2"), as the
    documented recipe signs it; `content_type` is "" when the body is empty.
    """
    return f"BITSTAMP {key}{method}{host}{path}{query}{content_type}{nonce}{timestamp}v2{body}"


def bitvavo_signature(
    secret: str, timestamp: str, method: str, path_with_query: str, body: str
) -> str:
    """hex HMAC-SHA256 of `timestamp + METHOD + path_with_query + body`.

    `path_with_query` is the full request target including the `/v2` prefix, e.g. `/v2/order`.
    """
    return hmac_sha256_hex(secret, f"{timestamp}{method}{path_with_query}{body}")


# --- Bitstamp -------------------------------------------------------------------------------


def bitstamp_error(code: str, reason: str, status: int = 403) -> AuthFailure:
    return AuthFailure(status, {"status": "error", "reason": reason, "code": code}, code)


class BitstampVerifier:
    """Checks Bitstamp v2 authentication headers; remembers nonces for 150 s."""

    def __init__(self, keys: KeyPair, clock: Clock = time.time) -> None:
        self._keys = keys
        self._clock = clock
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def verify(
        self,
        *,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: HeaderLookup,
        body: str,
    ) -> AuthFailure | None:
        """None when the request is authentic, else the failure to send back.

        `query` is the query string without its `?` ("" when there is none).
        """
        x_auth = headers.get("X-Auth")
        signature = headers.get("X-Auth-Signature")
        nonce = headers.get("X-Auth-Nonce")
        timestamp = headers.get("X-Auth-Timestamp")
        version = headers.get("X-Auth-Version")
        for value, code, name in (
            (x_auth, "API0012", "X-Auth"),
            (signature, "API0013", "X-Auth-Signature"),
            (nonce, "API0014", "X-Auth-Nonce"),
            (timestamp, "API0015", "X-Auth-Timestamp"),
            (version, "API0016", "X-Auth-Version"),
        ):
            if not value:
                return bitstamp_error(code, f"{name} header is required")
        assert x_auth and signature and nonce and timestamp  # for the type checker
        if version != "v2":
            return bitstamp_error("API0010", "Invalid version")
        prefix, _, key = x_auth.partition(" ")
        if prefix != "BITSTAMP" or not key or " " in key:
            return bitstamp_error("API0011", "Wrong API key format")
        if not hmac.compare_digest(key, self._keys.key):
            return bitstamp_error("API0001", "API key not found")
        if not timestamp.isdigit():
            return bitstamp_error("API0018", "X-Auth-Timestamp header is invalid")
        now = self._clock()
        if abs(now - int(timestamp) / 1000) > BITSTAMP_TIMESTAMP_TOLERANCE_S:
            return bitstamp_error("API0017", "X-Auth-Timestamp header is out of boundaries")
        content_type = headers.get("Content-Type") or ""
        if not body and content_type:
            return bitstamp_error("API0020", "Content-Type header should not be present")
        if body and content_type != BITSTAMP_CONTENT_TYPE:
            return bitstamp_error("API0019", "Content-Type header is not accepted")
        if not _NONCE.match(nonce):
            return bitstamp_error("API0004", "Invalid nonce")
        message = bitstamp_string_to_sign(
            key=key,
            method=method,
            host=host,
            path=path,
            query=query,
            content_type=content_type,
            nonce=nonce,
            timestamp=timestamp,
            body=body,
        )
        expected = hmac_sha256_hex(self._keys.secret, message)
        if not hmac.compare_digest(expected, signature.lower()):
            return bitstamp_error("API0005", "Invalid signature")
        if not self._remember(nonce, now):
            return bitstamp_error("API0004", "Invalid nonce")
        return None

    def _remember(self, nonce: str, now: float) -> bool:
        with self._lock:
            if now >= self._next_purge:
                cutoff = now - BITSTAMP_NONCE_TTL_S
                self._nonces = {n: t for n, t in self._nonces.items() if t >= cutoff}
                self._next_purge = now + 10.0
            seen = self._nonces.get(nonce)
            if seen is not None and now - seen <= BITSTAMP_NONCE_TTL_S:
                return False
            self._nonces[nonce] = now
            return True


# --- Bitvavo --------------------------------------------------------------------------------


def bitvavo_error(code: int, text: str, status: int = 403) -> AuthFailure:
    return AuthFailure(status, {"errorCode": code, "error": text}, str(code))


@dataclass(frozen=True, slots=True)
class BitvavoIdentity:
    """Who sent a request: `key` when authenticated, else None (rate-limited per IP)."""

    key: str | None


class BitvavoVerifier:
    """Checks Bitvavo-Access-* headers."""

    def __init__(self, keys: KeyPair, clock: Clock = time.time) -> None:
        self._keys = keys
        self._clock = clock

    @staticmethod
    def presented_key(headers: HeaderLookup) -> str | None:
        return headers.get("Bitvavo-Access-Key") or None

    def is_known_key(self, key: str | None) -> bool:
        return key is not None and hmac.compare_digest(key, self._keys.key)

    def verify(
        self, *, method: str, target: str, headers: HeaderLookup, body: str, required: bool
    ) -> AuthFailure | None:
        """None when the request may proceed.

        `target` is the request target as received (`/v2/trades?market=BTC-EUR`). A request with
        no key is fine when `required` is false (public endpoint); a request that does present a
        key is always checked in full.
        """
        key = self.presented_key(headers)
        if key is None:
            if required:
                return bitvavo_error(300, "Authentication is required for this endpoint.")
            return None
        if len(key) != 64:
            return bitvavo_error(301, "API Key must be of length 64.")
        timestamp = headers.get("Bitvavo-Access-Timestamp") or ""
        if not timestamp.isdigit() or len(timestamp) < 13:
            return bitvavo_error(
                302,
                "Timestamp is invalid. This must be a timestamp in ms. See "
                "Bitvavo-Access-Timestamp header or timestamp parameter for websocket.",
            )
        window_text = headers.get("Bitvavo-Access-Window")
        window = BITVAVO_DEFAULT_WINDOW_MS
        if window_text is not None:
            if not window_text.isdigit() or not 100 <= int(window_text) <= 60_000:
                return bitvavo_error(303, "Window must be between 100 and 60000 ms.")
            window = int(window_text)
        if not self.is_known_key(key):
            return bitvavo_error(305, "No active API key found.")
        signature = headers.get("Bitvavo-Access-Signature") or ""
        if not _HEX64.match(signature):
            return bitvavo_error(
                308,
                "The signature length is invalid (HMAC-SHA256 should return a 64 length "
                "hexadecimal string).",
            )
        now_ms = int(self._clock() * 1000)
        sent_ms = int(timestamp)
        if now_ms - sent_ms > window or sent_ms - now_ms > BITVAVO_FUTURE_TOLERANCE_MS:
            return bitvavo_error(304, "Request was not received within acceptance window.")
        expected = bitvavo_signature(self._keys.secret, timestamp, method, target, body)
        if not hmac.compare_digest(expected, signature.lower()):
            return bitvavo_error(309, "The signature is invalid.")
        return None
