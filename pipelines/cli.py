"""The `tally` command.

Subcommands register themselves in `build_parser()` with `set_defaults(run=...)`; each `run`
takes the parsed namespace and returns the exit code. Heavy imports happen inside the
subcommand, so `tally --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.config import Settings


def build_parser() -> argparse.ArgumentParser:
    from pipelines.exit_codes import EXIT_CODES_HELP

    parser = argparse.ArgumentParser(
        prog="tally",
        description="A complete, exact history of Bitstamp and Bitvavo accounts and markets.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an expected failure too"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo(commands)
    _add_sync(commands)
    _add_doctor(commands)
    _add_status(commands)
    _add_warehouse(commands)
    _add_sql(commands)
    _add_export(commands)
    _add_config(commands)
    _add_sandbox(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="settings file (default ./tally.toml if present, else built-in defaults)",
    )


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=_seconds,
        nargs="?",
        const=math.inf,
        default=None,
        metavar="SECONDS",
        help="if another tally writes the data directory, wait for it (at most SECONDS) "
        "instead of exiting at once",
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return seconds


# --- tally sync / status / demo -------------------------------------------------------------


def _add_sync(commands: Any) -> None:
    from pipelines.exchanges.registry import names as exchange_names
    from pipelines.exit_codes import EXIT_CODES_HELP

    sync = commands.add_parser(
        "sync",
        help="fetch everything new from the configured exchanges into the lake",
        description=(
            "Run the ingestion flows against the configured exchanges. First, within seconds: "
            "the keys for the account streams, each base URL, the clocks and the configured "
            "markets (one line per problem, nothing fetched)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_option(sync)
    _wait_option(sync)
    sync.add_argument(
        "--exchange", choices=exchange_names(), action="append", help="only this exchange"
    )
    sync.add_argument(
        "--what",
        choices=("candles", "trades", "account", "all"),
        default="all",
        help="which streams (default all)",
    )
    sync.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout (progress stays on stderr)",
    )
    sync.set_defaults(run=_run_sync)


def _run_sync(args: argparse.Namespace) -> int:
    from pipelines.checks.failures import base_urls
    from pipelines.checks.preflight import run_preflight
    from pipelines.config import load_settings
    from pipelines.datadir_lock import data_dir_lock, refuse_if_locked
    from pipelines.exit_codes import ExitCode
    from pipelines.flows.prefect_server import prefect_server

    settings = load_settings(args.config)
    if args.wait is None:
        refuse_if_locked(settings.data_dir)  # a second writer hears it at once
    # Before Prefect starts: credentials, base URLs, clocks and markets, in seconds; a problem
    # raises one line each and nothing is fetched or written (the flow is told the markets are
    # checked).
    with _prefect_for_blocks(settings):
        for warning in run_preflight(settings, args.exchange, args.what):
            print(f"tally sync: warning: {warning}", file=sys.stderr)
    with (
        data_dir_lock(settings.data_dir, command="sync", wait=args.wait),
        _lake_writer(settings, "sync", args.wait),
    ):
        _quarantine(settings, "sync")
        # The flows' own progress lines (INFO) go to the Prefect UI and
        # <data_dir>/logs/prefect.log.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
        with prefect_server(settings.data_dir):
            from pipelines.flows.sync import config_path, lost_data, summary_table, sync_flow
            from pipelines.progress.session import sync_progress
            from pipelines.progress.summary import summary_json

            what = None if args.what == "all" else [args.what]
            config = config_path(args.config)
            # live on a terminal, else plain lines, both on stderr; a refused key, a ban, the
            # network: one line naming the stream, the URL and the fix (exit 3)
            with sync_progress(base_urls=base_urls(settings)):
                results = sync_flow(
                    config, args.exchange, what, markets_checked=True, lake_checked=True
                )
        if not args.json:
            print(summary_table(results), flush=True)
        path = settings.warehouse_path  # rebuilt by the flow, after its streams
    print(summary_json(results, warehouse=path) if args.json else f"warehouse rebuilt: {path}")
    lost = lost_data(results)
    for gap in lost:
        print(f"tally sync: data lost: {gap} (see coverage)", file=sys.stderr)
    return int(ExitCode.DATA) if lost else 0


def _add_doctor(commands: Any) -> None:
    from pipelines.exchanges.registry import names as exchange_names
    from pipelines.exit_codes import EXIT_CODES_HELP

    doctor = commands.add_parser(
        "doctor",
        help="check the setup: configuration, keys and permissions, clock, markets, warehouse",
        description=(
            "Run every check and print one row each (check, subject, status, detail) with its "
            "fix: the configuration, each exchange's base URL, clock, key and secret, every "
            "read permission the account sync needs (and a warning: a key's trade and withdraw "
            "rights cannot be read without risk), the configured markets, and the warehouse's "
            "freshness. Read-only: it never writes and never calls a trading endpoint."
        ),
        epilog=EXIT_CODES_HELP + "\n(doctor: 0 only when no row failed, else the worst row's)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_option(doctor)
    doctor.add_argument(
        "--exchange", choices=exchange_names(), action="append", help="only this exchange"
    )
    doctor.add_argument("--json", action="store_true", help="print the rows as JSON")
    doctor.set_defaults(run=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    from pipelines.checks.doctor import (
        DoctorContext,
        failed_configuration,
        format_json,
        format_table,
        run_doctor,
    )
    from pipelines.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        report = failed_configuration(str(args.config or "tally.toml"), error)
    else:
        exchanges = tuple(dict.fromkeys(args.exchange or settings.exchanges))
        with _prefect_for_blocks(settings):
            report = run_doctor(DoctorContext(settings, exchanges, args.config))
    print(format_json(report) if args.json else format_table(report))
    return int(report.exit_code)


@contextmanager
def _prefect_for_blocks(settings: Settings) -> Iterator[None]:
    """For checks that load a key pair from Prefect Secret blocks (and so import Prefect):
    Prefect's settings as this data directory's flow runs have them (`prepare_prefect`: its
    home and profile, hence its API, and its logging to `<data_dir>/logs`), and on the way out
    the events of the blocks loaded delivered (else Prefect's worker says, on the terminal, that
    it is still sending them as the process ends)."""
    from pipelines.config import kept_in_blocks

    if not kept_in_blocks(settings):
        yield
        return
    from pipelines.flows.prefect_env import prepare_prefect

    prepare_prefect(settings.data_dir)
    from prefect.logging.configuration import setup_logging

    setup_logging()  # as importing Prefect's flows would: its records to its log file
    try:
        yield
    finally:
        if "prefect.events.worker" in sys.modules:
            from pipelines.flows.prefect_server import drain_workers

            drain_workers()


def _add_status(commands: Any) -> None:
    status = commands.add_parser("status", help="per stream: rows, time range, last fetch, gaps")
    _config_option(status)
    status.set_defaults(run=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from pipelines.config import load_settings
    from pipelines.lake import Lake
    from pipelines.quarantine import format_quarantine, inspect_lake
    from pipelines.status import format_status, stream_status

    settings = load_settings(args.config)
    report = inspect_lake(settings)  # moves nothing: unreadable files are left out and listed
    unreadable = {bad.path for bad in report.unreadable}
    print(format_status(stream_status(Lake.of(settings), skip=unreadable)))
    if held := format_quarantine(report):
        print(held)
    return 0


def _lake_writer(
    settings: Settings, command: str, wait: float | None
) -> AbstractContextManager[object]:
    """The lake's lock, exclusive, when `rate_budget_url` is set (`pipelines.lake_lock`): no
    fan-out child of any machine writes while this command lands or moves objects."""
    from pipelines.lake_lock import lake_writer

    def notice(text: str) -> None:
        print(f"tally {command}: {text}", file=sys.stderr, flush=True)

    return lake_writer(settings, shared=False, command=command, wait=wait, notice=notice)


def _quarantine(settings: Settings, command: str) -> None:
    """Before a writer reads the lake: move its unreadable files to the quarantine, one line
    each on stderr."""
    from pipelines.quarantine import moved_lines, quarantine_lake

    # the warehouse's views would read a file left in place: it stops; a sync goes on
    for line in moved_lines(quarantine_lake(settings, strict=command == "warehouse")):
        print(f"tally {command}: {line}", file=sys.stderr)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="sync the built-in sandbox exchanges end to end into ./data",
        description=(
            "Start the sandbox on free loopback ports, sync both simulated accounts and their "
            "markets, print what landed, build the warehouse and print the reconciliation of "
            "every reported balance; exit 1 if any balance does not reconcile."
        ),
    )
    demo.add_argument("--data", type=Path, default=Path("data"), help="data directory")
    _wait_option(demo)
    demo.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from pipelines.datadir_lock import data_dir_lock
    from pipelines.demo import run_demo

    with data_dir_lock(args.data.resolve(), command="demo", wait=args.wait):
        return run_demo(args.data)


# --- tally warehouse / sql ------------------------------------------------------------------


def _add_warehouse(commands: Any) -> None:
    warehouse = commands.add_parser(
        "warehouse",
        help="(re)build data/warehouse.duckdb: the lake's rows and the models over them",
        description=(
            "Bring the warehouse in step with the lake: load the lake files that are new or "
            "were replaced since the last build, compute the models again (tables and views, "
            "sql/models.toml), and print each with its row count. Queries read the warehouse, "
            "never the lake."
        ),
    )
    warehouse.add_argument(
        "--full",
        action="store_true",
        help="build everything from nothing instead of from the previous warehouse",
    )
    _config_option(warehouse)
    _wait_option(warehouse)
    warehouse.set_defaults(run=_run_warehouse)


def _run_warehouse(args: argparse.Namespace) -> int:
    from pipelines.config import load_settings
    from pipelines.datadir_lock import data_dir_lock
    from pipelines.exchanges.registry import warehouse_rules
    from pipelines.lake_duckdb import SHELL_INIT_FILE
    from pipelines.tables import render
    from warehouse.build import build, build_summary, view_row_counts
    from warehouse.connect import connect

    settings = load_settings(args.config)
    with (
        data_dir_lock(settings.data_dir, command="warehouse", wait=args.wait),
        _lake_writer(settings, "warehouse", args.wait),
    ):
        _quarantine(settings, "warehouse")
        result = build(settings, rules=warehouse_rules(), full=args.full)
    with connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3) as connection:
        counts = view_row_counts(connection, result.views)
    for line in render([(name, str(rows)) for name, rows in counts], right={1}, fixed={1: 10}):
        print(line)
    print(f"Warehouse: {result.path}   ({result.seconds:.1f} s, {build_summary(result)})")
    if settings.lake_url:  # the shell needs httpfs and the lake's secret: the init file has them
        init = settings.data_dir / SHELL_INIT_FILE
        print(f"Shell (with the AWS_* variables set): duckdb -readonly -init {init} {result.path}")
    return 0


def _add_sql(commands: Any) -> None:
    sql = commands.add_parser(
        "sql",
        help="run a query against the warehouse (read-only)",
        description=(
            "Run SQL on data/warehouse.duckdb, read-only: SELECT (and DESCRIBE, SHOW, "
            "SUMMARIZE, EXPLAIN, the PRAGMAs that read) over the views and the lake. COPY, "
            "EXPORT, ATTACH, INSTALL, LOAD, SET, CREATE, INSERT… and files outside the lake are "
            "refused (exit 2): use tally export, or the duckdb shell."
        ),
    )
    _config_option(sql)
    sql.add_argument("query", help='the query, e.g. "select * from reconcile_balances"')
    sql.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="default table"
    )
    sql.set_defaults(run=_run_sql)


def _run_sql(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.config import load_settings
    from pipelines.exit_codes import ExitCode, OperatorError
    from warehouse.connect import WarehouseMissingError, connect
    from warehouse.output import format_rows
    from warehouse.readonly import ReadOnlyError, read

    query_errors = (  # the query's own fault: its syntax, a name, a type, a value
        duckdb.ParserException,
        duckdb.CatalogException,
        duckdb.BinderException,
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.NotImplementedException,
    )

    settings = load_settings(args.config)
    try:
        connection = connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3)
    except WarehouseMissingError as error:
        print(f"tally sql: {error}", file=sys.stderr)
        return 2
    with connection:
        try:
            result = read(connection, args.query)  # a ReadOnlyError: exit 2, said by main
            columns = [d[0] for d in result.description or ()]
            rows = result.fetchall() if columns else []
        except ReadOnlyError:
            raise
        except duckdb.Error as error:  # one line; a query that does not run: exit 2
            # a damaged lake file also comes as invalid input: it names the file
            damaged = "parquet" in str(error).lower() or settings.lake_location in str(error)
            query = isinstance(error, query_errors) and not damaged
            code = ExitCode.USAGE if query else ExitCode.DATA
            raise OperatorError(_one_line(error), exit_code=code) from error
    if columns:
        print(format_rows(columns, rows, args.format))
    return 0


def _one_line(error: Exception) -> str:
    """DuckDB's message in one line: without its `LINE 1: …` quote of the query and caret."""
    kept = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line.startswith("LINE ") and set(line.strip()) != {"^"}
    ]
    return " ".join(kept)


