"""An exchange error told to a person: what went wrong, and what to do about it.

`explain(error, base_url)` turns any `pipelines.http.ExchangeError` into the check it fails
("reachable", "credentials", "clock", "permission", "rate limit", "request"), a detail (the
error itself, which names the endpoint and the exchange's error code) and a fix that names the
environment variable, config key or exchange setting concerned. The checks before work and
`tally doctor` build their rows from it; `sync_failure` makes the same sentence of an error that
ends a sync (with the stream and the request it failed on), so that `tally sync` and `tally demo`
exit 3 with one line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.checks.permissions import requests_by_endpoint
from pipelines.config import Settings
from pipelines.credentials import env_names  # also for pipelines.checks.exchange
from pipelines.exchanges.bitvavo_walk import TradeIdToError
from pipelines.exchanges.checks_facts import READ_PERMISSION_FIX
from pipelines.exchanges.paging import PagingLoopError
from pipelines.exchanges.registry import EXCHANGES
from pipelines.exchanges.values import RowParseError
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.http import (
    AuthenticationError,
    ClockSkewError,
    ExchangeError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TransportError,
)

# Codes that say which half of the key pair is wrong (docs/exchanges.md, "…: authentication").
_KEY_REFUSED = {"API0001", "API0011", "301", "305", "306"}  # key unknown, malformed, inactive
_SECRET_REFUSED = {"API0005", "308", "309"}  # signature wrong: the secret
_IP_REFUSED = {"API0002", "307"}
_NO_VIEW = "311"  # Bitvavo: "This key does not allow showing account information."

EXPECTED_SYNC_ERRORS: tuple[type[Exception], ...] = (
    ExchangeError,
    PagingLoopError,
    TradeIdToError,
    RowParseError,
)
"""What may end a sync that a person, not a developer, must act on: told in one line."""


@dataclass(frozen=True, slots=True)
class Explained:
    check: str
    detail: str
    fix: str


def credentials_hint(exchange: str, *, key: bool = True, secret: bool = True) -> str:
    """Where the halves asked for are set, e.g. `BITSTAMP_API_SECRET (or api_secret under
    [bitstamp] in tally.toml)`."""
    key_var, secret_var = env_names(exchange)
    names = [n for n, wanted in ((key_var, key), (secret_var, secret)) if wanted]
    fields = [n for n, wanted in (("api_key", key), ("api_secret", secret)) if wanted]
    return f"{' and '.join(names)} (or {' and '.join(fields)} under [{exchange}] in tally.toml)"


def explain(error: ExchangeError, base_url: str) -> Explained:
    """The check `error` fails, with detail and fix; the endpoint is named by its request
    ("crypto_transactions" → "POST /api/v2/crypto-transactions/")."""
    exchange = error.exchange
    call = requests_by_endpoint(exchange).get(error.endpoint, error.endpoint)
    reason = str(error).removeprefix(f"{exchange} ").removeprefix(f"{error.endpoint}: ")
    reason = f"{call}: {reason}"
    config = f"base_url under [{exchange}] in tally.toml"
    if isinstance(error, ClockSkewError):
        return Explained(
            "clock",
            f"the exchange refused the request's time: {reason}",
            "set the system clock right (turn on NTP time synchronisation)",
        )
    if isinstance(error, PermissionDeniedError) or error.code in _IP_REFUSED:
        return Explained("permission", reason, _permission_fix(error, call))
    if isinstance(error, AuthenticationError):
        code = error.code or ""
        hint = credentials_hint(
            exchange, key=code not in _SECRET_REFUSED, secret=code not in _KEY_REFUSED
        )
        return Explained("credentials", f"the API key was refused: {reason}", f"check {hint}")
    if isinstance(error, RateLimitedError):
        wait = f" {error.retry_after:.0f} s" if error.retry_after else " a minute"
        return Explained(
            "rate limit",
            reason,
            f"wait{wait} and run again; every process using this key shares its budget",
        )
    if isinstance(error, TransportError):
        return Explained(
            "reachable",
            f"{base_url} does not answer: {reason}",
            f"check the network connection and {config}",
        )
    if isinstance(error, NotFoundError):
        return Explained(
            "reachable",
            f"{base_url} has no such endpoint: {reason}",
            f"check {config}",
        )
    if isinstance(error, InvalidRequestError):
        return Explained(
            "request",
            reason,
            "the exchange refused a request tally sent: report it with this line",
        )
    return Explained(  # ServerError, MalformedResponseError, and anything newer
        "reachable",
        f"{base_url} answers with errors: {reason}",
        f"try again later (the exchange's status page may say more); check {config}",
    )


def _permission_fix(error: ExchangeError, call: str) -> str:
    adapter = EXCHANGES.get(error.exchange)
    where = adapter.checks.key_settings if adapter else "the exchange's API key settings"
    if error.code in _IP_REFUSED:
        return f"allow this machine's IP address for the key ({where})"
    if error.code == _NO_VIEW:
        return f"turn on the key's View permission ({where})"
    fix = adapter.checks.permission_fix if adapter else READ_PERMISSION_FIX
    return fix.format(call=call, where=where)


def sync_failure(
    error: Exception,
    base_urls: Mapping[str, str] | None = None,
    *,
    stream: str | None = None,
    where: str | None = None,
) -> OperatorError:
    """The one line, and exit code, of an expected error that ended a sync: the stream when
    known (else the exchange), what happened, the request it failed on (`where`, e.g.
    "GET http://…", else the error's URL) and the fix. `base_urls` by exchange name the
    configured base URLs a "does not answer" names.

    `pipelines.progress.session.sync_progress` calls it for `tally sync` and `tally demo`.
    """
    if isinstance(error, ExchangeError):
        base_url = (base_urls or {}).get(error.exchange, error.exchange)
        explained = explain(error, base_url)
        where = where or getattr(error, "url", None)
        shown = f" ({where})" if where and where not in explained.detail else ""
        return OperatorError(
            sentence(f"{stream or error.exchange}: {explained.detail}{shown}", explained.fix),
            exit_code=ExitCode.EXCHANGE,
        )
    what = f"{stream}: {error}" if stream else str(error)
    if isinstance(error, RowParseError):
        return OperatorError(
            sentence(what, "the exchange sent a row tally cannot read: report this line"),
            exit_code=ExitCode.DATA,
        )
    return OperatorError(
        sentence(what, "the exchange's paging is not as documented: report this line"),
        exit_code=ExitCode.EXCHANGE,
    )


def base_urls(settings: Settings) -> dict[str, str]:
    """Each configured exchange's base URL, for `sync_failure`."""
    return {name: exchange.base_url for name, exchange in settings.exchanges.items()}


def sentence(what: str, fix: str) -> str:
    """What is wrong and what to do, as one line."""
    what = " ".join(what.split()).rstrip(".")
    return f"{what}; {fix}" if fix else what
