"""`HttpClient` and what it takes and gives: `SignInput`/`Signer`, `Reply`, `RetryPolicy`.

Retry wiring (tenacity stop/wait/before_sleep), URL and body encoding, signing per attempt,
redaction of signer output from errors and logs.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from pipelines import progress

from ._classify import _CLASSIFIERS, NOT_JSON
from ._common import Clock, Sleep
from ._errors import (
    ExchangeError,
    MalformedResponseError,
    RateLimitedError,
    RetryableError,
    TransportError,
    _make_error,
)
from ._limiters import Limiter
from ._stats import HttpStats

# The package's logger, named "pipelines.http" as before the split.
logger = logging.getLogger(__package__)

USER_AGENT: Final = "tally/0.1 (+read-only account history)"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SignInput:
    """What a signer signs; handed over on every attempt, exactly as it is then sent."""

    method: str
    host: str
    path: str
    query: str  # "" or "?a=1&b=2"
    content_type: str  # "" when the body is empty
    body: str


Signer = Callable[[SignInput], Mapping[str, str]]


@dataclass(frozen=True)
class Reply:
    """A successful response: parsed JSON (floats as Decimal) and the body exactly as received."""

    data: Any = field(repr=False)
    text: str = field(repr=False)
    status: int
    headers: Mapping[str, str] = field(repr=False)
    url: str
    fetched_at: datetime


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying: attempts, total seconds, and the back-off curve.

    `max_total_seconds` bounds attempts plus back-off sleeps, not time queued in the limiter.
    """

    max_attempts: int = 8
    max_total_seconds: float = 300.0
    base_seconds: float = 0.5
    max_backoff_seconds: float = 60.0
    min_seconds: float = 0.1


DEFAULT_RETRY: Final = RetryPolicy()


def _encode_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("pass Decimal or int, not float, as a request parameter")
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"cannot encode a {type(value).__name__} as a request parameter")


def _encode(params: Mapping[str, object] | None) -> str:
    if not params:
        return ""
    pairs = [(str(k), _encode_value(v)) for k, v in params.items() if v is not None]
    return urlencode(pairs)


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-finite number {name} in JSON")


def _parse_json(text: str) -> object:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError:
        return NOT_JSON


def _secret_values(auth: Mapping[str, str]) -> list[str]:
    """Header values (and their long words, e.g. the key in "BITSTAMP <key>") to scrub."""
    values: set[str] = set()
    for value in auth.values():
        text = str(value)
        values.update(piece for piece in (text, *text.split()) if len(piece) >= 6)
    return sorted(values, key=len, reverse=True)


@dataclass(frozen=True)
class _Call:
    method: str
    endpoint: str
    path: str
    query: str
    body: str
    content_type: str
    weight: int
    signer: Signer | None