# --- tally export ---------------------------------------------------------------------------


def _add_export(commands: Any) -> None:
    # only the option lists (standard library only): `tally --help` stays fast
    from warehouse.exports.options import CURRENCIES, FORMATS, LOT_MODES, METHODS, REPORTS

    export = commands.add_parser(
        "export",
        help="write tax and accounting exports (ledger, gains, Koinly, BittyTax…)",
        description=(
            "Write an export of the warehouse into data/exports (or --out), with a sidecar "
            "<name>.json stating its currency, method and period. FORMAT: ledger (every balance "
            "movement, valued), gains (disposal schedule), income (rewards), holdings (balances "
            "and values at the start of a day), koinly, cointracking, bittytax, or all of "
            "these; summary (needs --year) writes and shows the figures a return asks for "
            "(uk: SA108, de: Anlage SO, nl: box 3, fifo/lifo/hifo: short and long term). "
            "Without --year the whole history. Exits 1 if an export needs a price the warehouse "
            "does not have (listing every asset and time)."
        ),
    )
    _config_option(export)
    choices = (*FORMATS, *REPORTS, "all")
    export.add_argument("format", choices=choices, metavar="FORMAT", help=", ".join(choices))
    export.add_argument(
        "--year", type=int, default=None, help="a (tax) year; uk: 2024 is 6 Apr 2024 - 5 Apr 2025"
    )
    export.add_argument(
        "--method",
        choices=METHODS,
        default="fifo",
        help="cost-basis method and calendar (default fifo)",
    )
    export.add_argument(
        "--lots",
        choices=LOT_MODES,
        default=None,
        help="default: per-account for de (BMF: per wallet), else pooled; uk pools always",
    )
    export.add_argument(
        "--currency",
        choices=CURRENCIES,
        default=None,
        help="default: reporting_currency of tally.toml (built in: EUR)",
    )
    export.add_argument(
        "--timezone",
        default=None,
        metavar="TZ",
        help="days in this zone (default: UTC; uk: Europe/London, de: Europe/Berlin, "
        "nl: Europe/Amsterdam)",
    )
    export.add_argument(
        "--date",
        type=_parse_day,
        default=None,
        metavar="YYYY-MM-DD",
        help="holdings: the day valued (default: the first day of --year)",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="a directory (default data/exports), or a .csv file for a one-file format",
    )
    export.set_defaults(run=_run_export)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r}") from None


