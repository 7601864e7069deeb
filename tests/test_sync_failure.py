"""One way an expected error ends a sync (`tally sync` and `tally demo` alike): the session's
`OperatorError`, whose first line names the stream, what happened, the request it failed on and
the fix, then one line per other stream that failed for good; a stream Prefect retries is not
listed. Events are published on the real channel; no exchange is needed to raise an error."""

from __future__ import annotations

import pytest

from pipelines import progress
from pipelines.exchanges.values import RowParseError
from pipelines.exit_codes import ExitCode, OperatorError
from pipelines.http import AuthenticationError, TransportError
from pipelines.progress.session import NONE, sync_progress

BITVAVO = "http://127.0.0.1:4321/v2"
BALANCE = f"{BITVAVO}/balance"
TRADES = f"{BITVAVO}/BTC-EUR/trades?limit=1000"


def fail(stream: str, exchange: str, url: str, error: Exception, retry_in: float | None) -> None:
    progress.stream_started(stream, exchange)
    with progress.request(exchange, "x", "GET", url):
        progress.request_sent(1, 1)
    progress.stream_failed(error, stream=stream, retry_in=retry_in)


def test_the_error_that_ended_the_sync_comes_first_then_the_other_failed_streams() -> None:
    refused = AuthenticationError(
        "bitvavo balance: invalid API key (code 305, HTTP 403)",
        exchange="bitvavo",
        endpoint="balance",
        code="305",
    )
    refused.url = BALANCE
    down = TransportError(
        "bitvavo trades: connection failed", exchange="bitvavo", endpoint="trades"
    )
    down.url = TRADES
    with (
        pytest.raises(OperatorError) as raised,
        sync_progress(mode=NONE, base_urls={"bitvavo": BITVAVO}),
    ):
        fail("trades bitvavo BTC-EUR", "bitvavo", TRADES, down, None)
        fail("trades bitvavo ETH-EUR", "bitvavo", TRADES, down, 5.0)  # Prefect runs it again
        fail("account bitvavo", "bitvavo", BALANCE, refused, None)
        raise refused
    assert raised.value.exit_code == ExitCode.EXCHANGE
    first, *others = raised.value.lines
    assert first.startswith("account bitvavo: the API key was refused: ")
    assert f"(GET {BALANCE})" in first
    assert first.endswith("; check BITVAVO_API_KEY (or api_key under [bitvavo] in tally.toml)")
    assert others == [f"trades bitvavo BTC-EUR: {down} (GET {TRADES})"]


def test_a_row_that_cannot_be_read_names_its_stream_and_exits_1() -> None:
    error = RowParseError("bitstamp", "user_transactions", 7, "amount is not a number")
    with pytest.raises(OperatorError) as raised, sync_progress(mode=NONE):
        progress.stream_started("account bitstamp", "bitstamp")
        progress.stream_failed(error)
        raise error
    assert raised.value.exit_code == ExitCode.DATA
    (line,) = raised.value.lines
    assert line.startswith(f"account bitstamp: {error}; ")
    assert "report this line" in line


def test_an_unexpected_error_is_not_dressed_up() -> None:
    with pytest.raises(KeyError), sync_progress(mode=NONE):
        raise KeyError("a bug")
