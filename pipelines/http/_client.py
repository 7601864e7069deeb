"""`HttpClient` and what it takes and gives: `SignInput`/`Signer`, `Reply`, `RetryPolicy`.

The send path, one small step each (the way httpx splits its own)::

    request                  encode the URL and body once: a `_Call`
    └── _send                the progress display's request context
        └── _send_handling_retries    tenacity: which errors retry, back-off, bounds
            └── _send_attempt         pace (limiter), sign, send, tell the limiter
                ├── _send_single_request   the wire: a response, or a transport failure
                └── _handle_response       decode, classify, Reply or raise

Signer output is redacted from every error and log line.
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
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from pipelines import progress

from ._classify import NOT_JSON, Classifier
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
from ._transport import Received, Transport

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


T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    """A successful response: parsed JSON (floats as Decimal) and the body exactly as received."""

    data: Any = field(repr=False)
    text: str = field(repr=False)
    status: int
    headers: Mapping[str, str] = field(repr=False)
    url: str
    fetched_at: datetime
    read: Any = field(default=None, repr=False)  # what the request's `read` made of the body

    def read_or(self, parse: Callable[[Any], T]) -> T:
        """What the request's `read` made of the body, else `parse` of the decoded JSON (the
        body was decoded because `read` left it)."""
        return self.read if self.read is not None else parse(self.data)


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
    """One request, encoded once and sent as often as the retry policy allows."""

    method: str
    endpoint: str
    path: str
    query: str
    body: str
    content_type: str
    weight: int
    signer: Signer | None
    url: str  # exactly as sent (signers sign in headers: no secret in it)
    read: Callable[[bytes], object | None] | None = None


@dataclass
class _Spent:
    """What a request's retrying is bounded by: seconds since `started`, less `queued`."""

    started: float
    queued: float = 0.0  # seconds spent waiting in the limiter (not charged to the policy)


@dataclass(frozen=True)
class _Sent:
    response: Received  # its body read whole (and decoded, as `Response.content` would be)
    at: float  # the client's clock when it was sent