def _run_export(args: argparse.Namespace) -> int:
    from pipelines.config import load_settings
    from warehouse.connect import WarehouseMissingError, connect
    from warehouse.exports.options import FORMATS, ExportOptionError, ExportOptions
    from warehouse.exports.run import format_failures, format_written, run_exports

    settings = load_settings(args.config)
    formats = list(FORMATS) if args.format == "all" else [args.format]
    try:
        options = ExportOptions(
            year=args.year,
            method=args.method,
            lots=args.lots,
            currency=args.currency or settings.reporting_currency,
            timezone=args.timezone,
            on=args.date,
        )
        connection = connect(settings.data_dir, lake=settings.lake_location, s3=settings.s3)
    except (ExportOptionError, WarehouseMissingError) as error:
        print(f"tally export: {error}", file=sys.stderr)
        return 2
    with connection:
        try:
            report = run_exports(connection, formats, options, args.out or settings.exports_dir)
        except ExportOptionError as error:
            print(f"tally export: {error}", file=sys.stderr)
            return 2
    if report.written:
        print(format_written(report))
    if report.failed:
        print(format_failures(report), file=sys.stderr)
    return 0 if report.ok else 1


# --- tally config ---------------------------------------------------------------------------


def _add_config(commands: Any) -> None:
    config = commands.add_parser(
        "config",
        help="show the effective configuration, secrets masked",
        description=(
            "Check tally.toml and the environment and print every setting with its effective "
            "value and where it came from (default, the file, the environment). A secret shows "
            "only whether it is set, and an API key its id (a hash, not the key). Exits 2, one "
            "line per problem, when the configuration is invalid."
        ),
    )
    _config_option(config)
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    config.set_defaults(run=_run_config)


