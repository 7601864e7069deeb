"""`tally doctor` ends in time when an exchange answers the first checks, then hangs.

Bitvavo is reached through a loopback proxy in front of the sandbox that forwards every request
until told to hang (or, for the command run as a subprocess, hangs on the market paths
`/v2/<market>/…` that only the behaviour probes ask): a hung request then costs the probes' 3 s
timeout, not the clients' default 30 s, and the exchange checks and the probes share one
budget, so that a probe still waiting when it runs out fails and those after it are skipped.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from cli_runner import tally
from sandbox_fixtures import sandbox_fixture, world_fixture

from pipelines.checks.behaviours import PROBES
from pipelines.checks.doctor import DoctorContext, run_doctor
from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.exit_codes import ExitCode
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox_config import sandbox_document

REPO = Path(__file__).resolve().parents[1]
NOW_MS = int(datetime(2024, 3, 31, 12, tzinfo=UTC).timestamp() * 1000)
MARKET_PATH = re.compile(r"^/v2/[A-Z0-9]+-[A-Z0-9]+/")
SKIPPED_HEADERS = {"connection", "content-length", "content-encoding", "transfer-encoding"}


class HangingProxy:
    """Forwards to `upstream` until `hangs(path)` says otherwise; a hung request is held open
    without an answer until the proxy stops."""

    def __init__(self, upstream: str, hangs: Callable[[str], bool]) -> None:
        self.upstream = upstream
        self.hangs = hangs
        self.hung: list[str] = []
        self.released = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def relay(self) -> None:
                if proxy.hangs(self.path):
                    proxy.hung.append(self.path)
                    proxy.released.wait(60)
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                reply = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    data=self.rfile.read(length) if length else None,
                    timeout=10,
                )
                self.send_response(reply.status_code)
                for name, value in reply.headers.items():
                    if name.lower() not in SKIPPED_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_PUT = do_DELETE = relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


world = world_fixture(seed=47, days=5, now_ms=NOW_MS)
sandbox = sandbox_fixture()


def proxied_config(sandbox: Sandbox, proxy: HangingProxy, directory: Path) -> Path:
    upstream = sandbox.bitvavo.base_url
    document = sandbox_document(sandbox)
    assert document["bitvavo"]["base_url"] == upstream
    document["bitvavo"]["base_url"] = proxy.base_url
    return write_config(directory / "tally.toml", document)


def origin(base_url: str) -> str:
    return base_url.removesuffix("/v2")


def test_probes_share_the_exchange_checks_budget_and_stop_when_it_runs_out(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    hanging = threading.Event()
    proxy = HangingProxy(origin(sandbox.bitvavo.base_url), lambda path: hanging.is_set())
    try:
        settings = load_settings(proxied_config(sandbox, proxy, tmp_path))
        deadline_s = 5.0
        ctx = DoctorContext(settings, ("bitstamp", "bitvavo"), deadline_s=deadline_s)
        ctx.probes()  # the exchange checks: Bitvavo answers them all
        hanging.set()  # … and hangs from now on
        report = run_doctor(ctx)
    finally:
        proxy.stop()

    rows = [row for row, _ in report.rows]
    assert not [row for row in rows if row.failed and not row.check.startswith("probe: ")]
    assert {row.status for row in rows if row.check in ("reachable", "credentials")} == {"ok"}
    assert proxy.hung, "the probes asked Bitvavo after it began to hang"
    probes = [row for row in rows if row.check.startswith("probe: ")]
    assert [(row.check, row.subject) for row in probes] == [
        (f"probe: {probe.variant}", probe.exchange) for probe in PROBES
    ]
    assert not [row for row in probes if row.subject == "bitstamp" and row.failed]
    # the budget ran out in one Bitvavo probe: it fails, every probe after it is skipped
    out = [i for i, row in enumerate(probes) if "no answer within the doctor's 5 s" in row.detail]
    assert len(out) == 1, [row.detail for row in probes]
    waiting = probes[out[0]]
    assert (waiting.subject, waiting.status) == ("bitvavo", "fail")
    assert "base_url under [bitvavo]" in waiting.fix
    later = probes[out[0] + 1 :]
    assert later, "the budget ran out before the last probe"
    assert all(row.status == "skip" and "ran out" in row.detail for row in later)
    assert report.exit_code == ExitCode.EXCHANGE


def test_tally_doctor_times_out_a_hung_probe_request_in_seconds(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    proxy = HangingProxy(
        origin(sandbox.bitvavo.base_url), lambda path: bool(MARKET_PATH.match(path))
    )
    try:
        proxied_config(sandbox, proxy, tmp_path)
        done = tally("doctor", "--json", cwd=tmp_path)
    finally:
        proxy.stop()

    assert done.returncode == 3, done
    assert "Traceback" not in done.stderr
    assert proxy.hung and all(MARKET_PATH.match(path) for path in proxy.hung)
    rows = json.loads(done.stdout)["checks"]
    failed = {row["check"] for row in rows if row["status"] == "fail"}
    # the probes of the public market paths hung, and only they failed
    assert failed == {
        "probe: bitvavo-trades-end",
        "probe: bitvavo-trades-start",
        "probe: bitvavo-error-text",
    }, done.stdout
    # each hung request ended at the probes' own short read timeout, one request each: with
    # the clients' default (30 s) the first would have used up the doctor's whole budget
    # (DEADLINE_S) and the second probe would have been skipped, not timed out
    details = [row["detail"] for row in rows if row["status"] == "fail"]
    assert all("(ReadTimeout) (1 request," in detail for detail in details), details
    assert not [row for row in rows if "ran out" in row["detail"]]
