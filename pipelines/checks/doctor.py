"""`tally doctor`: every check, one row each with its fix, and the exit code of the worst.

The checks are the entries of `CHECKS`: a name, a function of the `DoctorContext` that returns
`CheckRow`s, and the exit code a failed row of it stands for (3 exchange, credentials or
network; 2 configuration; 1 data). A new check is one more entry; today's:

- configuration: the file read, and every setting's effective value and source (secrets
  masked, as `tally config` shows them);
- credentials: a key and secret configured for each exchange (local);
- exchanges: base URL reachable, clock, a key pair kept in Prefect Secret blocks loaded (a
  failed row naming each block that cannot be), key and secret accepted, every account read
  permitted, and the warning that a key's trade/withdraw rights cannot be read (`exchange.py`);
- markets: every configured market a listed spot market;
- lake: every lake file readable, stray temp files, and what the quarantine holds
  (`pipelines/checks/lake.py`);
- warehouse: built after the newest lake file;
- behaviours: which reality each exchange plays of the API behaviours no recording or document
  settles (`pipelines/checks/behaviours`), asked of the exchanges that answered and accepted the key
  (or have none configured: the public probes still run).

The exchange checks run for both exchanges at once; they and the behaviour probes after them
share one time budget, `DEADLINE_S` of asking the exchanges (the local checks between them do
not count), and every request has a 3 s connect and read timeout: `tally doctor` ends within
about `DEADLINE_S` plus the local checks, even when an exchange hangs after answering the first
checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines import tables
from pipelines.checks import STATUSES, CheckRow
from pipelines.checks.credentials import credentials_rows
from pipelines.checks.exchange import RETRY, TIMEOUT_S, Deadline, ExchangeProbe, run_steps
from pipelines.checks.warehouse import warehouse_rows
from pipelines.config import DEFAULT_CONFIG_FILE, Settings, describe_settings, setting_text
from pipelines.exit_codes import ExitCode

DEADLINE_S = 30.0  # seconds of asking the exchanges: the exchange checks and the probes


@dataclass
class DoctorContext:
    """What the checks look at: the settings, the exchanges chosen, the config file read."""

    settings: Settings
    exchanges: tuple[str, ...]
    config_file: Path | None = None  # None: ./tally.toml if present, else built-in defaults
    deadline_s: float = DEADLINE_S  # the budget of asking the exchanges, shared by every check
    _probes: list[ExchangeProbe] | None = field(default=None, repr=False)
    _spent_s: float = field(default=0.0, repr=False)  # of that budget, by the exchange checks

    def probes(self) -> list[ExchangeProbe]:
        """Each exchange asked once (reachable, clock, credentials, permissions), concurrently;
        the rows and the market lists stay on the probes for every check that reads them."""
        if self._probes is None:
            probes = [ExchangeProbe(self.settings, name) for name in self.exchanges]
            started = time.monotonic()
            try:
                run_steps(probes, _ask_everything, Deadline(self.deadline_s, started))
            finally:
                self._spent_s = time.monotonic() - started
                for probe in probes:
                    probe.shutdown()
            self._probes = probes
        return self._probes

    def deadline_left(self) -> Deadline:
        """What is left of the budget after the exchange checks, starting now."""
        return Deadline(self.deadline_s, time.monotonic() - self._spent_s)


def _ask_everything(probe: ExchangeProbe) -> None:
    probe.reach()
    probe.clock(signed=probe.config.credentials is not None)
    probe.credentials(every_read=True)


@dataclass(frozen=True, slots=True)
class DoctorCheck:
    """One entry of `CHECKS`: its rows, and the exit code a failed one stands for."""

    name: str
    rows: Callable[[DoctorContext], Iterable[CheckRow]]
    failure: ExitCode  # what a failed row of this check exits with


def configuration_rows(ctx: DoctorContext) -> list[CheckRow]:
    path = ctx.config_file or DEFAULT_CONFIG_FILE
    source = str(path) if path.exists() else "built-in defaults (no tally.toml)"
    rows = [CheckRow("configuration", source, "ok", f"read; data in {ctx.settings.data_dir}")]
    # the effective values, secrets masked: the same rows as `tally config`
    rows += [
        CheckRow("setting", setting.key, "ok", f"{setting_text(setting.value)} ({setting.source})")
        for setting in describe_settings(ctx.settings)
        if not setting.key.startswith("[") or setting.key[1:].split("]")[0] in ctx.exchanges
    ]
    return rows + shared_lake_rows(ctx.settings)


def shared_lake_rows(settings: Settings) -> list[CheckRow]:
    """A warning when the lake is shared (`lake_url`) and the rate budgets are not: machines
    that sync into one lake with one key each keep their own budget of it."""
    if settings.lake_url is None or settings.rate_budget_url is not None:
        return []
    return [
        CheckRow(
            "configuration",
            "rate_budget_url",
            "warn",
            "lake_url is set, rate_budget_url is not: each machine keeps its own rate budgets"
            " (and stream locks), so syncs on several machines with one key can together go"
            " over an exchange's limit",
            'set rate_budget_url = "postgresql://USER@HOST:PORT/DATABASE", the same in every'
            " tally.toml whose syncs use these keys (ignore on a single machine)",
        )
    ]


def exchange_rows(ctx: DoctorContext) -> list[CheckRow]:
    return [row for probe in ctx.probes() for row in probe.snapshot()]


def market_rows(ctx: DoctorContext) -> list[CheckRow]:
    rows = []
    for probe in ctx.probes():
        configured = probe.config.markets
        if not configured:
            rows.append(CheckRow("markets", probe.name, "skip", "no market configured"))
        elif probe.listed is None:
            rows.append(
                CheckRow("markets", probe.name, "skip", "not checked: no market list came back")
            )
        elif problems := probe.market_problems():
            rows += [
                CheckRow(
                    "markets",
                    probe.name,
                    "fail",
                    problem.line().removeprefix(f"{probe.name}: "),
                    f"correct or remove {problem.market} in markets under [{probe.name}] "
                    "in tally.toml",
                )
                for problem in problems
            ]
        else:
            rows.append(
                CheckRow(
                    "markets",
                    probe.name,
                    "ok",
                    f"all {len(configured)} configured markets are listed: {', '.join(configured)}",
                )
            )
    return rows


def lake_rows(settings: Settings) -> list[CheckRow]:
    from pipelines.checks.lake import check_rows

    return check_rows(settings)


def behaviour_rows(ctx: DoctorContext) -> list[CheckRow]:
    from contextlib import closing

    from pipelines.checks.behaviours import run_probes
    from pipelines.flows.runtime import Runtime

    askable, rows = [], []
    for probe in ctx.probes():
        refused = [row for row in probe.snapshot() if row.check == "permission" and row.failed]
        key_usable = probe.config.credentials is None or (probe.key_accepted and not refused)
        if probe.reachable and key_usable:
            askable.append(probe.name)
        else:
            if not probe.reachable:
                reason = "not reachable"
            elif not probe.key_accepted:
                reason = "its key was not loaded or not accepted"
            else:
                reason = "its key lacks a read permission"
            rows.append(
                CheckRow("behaviours", probe.name, "skip", f"not probed: {reason} (see above)")
            )
    if askable:
        timeout = (TIMEOUT_S, TIMEOUT_S)
        with closing(Runtime(ctx.settings, retry=RETRY, timeout=timeout)) as rt:
            rows = run_probes(rt, askable, ctx.deadline_left()) + rows
    return rows


CHECKS: tuple[DoctorCheck, ...] = (
    DoctorCheck("configuration", configuration_rows, ExitCode.USAGE),
    DoctorCheck(
        "credentials", lambda ctx: credentials_rows(ctx.settings, ctx.exchanges), ExitCode.EXCHANGE
    ),
    DoctorCheck("exchanges", exchange_rows, ExitCode.EXCHANGE),
    DoctorCheck("markets", market_rows, ExitCode.USAGE),
    DoctorCheck("lake", lambda ctx: lake_rows(ctx.settings), ExitCode.DATA),
    DoctorCheck("warehouse", lambda ctx: warehouse_rows(ctx.settings), ExitCode.DATA),
    DoctorCheck("behaviours", behaviour_rows, ExitCode.EXCHANGE),
)


@dataclass(frozen=True)
class Report:
    """Every row, each with the exit code it stands for when it failed."""

    rows: tuple[tuple[CheckRow, ExitCode], ...]

    @property
    def exit_code(self) -> ExitCode:
        failed = [code for row, code in self.rows if row.failed]
        return max(failed, default=ExitCode.OK)

    def counts(self) -> dict[str, int]:
        return {status: sum(row.status == status for row, _ in self.rows) for status in STATUSES}


def run_doctor(ctx: DoctorContext, checks: Sequence[DoctorCheck] = CHECKS) -> Report:
    return Report(tuple((row, check.failure) for check in checks for row in check.rows(ctx)))


def failed_configuration(source: str, error: Exception) -> Report:
    """The report when the configuration cannot even be read: one failed row, exit 2."""
    row = CheckRow("configuration", source, "fail", str(error), "correct the file and run again")
    return Report(((row, ExitCode.USAGE),))


def format_table(report: Report) -> str:
    """Columns check, subject, status, detail; a row's fix on the line below its detail."""
    header = ("check", "subject", "status", "detail")
    cells = [header] + [
        (row.check, row.subject, row.status.upper() if row.failed else row.status, row.detail)
        for row, _ in report.rows
    ]
    indent = " " * tables.offset(tables.widths(cells), 3)
    lines = []
    for index, line in enumerate(tables.render(cells, pad_last=False)):
        lines.append(line)
        fix = report.rows[index - 1][0].fix if index else ""
        if fix and report.rows[index - 1][0].status != "ok":
            lines.append(f"{indent}fix: {fix}")
    counts = report.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    lines.append(f"{summary}: exit {int(report.exit_code)}")
    return "\n".join(line.rstrip() for line in lines)


def format_json(report: Report) -> str:
    return json.dumps(
        {
            "ok": report.exit_code == ExitCode.OK,
            "exit_code": int(report.exit_code),
            "checks": [asdict(row) for row, _ in report.rows],
        },
        indent=2,
    )