def _run_config(args: argparse.Namespace) -> int:
    from pipelines.config import describe_settings, format_settings, load_settings

    settings = load_settings(args.config)
    rows = describe_settings(settings)
    file = None if settings.config_file is None else str(settings.config_file)
    if args.json:
        described = [row._asdict() for row in rows]
        print(json.dumps({"file": file, "settings": described}, indent=2))
        return 0
    print(f"configuration: {file or 'no file, built-in defaults and the environment'}")
    print(format_settings(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # tally as a program, not a call from Python: the process is tally's
        from pipelines.cycles import relax_cycle_collector

        relax_cycle_collector()
    from pipelines.exit_codes import ExitCode, OperatorError

    parser = build_parser()
    args = parser.parse_args(argv)
    with _Interrupts() as interrupts:
        try:
            code = int(args.run(args))
        except OperatorError as error:  # a ConfigError too
            if args.debug:
                raise
            for line in error.lines:
                print(f"tally {args.command}: {line}", file=sys.stderr)
            return int(error.exit_code)
        except KeyboardInterrupt:
            if args.debug:
                raise
            # Ctrl-C reaches tally alone (the Prefect server has a session of its own): the
            # blocks above have ended in order (running tasks finished, server stopped, lock
            # released).
            interrupts.seen = True
    if interrupts.seen:  # raised and caught above, or swallowed on its way by a library
        print(f"tally {args.command}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    return code


class _Interrupts:
    """Ctrl-C while a command runs: raised as KeyboardInterrupt, as Python's own handler does,
    and remembered (`seen`).

    Being another function than Python's handler also keeps `asyncio.run` from putting its own
    in place, which turns SIGINT into a cancelled task: a library that catches that
    cancellation would make the Ctrl-C vanish, and tally would finish as though no one had
    pressed it. A SIGINT that the process ignores (started with `&` by a script) stays
    ignored; off the main thread nothing is changed."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: _Handler = None

    def __enter__(self) -> _Interrupts:
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# --- tally sandbox --------------------------------------------------------------------------


def _add_sandbox(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="serve the Bitstamp and Bitvavo emulators on loopback until stopped",
        description=(
            "Serve the Bitstamp and Bitvavo emulators on free 127.0.0.1 ports until SIGINT or "
            "SIGTERM. Prints one JSON object with each exchange's base_url, key and secret."
        ),
    )
    sandbox.add_argument("--seed", type=int, default=1, help="world seed (default 1)")
    sandbox.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    sandbox.add_argument(
        "--now",
        type=_parse_now,
        default=None,
        metavar="ISO",
        help="freeze the world's clock at this UTC time (e.g. 2024-03-31T00:00:00Z)",
    )
    sandbox.add_argument(
        "--faults", type=float, default=0.0, metavar="RATE", help="fault rate in [0, 1]"
    )
    sandbox.add_argument(
        "--fault-kinds",
        default=None,
        metavar="KINDS",
        help="comma-separated fault kinds (default: all but malformed_row; 'all' for every kind)",
    )
    sandbox.add_argument(
        "--slow-seconds", type=float, default=2.0, help="delay of a 'slow' fault (default 2)"
    )
    sandbox.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply every rate-limit budget and window by X (default 1)",
    )
    sandbox.add_argument(
        "--no-quirks", action="store_true", help="switch the exchanges' documented quirks off"
    )
    sandbox.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="play one reality of an open API behaviour (repeatable; see sandbox/variants.py)",
    )
    sandbox.add_argument("--bitstamp-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--bitvavo-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--info", type=Path, metavar="FILE", help="also write the JSON here")
    sandbox.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="write a tally.toml that points at the running sandbox",
    )
    sandbox.set_defaults(run=_run_sandbox)


def _parse_now(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _run_sandbox(args: argparse.Namespace) -> int:
    from pipelines.atomic import write_text
    from pipelines.config_file import write_config
    from pipelines.sandbox.server import start_sandbox
    from pipelines.sandbox.variants import parse_variants
    from pipelines.sandbox_config import SANDBOX_COMMENT, sandbox_document

    stop = threading.Event()
    try:
        sandbox = start_sandbox(
            variants=parse_variants(args.variant),
            seed=args.seed,
            days=args.days,
            now_ms=args.now,
            faults=args.faults,
            rate_scale=args.rate_scale,
            quirks=not args.no_quirks,
            fault_kinds=args.fault_kinds,
            slow_seconds=args.slow_seconds,
            bitstamp_port=args.bitstamp_port,
            bitvavo_port=args.bitvavo_port,
        )
    except (ValueError, OSError) as error:  # bad option values, port in use
        print(f"tally sandbox: {error}", file=sys.stderr)
        return 2
    previous = _on_signals(stop)
    try:
        info = sandbox.info()
        text = json.dumps(info)
        if args.write_config is not None:
            write_config(args.write_config, sandbox_document(sandbox), comment=SANDBOX_COMMENT)
        if args.info is not None:
            write_text(args.info, text + "\n")
        print(text, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        _restore_signals(previous)
        sandbox.stop()
    print("sandbox stopped", file=sys.stderr, flush=True)
    return 0


_Handler = Any  # signal handler as returned by signal.getsignal


def _on_signals(stop: threading.Event) -> dict[int, _Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())
