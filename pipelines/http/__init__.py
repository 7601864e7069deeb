"""HTTP for the exchange clients: one session, retries, rate limiting, request metering.

This package knows no exchange: each client hands its `HttpClient` the exchange's name (for
messages, as `exchange`), a `Classifier` (its error rules, `pipelines.exchanges.*_errors`) and a
`Limiter` (its rate budget). `HttpClient.request` builds the URL itself, asks the signer for
auth headers on every attempt (with the exact method, host, path, query, content type and body
that are then sent), paces through the limiter, has every response classified from status AND
body, and retries only what is worth retrying (tenacity: exponential back-off with jitter,
honouring Retry-After and the waits a classifier read from the response, bounded in attempts
and time). `HttpStats` meters what was sent; `Usage` is its reading at one moment.

Exceptions (defined in `_errors`; the codes are the exchanges' classifiers' examples)::

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

Modules: `_errors` (the hierarchy above), `_classify` (`Classifier`, `ErrorRules` and the pieces
classifiers share: status and wording to class, Retry-After, `Date`, rate-limit waits), `_limiters`
(`Limiter`, `RequestBudget`, `WeightBudget`, `WeightHeaders`, `shared_limiter`), `_shared_limiters`
(`SharedRequestBudget`, `SharedWeightBudget`, `budget_path`, `BudgetRow`: one budget per key
across processes, kept in a `_statefile.StateFile` or, across machines, a `_pgstate.PgState`),
`_client` (`HttpClient`, `SignInput`, `Reply`, `RetryPolicy`), `_transport` (the wire under
`HttpClient`: requests' adapter's sending, with its pool and proxies kept), `_stats` (`HttpStats`,
`Usage`), `_common`.
Import from `pipelines.http`, not from the private modules; `_client`'s names are loaded when
first used, so that importing the package for its errors, rules or budgets stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._classify import EPOCH_MARGIN_SECONDS as EPOCH_MARGIN_SECONDS
from ._classify import (
    NOT_JSON,
    Classifier,
    ErrorDocument,
    ErrorRules,
    RateLimitWait,
    class_for_status,
    class_for_text,
    class_or_invalid,
    date_header,
    flatten_reason,
    rate_limit_wait,
    retry_after_header,
)
from ._common import Clock as Clock
from ._common import Sleep as Sleep
from ._common import lower_headers, to_number
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
from ._limiters import Limiter, RequestBudget, WeightBudget, WeightHeaders, shared_limiter
from ._pgstate import BudgetDatabaseError
from ._shared_limiters import (
    BudgetPlace,
    BudgetRow,
    SharedRequestBudget,
    SharedWeightBudget,
    budget_name,
    budget_path,
)
from ._stats import EndpointStats, HttpStats, Usage

if TYPE_CHECKING:
    from ._client import (
        DEFAULT_RETRY,
        USER_AGENT,
        HttpClient,
        Reply,
        RetryPolicy,
        Signer,
        SignInput,
        decode_body,
    )
    from ._client import FORM_CONTENT_TYPE as FORM_CONTENT_TYPE
    from ._client import logger as logger

# `_client` imports requests and tenacity: loaded on first use of one of its names (PEP 562), so
# that what only needs the error rules or the budgets (the exchanges' registry, the
# configuration, `tally --help`) stays cheap to import.
_CLIENT_NAMES = frozenset(
    {
        "DEFAULT_RETRY",
        "FORM_CONTENT_TYPE",
        "USER_AGENT",
        "HttpClient",
        "Reply",
        "RetryPolicy",
        "SignInput",
        "Signer",
        "decode_body",
        "logger",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import _client

        value = getattr(_client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RETRY",
    "NOT_JSON",
    "USER_AGENT",
    "AuthenticationError",
    "BudgetDatabaseError",
    "BudgetPlace",
    "BudgetRow",
    "Classifier",
    "ClockSkewError",
    "EndpointStats",
    "ErrorDocument",
    "ErrorRules",
    "ExchangeError",
    "FatalError",
    "HttpClient",
    "HttpStats",
    "InvalidRequestError",
    "Limiter",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitWait",
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
    "Usage",
    "WeightBudget",
    "WeightHeaders",
    "budget_name",
    "budget_path",
    "class_for_status",
    "class_for_text",
    "class_or_invalid",
    "date_header",
    "decode_body",
    "flatten_reason",
    "lower_headers",
    "rate_limit_wait",
    "retry_after_header",
    "shared_limiter",
    "to_number",
]
