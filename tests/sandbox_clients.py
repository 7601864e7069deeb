"""Clients of a running sandbox as the client tests make them: its key, its exchange's error
rules, a limiter of their own and fast retries (`FAST_RETRY` unless given)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, Unpack

from sandbox_runtime import FAST_RETRY

from pipelines.credentials import Credentials
from pipelines.exchanges.bitstamp import BitstampClient
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.http import Limiter, RequestBudget, RetryPolicy, WeightBudget
from pipelines.sandbox.server import Sandbox


class ClientOptions(TypedDict, total=False):
    timeout: tuple[float, float]
    clock: Callable[[], float]


class BitstampOptions(ClientOptions, total=False):
    new_nonce: Callable[[], str]


class BitvavoOptions(ClientOptions, total=False):
    limiter: Limiter


def bitstamp_client(
    sandbox: Sandbox, *, retry: RetryPolicy = FAST_RETRY, **options: Unpack[BitstampOptions]
) -> BitstampClient:
    creds = Credentials.from_strings(sandbox.bitstamp.key, sandbox.bitstamp.secret)
    return BitstampClient(
        sandbox.bitstamp.base_url,
        creds,
        classify=BITSTAMP.classify,
        limiter=RequestBudget(*BITSTAMP_PACING),
        retry=retry,
        **options,
    )


def bitvavo_client(
    sandbox: Sandbox, *, retry: RetryPolicy = FAST_RETRY, **options: Unpack[BitvavoOptions]
) -> BitvavoClient:
    creds = Credentials.from_strings(sandbox.bitvavo.key, sandbox.bitvavo.secret)
    options.setdefault("limiter", WeightBudget(headers=WEIGHT_HEADERS))
    return BitvavoClient(
        sandbox.bitvavo.base_url, creds, classify=BITVAVO.classify, retry=retry, **options
    )
