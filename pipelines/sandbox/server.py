"""Serve both emulators on loopback: `start_sandbox(...) -> Sandbox`.

Each exchange gets its own `ThreadingHTTPServer` (HTTP/1.1 keep-alive, exact Content-Length,
daemon handler threads) on a free port of 127.0.0.1, with the real paths: Bitstamp under
`/api/v2/...`, Bitvavo under `/v2/...`; both also answer `GET /_sandbox/stats`.

    with start_sandbox(seed=1, days=90, now_ms=...) as sandbox:
        requests.get(f"{sandbox.bitvavo.base_url}/time")
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from pipelines.sandbox.app import AppSetup, ExchangeApp, Outcome
from pipelines.sandbox.auth import derive_keys
from pipelines.sandbox.bitstamp_api import BitstampApp
from pipelines.sandbox.bitvavo_api import BitvavoApp
from pipelines.sandbox.faults import DEFAULT_SLOW_SECONDS, FaultConfig, parse_kinds
from pipelines.sandbox.permissions import missing_permissions as missing_permissions_of
from pipelines.sandbox.ratelimit import RateLimits
from pipelines.sandbox.routing import Request
from pipelines.sandbox.variants import Variants
from pipelines.sandbox.wire import dumps, spaced

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
IDLE_CONNECTION_TIMEOUT_S = 120.0
JOIN_TIMEOUT_S = 5.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tally-sandbox"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: ExchangeServer

    def setup(self) -> None:
        super().setup()
        # one small response = one segment: no Nagle / delayed-ACK stall on keep-alive
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def date_time_string(self, timestamp: float | None = None) -> str:
        # `Date` tells the server's own time (the one its signature checks use), as on the
        # real exchanges, whose clock a client may measure from it.
        moment = self.server.app.clock() if timestamp is None else timestamp
        return super().date_time_string(moment)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.app.exchange, format % args)

    def _serve(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(411, "Length Required")  # like the real front ends
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            target=self.path,
            host=self.headers.get("Host", ""),
            headers=self.headers,
            body=body.decode("utf-8", "replace"),
            client_ip=self.client_address[0],
        )
        try:
            outcome = self.server.app.handle(request)
        except Exception:
            log.exception("%s sandbox: request failed", self.server.app.exchange)
            outcome = Outcome(self.server.app.internal_error())
        self._send(outcome)

    def _send(self, outcome: Outcome) -> None:
        reply = outcome.reply
        if reply is None:
            self._reset()
            return
        if outcome.delay > 0:
            self.server.stopping.wait(outcome.delay)
        payload = reply.payload if isinstance(reply.payload, bytes) else dumps(reply.payload)
        app = self.server.app
        if "json" in reply.content_type and app.variants.json_spacing(app.exchange) == "spaced":
            payload = spaced(payload)
        if outcome.truncate == "short_body":
            payload = payload[: len(payload) // 2]
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if outcome.truncate == "early_close":
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Drop the connection with a TCP RST and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class ExchangeServer(ThreadingHTTPServer):
    """One exchange's HTTP server; tracks live connections so that `stop` can end them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: ExchangeApp) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.stopping = threading.Event()
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._live_lock:
            self._live[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._live.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection (killed, timed out) is routine, not a server bug.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.app.exchange}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        with self._live_lock:
            live = list(self._live.items())
        for sock, _ in live:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in live:
            thread.join(JOIN_TIMEOUT_S)
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class ExchangeEndpoint:
    """How a client reaches one emulated exchange."""

    name: str
    base_url: str  # Bitstamp "http://127.0.0.1:PORT", Bitvavo "http://127.0.0.1:PORT/v2"
    key: str
    secret: str
    root_url: str  # "http://127.0.0.1:PORT"

    @property
    def stats_url(self) -> str:
        return f"{self.root_url}/_sandbox/stats"

    def info(self) -> dict[str, str]:
        return {"base_url": self.base_url, "key": self.key, "secret": self.secret}


