"""HTTP for the exchange clients: one session, error classification, retries, rate limiting.

`HttpClient.request` builds the URL itself, asks the signer for auth headers on every attempt
(with the exact method, host, path, query, content type and body that are then sent), paces
through a `Limiter`, classifies every failure from status AND body, and retries only what is
worth retrying (tenacity: exponential back-off with jitter, honouring Retry-After, Bitvavo's
reset time and ban expiry, bounded in attempts and time).

Exceptions (defined in `_errors`)::

    ExchangeError                     .exchange .endpoint .code .status .url
    ├── RetryableError                .retry_after (seconds, > 0, or None)
    │   ├── RateLimitedError          HTTP 429, Bitstamp 400.002, Bitvavo 103/104/105/110/112
    │   ├── ServerError               HTTP 5xx, Bitvavo 101/107-109/400/404, Bitstamp maintenance
    │   ├── TransportError            connection refused/reset, timeout
    │   └── MalformedResponseError    truncated or non-JSON body
    └── FatalError
        ├── AuthenticationError       Bitstamp API0xxx, Bitvavo 300-309
        │   └── ClockSkewError        Bitvavo 304, Bitstamp API0017 (outside the window);
        │                             .server_time (the response's `Date`)
        ├── PermissionDeniedError     Bitstamp API0003 / "no permission", Bitvavo 307/310-312/317
        ├── InvalidRequestError       validation: other 4xx, Bitstamp 400.xxx, Bitvavo 102/2xx
        └── NotFoundError             unknown endpoint (HTTP 404, redirects)

Messages name the exchange, the endpoint and the exchange's error code. Nothing here ever logs
or raises a header value or anything a signer returned.

Modules: `_errors` (the hierarchy above), `_classify` (`classify_bitstamp`, `classify_bitvavo`),
`_limiters` (`Limiter`, `RequestBudget`, `WeightBudget`, `shared_limiter`), `_shared_limiters`
(`SharedRequestBudget`, `SharedWeightBudget`, `budget_path`: one budget per key across processes,
kept in a `_statefile.StateFile`), `_client` (`HttpClient`, `SignInput`, `Reply`, `RetryPolicy`),
`_stats` (`HttpStats`), `_common`.
Import from `pipelines.http`, not from the private modules.
"""

from __future__ import annotations

from ._classify import EPOCH_MARGIN_SECONDS as EPOCH_MARGIN_SECONDS
from ._classify import NOT_JSON, classify_bitstamp, classify_bitvavo
from ._client import DEFAULT_RETRY, USER_AGENT, HttpClient, Reply, RetryPolicy, Signer, SignInput
from ._client import FORM_CONTENT_TYPE as FORM_CONTENT_TYPE
from ._client import logger as logger
from ._common import Clock as Clock
from ._common import Sleep as Sleep
from ._errors import (
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    FatalError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RetryableError,
    ServerError,
    TransportError,
)
from ._limiters import Limiter, RequestBudget, WeightBudget, shared_limiter
from ._shared_limiters import SharedRequestBudget, SharedWeightBudget, budget_path
from ._stats import EndpointStats, HttpStats

__all__ = [
    "DEFAULT_RETRY",
    "NOT_JSON",
    "USER_AGENT",
    "AuthenticationError",
    "ClockSkewError",
    "EndpointStats",
    "ExchangeError",
    "FatalError",
    "HttpClient",
    "HttpStats",
    "InvalidRequestError",
    "Limiter",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "Reply",
    "RequestBudget",
    "RetryPolicy",
    "RetryableError",
    "ServerError",
    "SharedRequestBudget",
    "SharedWeightBudget",
    "SignInput",
    "Signer",
    "TransportError",
    "WeightBudget",
    "budget_path",
    "classify_bitstamp",
    "classify_bitvavo",
    "shared_limiter",
]