class HttpClient:
    """Sends one exchange's requests: signed per attempt, paced, classified, retried.

    `exchange` names the exchange in errors, logs and the progress display;
    `classify` tells which responses are errors (the exchange's `Classifier`); `limiter` paces
    every attempt. `path` given to `request` is appended to base_url's path. `clock` (epoch
    seconds) and `sleep` are the seams tests use to observe waits without waiting. `stats`
    meters every attempt sent. The proxies (`session`'s and the environment's) are read at the
    first request and kept.
    """

    def __init__(
        self,
        exchange: str,
        base_url: str,
        *,
        classify: Classifier,
        limiter: Limiter,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: tuple[float, float] = (5.0, 30.0),
        session: requests.Session | None = None,
        user_agent: str = USER_AGENT,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.exchange = exchange
        self._classify = classify
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
        self._headers = {
            "Host": self._host,
            "User-Agent": user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        }
        for header in self._headers.items():
            check_header_validity(header)
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
        self._transport = Transport(session)
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
        read: Callable[[bytes], object | None] | None = None,
    ) -> Reply:
        """Send until success, a fatal error, or the retry policy runs out; return the reply.

        `read` may take a successful (HTTP 200) body as it is, without decoding its JSON: what
        it makes of it (None: nothing) is the reply's `read`, and then its `data` is None. It
        must take only bodies it proves to be of the one success shape it knows (no error
        document can be one), since such a body is not classified."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        query = _encode(params)
        body = _encode(form)
        quoted = quote(self._base_path + path, safe="/:@-._~!$&'()*+,;=")
        query = f"?{query}" if query else ""
        call = _Call(
            method=method.upper(),
            endpoint=endpoint,
            path=quoted,
            query=query,
            body=body,
            content_type=FORM_CONTENT_TYPE if body else "",
            weight=weight,
            signer=signer,
            url=f"{self._scheme}://{self._host}{quoted}{query}",
            read=read,
        )
        return self._send(call)

    def _send(self, call: _Call) -> Reply:
        spent = _Spent(started=self._clock())
        with progress.request(self.exchange, call.endpoint, call.method, call.url):
            return self._send_handling_retries(call, spent)

    def _send_handling_retries(self, call: _Call, spent: _Spent) -> Reply:
        # The first attempt goes without tenacity (about 20 µs a request): tenacity is handed its
        # error, as its own first attempt's, only when it is one worth retrying.
        try:
            return self._send_attempt(call, 1, spent)
        except RetryableError as error:
            first = error
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            wait=self._backoff,
            stop=partial(self._should_stop, spent),
            sleep=self._sleep,
            before_sleep=partial(self._before_retry, call.endpoint),
            reraise=True,
        )
        reply: Reply | None = None
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first
                reply = self._send_attempt(call, number, spent)
        assert reply is not None
        return reply

    def _should_stop(self, spent: _Spent, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        used = self._clock() - spent.started - spent.queued
        return used + state.upcoming_sleep > self.retry.max_total_seconds

    def _before_retry(self, endpoint: str, state: tenacity.RetryCallState) -> None:
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

    def _send_attempt(self, call: _Call, attempt: int, spent: _Spent) -> Reply:
        """One attempt: wait for the budget, sign, send, and tell the limiter what came back
        (no headers when nothing did)."""
        before = self._clock()
        self.limiter.acquire(call.weight)
        spent.queued += self._clock() - before
        response_headers: Mapping[str, str] = {}
        try:
            prepared, redact = self._build_request(call)
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
            outcome = self._send_single_request(call, prepared)
            if isinstance(outcome, _Sent):
                response_headers = outcome.response.headers
        finally:
            self.limiter.observe(response_headers, call.weight)
        if isinstance(outcome, ExchangeError):
            self._fail(call, outcome, redact)
            raise outcome
        return self._handle_response(call, outcome, redact)

    def _build_request(self, call: _Call) -> tuple[requests.PreparedRequest, list[str]]:
        """The request of this attempt, signed afresh, and the signer's values to redact.

        Built as `requests.Request(...).prepare()` builds it from these headers and this body,
        without its URL parsing and cookie jar: the URL is sent exactly as encoded (and signed),
        and no cookie is ever sent."""
        headers = CaseInsensitiveDict(self._headers)
        if call.content_type:
            headers["Content-Type"] = call.content_type
        redact: list[str] = []
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
            for header in auth.items():
                check_header_validity(header)
            headers.update(auth)
        body = call.body.encode() or None
        if body is not None:
            headers["Content-Length"] = str(len(body))
        elif call.method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared = requests.PreparedRequest()
        prepared.method = call.method
        prepared.url = call.url
        prepared.headers = headers
        prepared.body = body
        return prepared, redact

    def _send_single_request(
        self, call: _Call, prepared: requests.PreparedRequest
    ) -> _Sent | ExchangeError:
        """The wire: the response and its body, or the transport failure that stands for it
        (returned, not raised: the requests exception holds the signed request's headers and
        must not stay reachable as the failure's __context__).

        Sent as the session's adapter sends it for `Session.send`, without following redirects
        (the session's hooks and cookies never applied: the request is not prepared by the
        session), by a `Transport` that keeps the connection pool and the proxies; the body is
        read in one piece, with the exceptions `Response.content` raises (it would read it in
        pieces of 10 kB)."""
        sent_at = self._clock()
        try:
            received = self._transport.send(prepared, self.timeout)
        except requests.exceptions.RequestException as exc:
            failure = _transport_failure(self.exchange, call.endpoint, exc)
            if failure is None:
                raise
            return failure
        return _Sent(received, sent_at)

    def _handle_response(self, call: _Call, sent: _Sent, redact: list[str]) -> Reply:
        """Decode the body, classify status and body; the reply, or the error raised."""
        response = sent.response
        now = self._clock()
        logger.debug(
            "%s %s %s -> %d in %.3fs",
            self.exchange,
            call.method,
            call.endpoint,
            response.status,
            now - sent.at,
        )
        if call.read is not None and response.status == 200:
            made = call.read(sent.response.body)
            if made is not None:
                return self._reply(call, sent, None, now, read=made)
        text, data = decode_body(sent.response.body)
        error = self._classify(
            response.status, data, endpoint=call.endpoint, headers=response.headers, now=now
        )
        if error is not None:
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                self.limiter.block_until(now + error.retry_after)
            self._fail(call, error, redact)
            raise error
        return self._reply(call, sent, data, now, text=text)

    @staticmethod
    def _reply(
        call: _Call,
        sent: _Sent,
        data: object,
        now: float,
        *,
        text: str | None = None,
        read: object = None,
    ) -> Reply:
        return Reply(
            data=data,
            text=sent.response.body.decode("utf-8") if text is None else text,
            status=sent.response.status,
            headers=sent.response.headers,  # (the response's own: nothing else holds it)
            url=call.url,
            fetched_at=datetime.fromtimestamp(now, UTC),
            read=read,
        )

    def _fail(self, call: _Call, error: ExchangeError, redact: list[str]) -> None:
        error._redact(redact)
        error.url = call.url
        self.stats.record_error(call.endpoint, error)
        level = logging.DEBUG if isinstance(error, RetryableError) else logging.INFO
        logger.log(level, "%s", error)


def decode_body(content: bytes) -> tuple[str, object]:
    """The body as text, and its JSON (floats as Decimal) or `NOT_JSON`: what every reply holds."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("utf-8", errors="replace"), NOT_JSON
    return text, _parse_json(text)


def _transport_failure(
    exchange: str, endpoint: str, exc: requests.exceptions.RequestException
) -> ExchangeError | None:
    """The error a transport exception stands for; None for one that is no transport failure."""
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
    return _make_error(cls, exchange, endpoint, reason=f"{reason} ({type(exc).__name__})")