class Sandbox:
    """Both emulators, running. A context manager; `stop()` shuts both down and joins threads."""

    def __init__(
        self,
        world: Any,
        servers: dict[str, ExchangeServer],
        endpoints: dict[str, ExchangeEndpoint],
        *,
        rate_limits: RateLimits,
        faults: FaultConfig,
        variants: Variants,
    ) -> None:
        self.world = world
        self.variants = variants
        self.rate_limits = rate_limits
        self.faults = faults
        self._servers = servers
        self.bitstamp = endpoints["bitstamp"]
        self.bitvavo = endpoints["bitvavo"]
        self._stopped = False

    def app(self, exchange: str) -> ExchangeApp:
        return self._servers[exchange].app

    def info(self) -> dict[str, dict[str, str]]:
        """`{"bitstamp": {"base_url", "key", "secret"}, "bitvavo": {...}}`."""
        return {"bitstamp": self.bitstamp.info(), "bitvavo": self.bitvavo.info()}

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for server in self._servers.values():
            server.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    seed: int = 1,
    days: int = 90,
    now_ms: int | None = None,
    faults: float = 0.0,
    rate_scale: float = 1.0,
    quirks: bool = True,
    *,
    fault_kinds: str | tuple[str, ...] | list[str] | None = None,
    slow_seconds: float = DEFAULT_SLOW_SECONDS,
    rate_limits: RateLimits | None = None,
    bitstamp_port: int = 0,
    bitvavo_port: int = 0,
    world: Any | None = None,
    variants: Variants | None = None,
    bitstamp_clock_offset_s: float = 0.0,
    bitvavo_clock_offset_s: float = 0.0,
    missing_permissions: Mapping[str, Collection[str]] | None = None,
    clock: Callable[[], float] = time.time,
) -> Sandbox:
    """Build the world of `seed` and serve both exchanges on free loopback ports.

    `now_ms` freezes the world's clock (None: wall clock); `faults` is the fault rate in [0, 1]
    over `fault_kinds` (default every kind but `malformed_row`; see `faults.py`), `slow_seconds`
    the delay of a `slow` fault; `rate_scale` scales every rate-limit budget and window (see
    `ratelimit.py`) unless `rate_limits` sets each one; `quirks` switches the exchanges'
    documented quirks on. `world` reuses an already built `World` (then seed/days/now_ms/quirks
    only label the servers' own choices);
    `variants` picks the reality of each open API behaviour (see `variants.py`; default today's).
    `bitstamp_clock_offset_s` sets the Bitstamp server's clock that many seconds ahead of the
    wall clock (negative: behind): its timestamp check, rate windows and `Date` header;
    `bitvavo_clock_offset_s` likewise for Bitvavo (its access-window check, `GET /v2/time`,
    rate windows and `Date` header). `missing_permissions` takes read permissions away from
    the sandbox's keys, e.g. `{"bitstamp": {"crypto-transactions"}, "bitvavo": {"view"}}`
    (see `permissions.py`). `clock` is the wall clock the servers' clocks follow (a test's
    fake one).
    """
    variants = variants or Variants()
    # validate the options before building the world
    lacking = missing_permissions_of(missing_permissions)
    limits = rate_limits if rate_limits is not None else RateLimits.scaled(rate_scale)
    fault_config = FaultConfig(
        rate=faults, kinds=parse_kinds(fault_kinds), slow_seconds=slow_seconds, seed=seed
    )
    if world is None:
        from pipelines.sandbox.world import World

        world = World(seed=seed, days=days, now_ms=now_ms, quirks=quirks)
    keys = {name: derive_keys(seed, name) for name in ("bitstamp", "bitvavo")}
    apps: dict[str, tuple[ExchangeApp, int]] = {}
    for name, app_type, clock_offset_s, port in (
        ("bitstamp", BitstampApp, bitstamp_clock_offset_s, bitstamp_port),
        ("bitvavo", BitvavoApp, bitvavo_clock_offset_s, bitvavo_port),
    ):
        setup = AppSetup(
            world,
            keys[name],
            limits,
            fault_config,
            quirks=quirks,
            variants=variants,
            seed=seed,
            clock=_offset_clock(clock, clock_offset_s),
            missing_permissions=lacking[name],
        )
        apps[name] = (app_type(setup), port)
    servers: dict[str, ExchangeServer] = {}
    try:
        for name, (app, port) in apps.items():
            servers[name] = ExchangeServer((LOOPBACK, port), app)
    except OSError:
        for server in servers.values():
            server.server_close()
        raise
    for server in servers.values():
        server.start()
    endpoints = {}
    for name, pair in keys.items():
        root = f"http://{LOOPBACK}:{servers[name].port}"
        base = root if name == "bitstamp" else f"{root}/v2"
        endpoints[name] = ExchangeEndpoint(name, base, pair.key, pair.secret, root)
    return Sandbox(
        world, servers, endpoints, rate_limits=limits, faults=fault_config, variants=variants
    )


def _offset_clock(clock: Callable[[], float], offset_s: float) -> Callable[[], float]:
    if not offset_s:
        return clock
    return lambda: clock() + offset_s
