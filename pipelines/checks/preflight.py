"""The checks `tally sync` runs before work: seconds, not minutes, and one line per problem.

In order, stopping at the first stage that finds a problem:

1. credentials exist for the account streams asked for (local: no request), and a key pair kept
   in Prefect Secret blocks loads (every stream of that exchange needs it: the key names its
   rate budget);
2. each base URL answers with its market list, and every configured market is listed
   (both exchanges at once; a typo fetches nothing else);
3. the local clock against each exchange's, and one cheap signed read per exchange whose
   requests will be signed (the key and secret accepted; for an account sync, its permission).

The configuration itself is checked before, by `load_settings` (exit 2). Stages 2 and 3 share
one `DEADLINE_S` budget, each request times out after 3 s, so the whole preflight ends within
10 s even when every URL hangs. A problem raises `PreflightError`: one line each, exit 2 for
configured markets the exchange does not list, else 3 (exchange, credentials, network, clock).
Warnings (a clock near its tolerance) are returned as lines for the caller to show.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.checks import CheckRow
from pipelines.checks.credentials import credentials_rows
from pipelines.checks.exchange import Deadline, ExchangeProbe, run_steps
from pipelines.checks.failures import sentence
from pipelines.config import Settings
from pipelines.exit_codes import ExitCode, OperatorError

DEADLINE_S = 7.0
STREAMS = ("candles", "trades", "account")


class PreflightError(OperatorError):
    """A check before work failed; one line per problem."""


def line(row: CheckRow) -> str:
    """A failed or warning row as the one line a person reads."""
    return sentence(f"{row.subject}: {row.detail}", row.fix)


def run_preflight(settings: Settings, exchanges: Sequence[str] | None, what: str) -> list[str]:
    """Run the checks for a sync of `exchanges` (None: all) and `what` ("all" or a stream);
    raise `PreflightError` on a problem, else return the warnings' lines."""
    names = list(dict.fromkeys(exchanges or settings.exchanges))
    account = what in ("all", "account")
    if account:
        missing = credentials_rows(
            settings, names, otherwise=", or sync market data only (--what candles or trades)"
        )
        if missing:
            raise PreflightError.of(map(line, missing), ExitCode.EXCHANGE)
    probes = [ExchangeProbe(settings, name) for name in names]
    deadline = Deadline(DEADLINE_S)
    try:
        run_steps(probes, _load_key_pair, deadline)
        _stop_on_problems(probes, account)
        run_steps(probes, ExchangeProbe.reach, deadline)
        _stop_on_problems(probes, account)

        def signed_checks(probe: ExchangeProbe) -> None:
            # a client that signs public requests when a key is set (so that the key's budget
            # is used, not the IP's) needs its key for market data too
            signs = account or (
                probe.facts.signs_public_requests and probe.config.credentials is not None
            )
            probe.clock(signed=signs)
            if signs:
                probe.credentials(every_read=False)

        run_steps(probes, signed_checks, deadline)
        _stop_on_problems(probes, account)
    finally:
        for probe in probes:
            probe.shutdown()
    return [line(row) for probe in probes for row in probe.snapshot() if row.status == "warn"]


def _load_key_pair(probe: ExchangeProbe) -> None:
    probe.load_key_pair()  # a failed row when it cannot be


def _stop_on_problems(probes: Sequence[ExchangeProbe], account: bool) -> None:
    # A key without a read permission may still read market data: only an account sync fails.
    failed = [
        row
        for probe in probes
        for row in probe.snapshot()
        if row.failed and (account or row.check != "permission")
    ]
    markets = [problem for probe in probes for problem in probe.market_problems()]
    if failed:
        raise PreflightError.of(
            [line(row) for row in failed] + [p.line() for p in markets], ExitCode.EXCHANGE
        )
    if markets:
        raise PreflightError.of([p.line() for p in markets], ExitCode.USAGE)