class HttpClient:
    """Sends one exchange's requests: signed per attempt, paced, classified, retried.

    `exchange` is "bitstamp" or "bitvavo" (it picks the error classifier). `path` given to
    `request` is appended to base_url's path. `clock` (epoch seconds) and `sleep` are the seams
    tests use to observe waits without waiting.
    """

    def __init__(
        self,
        exchange: str,
        base_url: str,
        *,
        limiter: Limiter,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if exchange not in _CLASSIFIERS:
            raise ValueError(f"unknown exchange {exchange!r}")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.exchange = exchange
        self._classify = _CLASSIFIERS[exchange]
        self._scheme = parts.scheme
        default_port = 443 if parts.scheme == "https" else 80
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        self._host = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self._base_path = parts.path.rstrip("/")
        self.base_url = f"{self._scheme}://{self._host}{self._base_path}"
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self._user_agent = user_agent
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._own_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=16)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session
        self.stats = HttpStats()

    def __repr__(self) -> str:
        return f"HttpClient({self.exchange!r}, {self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, object] | None = None,
        form: Mapping[str, object] | None = None,
        weight: int = 1,
        signer: Signer | None = None,
    ) -> Reply:
        """Send until success, a fatal error, or the retry policy runs out; return the reply."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        query = _encode(params)
        body = _encode(form)
        call = _Call(
            method=method.upper(),
            endpoint=endpoint,
            path=quote(self._base_path + path, safe="/:@-._~!$&'()*+,;="),
            query=f"?{query}" if query else "",
            body=body,
            content_type=FORM_CONTENT_TYPE if body else "",
            weight=weight,
            signer=signer,
        )
        started = self._clock()
        queued = [0.0]  # seconds spent waiting in the limiter (not charged to the policy)

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.retry.max_attempts:
                return True
            spent = self._clock() - started - queued[0]
            return spent + state.upcoming_sleep > self.retry.max_total_seconds

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.stats.record_retry(endpoint)
            if isinstance(error, RateLimitedError):
                self.limiter.block_until(self._clock() + state.upcoming_sleep)
            if error is not None:
                attempt = state.attempt_number + 1
                progress.retrying(attempt, self.retry.max_attempts, error, state.upcoming_sleep)
            logger.info(
                "%s %s: %s; retry %d/%d in %.2fs",
                self.exchange,
                endpoint,
                type(error).__name__,
                state.attempt_number + 1,
                self.retry.max_attempts,
                state.upcoming_sleep,
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            wait=self._backoff,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        reply: Reply | None = None
        with progress.request(self.exchange, endpoint, call.method, self._url(call)):
            for attempt in retrying:
                with attempt:
                    reply = self._attempt(call, attempt.retry_state.attempt_number, queued)
        assert reply is not None
        return reply

    def _url(self, call: _Call) -> str:
        """The request's URL, exactly as sent (both exchanges sign in headers: no secret)."""
        return f"{self._scheme}://{self._host}{call.path}{call.query}"

    def _backoff(self, state: tenacity.RetryCallState) -> float:
        policy = self.retry
        error = state.outcome.exception() if state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return max(policy.min_seconds, float(hinted))
        ceiling = min(
            policy.max_backoff_seconds, policy.base_seconds * 2 ** (state.attempt_number - 1)
        )
        # "Equal jitter": half the step for sure, the other half random; never 0.
        return max(policy.min_seconds, ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _attempt(self, call: _Call, attempt: int, queued: list[float]) -> Reply:
        before = self._clock()
        self.limiter.acquire(call.weight)
        queued[0] += self._clock() - before
        response_headers: Mapping[str, str] = {}
        redact: list[str] = []
        url = self._url(call)
        try:
            headers = {
                "Host": self._host,
                "User-Agent": self._user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
            }
            if call.content_type:
                headers["Content-Type"] = call.content_type
            if call.signer is not None:
                auth = call.signer(
                    SignInput(
                        method=call.method,
                        host=self._host,
                        path=call.path,
                        query=call.query,
                        content_type=call.content_type,
                        body=call.body,
                    )
                )
                redact = _secret_values(auth)
                headers.update(auth)
            prepared = requests.Request(
                call.method, url, headers=headers, data=call.body.encode() or None
            ).prepare()
            prepared.url = url  # exactly what was signed: no re-quoting
            self.stats.record_request(call.endpoint, call.weight)
            progress.request_sent(call.weight, attempt)
            shown = call.path if call.signer else call.path + call.query
            logger.debug(
                "%s %s %s (%s) attempt %d",
                self.exchange,
                call.method,
                shown,
                call.endpoint,
                attempt,
            )
            sent_at = self._clock()
            failure: ExchangeError | None = None
            try:
                response = self._session.send(prepared, timeout=self.timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                failure = self._transport_error(call.endpoint, exc)
                if failure is None:
                    raise
            else:
                response_headers = response.headers
        finally:
            self.limiter.observe(response_headers, call.weight)
        if failure is not None:
            # Raised here, not inside `except`: the requests exception holds the signed
            # request's headers and must not stay reachable as __context__.
            self._fail(call.endpoint, failure, redact, url)
            raise failure

        now = self._clock()
        logger.debug(
            "%s %s %s -> %d in %.3fs",
            self.exchange,
            call.method,
            call.endpoint,
            response.status_code,
            now - sent_at,
        )
        try:
            text = response.content.decode("utf-8")
        except UnicodeDecodeError:
            text = response.content.decode("utf-8", errors="replace")
            data: object = NOT_JSON
        else:
            data = _parse_json(text)
        error = self._classify(
            response.status_code, data, endpoint=call.endpoint, headers=response.headers, now=now
        )
        if error is not None:
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                self.limiter.block_until(now + error.retry_after)
            self._fail(call.endpoint, error, redact, url)
            raise error
        return Reply(
            data=data,
            text=text,
            status=response.status_code,
            headers=CaseInsensitiveDict(response.headers),
            url=url,
            fetched_at=datetime.fromtimestamp(now, UTC),
        )

    def _transport_error(
        self, endpoint: str, exc: requests.exceptions.RequestException
    ) -> ExchangeError | None:
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            cls: type[ExchangeError] = MalformedResponseError
            reason = "body truncated or undecodable"
        elif isinstance(exc, requests.Timeout):
            cls, reason = TransportError, "timed out"
        elif isinstance(exc, requests.ConnectionError):
            cls, reason = TransportError, "connection failed"
        else:
            return None
        return _make_error(cls, self.exchange, endpoint, reason=f"{reason} ({type(exc).__name__})")

    def _fail(self, endpoint: str, error: ExchangeError, redact: list[str], url: str) -> None:
        error._redact(redact)
        error.url = url
        self.stats.record_error(endpoint, error)
        level = logging.DEBUG if isinstance(error, RetryableError) else logging.INFO
        logger.log(level, "%s", error)
