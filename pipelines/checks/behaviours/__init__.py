"""Probes of the API behaviours that the sandbox cannot prove (docs/exchanges.md: tagged open).

The sandbox plays every reality of each open point (`tally sandbox --variant NAME=VALUE`,
`pipelines/sandbox/variants.py`) and tally's clients handle them all; which one the real
exchange plays only the exchange can tell. Each probe asks it with a few read-only requests, on
the user's own account where the point needs one, through the runtime's clients (so through
their shared rate budgets), and returns one `CheckRow`: check "probe: <variant>", subject the
exchange, and status

- ok: settled; the detail names the reality seen, what was seen, and how tally handles it;
- skip: nothing on the account settles it (why), or it cannot be settled in a few requests;
- warn: what was seen is none of the known realities (a finding: the detail says what);
- fail: the probe could not run (the exchange refused or did not answer; the fix says what to do).

Every detail ends with the requests (and Bitvavo weight) the probe sent.

Requests (Bitvavo weight) per probe, every attempt counted (each module says how):

| variant | how it is probed | requests (weight) |
|---|---|---|
| bitvavo-history-ids | newest history buys/sells matched to `/v2/trades` | 2–5 (2–17) |
| bitvavo-history-amounts | the same sample, read once: quote amounts vs fills | shared |
| bitvavo-trades-span | account trades over 91 days, then over 24 h | 1–2 (5–10) |
| bitvavo-trades-end | public trades with `end` = a trade's own time | 1–2 (5–10) |
| bitvavo-trades-start | public trades with `start` = a trade's own time | 1–2 (5–10) |
| bitvavo-withdrawal-amount | withdrawalHistory vs history vs Bitstamp deposits | 1–2 (5–6) + 1 |
| bitvavo-error-text | candles of a market that cannot exist | 1 (1) |
| bitvavo-candles-settle | not probed: a few requests cannot bound a lag | 0 |
| bitstamp-crypto-limit | crypto-transactions with limit 1, then 1000 | 1–2 |
| bitstamp-ohlc-before-listing | daily OHLC with `end` in 2011, then at its candle | 1–2 |
| bitstamp-perps | `/markets/` | 1 |
| bitstamp-json-spacing | `/api/v2/eur_usd/`, its body as sent | 1 |
| bitvavo-json-spacing | `/v2/time`, its body as sent | 1 (1) |

At most 15 Bitvavo requests of weight 55 in all (of the key's 1000 a minute), and 7 Bitstamp
requests (the withdrawal probe's one included).

Each probe module declares its `PROBES` (`probe.Probe`: the variant, the exchange's adapter,
whether it needs the key); `PROBES` here is theirs in the order above.

`run_probes(rt, exchanges, deadline)` runs those of the given exchanges, for `tally doctor`;
with a deadline, in a thread of their own: a probe still waiting when it passes fails (the
exchange stopped answering) and those not started yet are skipped, so that doctor ends in time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from pipelines.checks import CheckRow
from pipelines.checks.behaviours import (
    bitstamp,
    bitvavo_candles,
    bitvavo_errors,
    bitvavo_history,
    bitvavo_trades,
    bitvavo_withdrawals,
    json_spacing,
)
from pipelines.checks.behaviours.bitstamp import (
    probe_crypto_limit,
    probe_ohlc_before_listing,
    probe_perps,
)
from pipelines.checks.behaviours.bitvavo_candles import probe_candles_settle
from pipelines.checks.behaviours.bitvavo_errors import probe_error_text
from pipelines.checks.behaviours.bitvavo_history import (
    HistorySample,
    history_sample,
    probe_history_amounts,
    probe_history_ids,
)
from pipelines.checks.behaviours.bitvavo_trades import (
    probe_trades_end,
    probe_trades_span,
    probe_trades_start,
)
from pipelines.checks.behaviours.bitvavo_withdrawals import probe_withdrawal_amount
from pipelines.checks.behaviours.json_spacing import probe_json_spacing
from pipelines.checks.behaviours.probe import Probe, ProbeRun, runtime_client
from pipelines.checks.behaviours.realities import HANDLING, MEANINGS
from pipelines.checks.behaviours.rows import Spend, check_name, failed, has_key, unsettled
from pipelines.checks.exchange import Deadline
from pipelines.credentials import env_names
from pipelines.flows.runtime import Runtime
from pipelines.http import (
    AuthenticationError,
    ExchangeError,
    PermissionDeniedError,
    RetryableError,
)

__all__ = [
    "HANDLING",
    "MEANINGS",
    "PROBES",
    "HistorySample",
    "Probe",
    "history_sample",
    "probe_candles_settle",
    "probe_crypto_limit",
    "probe_error_text",
    "probe_history_amounts",
    "probe_history_ids",
    "probe_json_spacing",
    "probe_ohlc_before_listing",
    "probe_perps",
    "probe_trades_end",
    "probe_trades_span",
    "probe_trades_start",
    "probe_withdrawal_amount",
    "run_probes",
]


PROBES: tuple[Probe, ...] = (
    *bitstamp.PROBES,
    *bitvavo_history.PROBES,
    *bitvavo_trades.PROBES,
    *bitvavo_withdrawals.PROBES,
    *bitvavo_errors.PROBES,
    *bitvavo_candles.PROBES,
    *json_spacing.PROBES,
)


def run_probes(
    rt: Runtime, exchanges: Iterable[str], deadline: Deadline | None = None
) -> list[CheckRow]:
    """One row per open point of each of `exchanges` (by name), in `PROBES` order. A probe
    that raises gives a `fail` row; the others still run. Every request goes through `rt`'s
    clients, so its retry policy and timeouts apply: probe only exchanges that answered the
    reachability check. With `deadline`, the probes run in a daemon thread that is
    left behind when the deadline passes (see `_within`)."""
    wanted = frozenset(exchanges)
    unknown = wanted - {probe.exchange for probe in PROBES}
    if unknown:
        raise ValueError(f"no probes for exchange(s) {sorted(unknown)}")
    run = ProbeRun(rt, wanted)
    chosen = [probe for probe in PROBES if probe.exchange in wanted]
    if deadline is None:
        return [_guarded(probe, run) for probe in chosen]
    return _within(deadline, chosen, run)


def _within(deadline: Deadline, chosen: Sequence[Probe], run: ProbeRun) -> list[CheckRow]:
    """The rows of `chosen` finished before `deadline`; then a failed row for the probe still
    waiting and a skipped one for each probe not started (a late row is dropped)."""
    rows: list[CheckRow] = []
    lock = threading.Lock()
    closed = threading.Event()

    def work() -> None:
        for probe in chosen:
            row = _guarded(probe, run)
            with lock:
                if closed.is_set():
                    return
                rows.append(row)

    thread = threading.Thread(target=work, daemon=True, name="tally-behaviours")
    thread.start()
    thread.join(deadline.left)
    with lock:
        closed.set()
        done = list(rows)
    late = list(chosen[len(done) :])
    if not late:
        return done
    waiting, *unstarted = late
    budget = f"the doctor's {deadline.seconds:g} s for asking the exchanges"
    done.append(
        failed(
            waiting.exchange,
            waiting.variant,
            f"no answer within {budget}: still waiting for {waiting.exchange}",
            "(requests sent unknown)",
            f"check the network connection and base_url under [{waiting.exchange}] in "
            "tally.toml, then run tally doctor again",
        )
    )
    done += [
        CheckRow(
            check_name(probe.variant),
            probe.exchange,
            "skip",
            f"not probed: {budget} ran out (see probe: {waiting.variant})",
        )
        for probe in unstarted
    ]
    return done


def _guarded(probe: Probe, run: ProbeRun) -> CheckRow:
    exchange, variant = probe.exchange, probe.variant
    if probe.needs_key and not has_key(run.rt, exchange):
        return unsettled(
            exchange,
            variant,
            f"no API key for {exchange}, and the point shows only on the account",
            Spend(),
            "set {} and {} (a read-only key)".format(*env_names(exchange)),
        )
    spend = Spend()  # what a probe that raises had sent
    try:
        for name in run.exchanges:
            spend.use(runtime_client(run.rt, name))
        return probe.run(run)
    except Exception as error:  # every probe gets its row, whatever another one raised
        return failed(exchange, variant, f"{type(error).__name__}: {error}", spend, _fix(error))


def _fix(error: Exception) -> str:
    if isinstance(error, PermissionDeniedError):
        return (
            f"give the {error.exchange} API key read access to {error.endpoint} "
            "(tally needs no more than reading)"
        )
    if isinstance(error, AuthenticationError):
        return f"check the {error.exchange} API key and secret and the clock (see those rows)"
    if isinstance(error, RetryableError):
        return f"{error.exchange} did not answer in time: run tally doctor again later"
    if isinstance(error, ExchangeError):
        return f"check the {error.exchange} base_url and markets in tally.toml (see those rows)"
    return "report this row to tally's maintainers"
