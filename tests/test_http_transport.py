"""`Transport` sends as requests' `HTTPAdapter.send` (and reads as `Response.iter_content`)
would: the same response, the same requests exception for every failure of the wire, through
the proxies and over pools it keeps. Each case is sent both ways to a raw socket server on
loopback that answers every connection alike."""

from __future__ import annotations

import contextlib
import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from test_http import closed_port, loopback_listener, make_client, read_head

from pipelines.http import RetryPolicy, TransportError
from pipelines.http._transport import Transport

Answer = Callable[[socket.socket], None]


class ScriptServer:
    """Answers every connection with `answer`, after reading the request's head; keeps the
    heads it read."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.sock, self.url = loopback_listener()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn)
            if head is None:
                return
            self.heads.append(head)
            with contextlib.suppress(OSError):  # (the client may have gone)
                self.answer(conn)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], ScriptServer]]:
    servers: list[ScriptServer] = []

    def start(answer: Answer) -> ScriptServer:
        server = ScriptServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def sends(data: bytes, then: float = 0.0) -> Answer:
    def answer(conn: socket.socket) -> None:
        conn.sendall(data)
        time.sleep(then)  # (before the connection closes)

    return answer


def reply(head: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close: RST


def stalls(data: bytes) -> Answer:
    def answer(conn: socket.socket) -> None:
        conn.sendall(data)
        time.sleep(1.0)  # longer than the read timeout

    return answer


BODY = b'{"a": [1, 2, 3]}'
CASES: dict[str, Answer] = {
    "ok": sends(reply(b"Content-Type: application/json\r\nX-Twice: a\r\nx-twice: b\r\n", BODY)),
    "status": sends(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}"
    ),
    "gzip": sends(reply(b"Content-Encoding: gzip\r\n", gzip.compress(BODY))),
    "bad gzip": sends(reply(b"Content-Encoding: gzip\r\n", b"not gzip at all")),
    "chunked": sends(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n3\r\n678\r\n0\r\n\r\n"
    ),
    "bad chunk": sends(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n12\r\n"),
    "truncated": sends(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY[:5]),
    "no status line": sends(b"nonsense\r\n\r\n"),
    "reset": reset,
    "closed at once": lambda conn: None,
    "slow head": stalls(b""),
    "slow body": stalls(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY[:5]),
}


def prepared(url: str) -> requests.PreparedRequest:
    request = requests.PreparedRequest()
    request.method = "GET"
    request.url = url
    request.headers = requests.structures.CaseInsensitiveDict(
        {"Host": url.split("/")[2], "Accept-Encoding": "gzip, deflate"}
    )
    request.body = None
    return request


TIMEOUT = (1.0, 0.3)


def through_adapter(session: requests.Session, request: requests.PreparedRequest) -> Any:
    """What `HTTPAdapter.send` and reading the body whole give: the outcome compared."""
    proxies = requests.utils.resolve_proxies(request, dict(session.proxies), session.trust_env)
    try:
        response = session.get_adapter(request.url or "").send(
            request, stream=True, timeout=TIMEOUT, proxies=proxies
        )
        body = b"".join(response.iter_content(None))
    except Exception as error:
        return failure(error, request)
    return response.status_code, sorted(response.headers.items()), body


def through_transport(session: requests.Session, request: requests.PreparedRequest) -> Any:
    try:
        received = Transport(session).send(request, TIMEOUT)
    except Exception as error:
        return failure(error, request)
    return received.status, sorted(received.headers.items()), received.body


def failure(error: Exception, request: requests.PreparedRequest) -> tuple[Any, ...]:
    """The exception's class, what it wraps, and whether it holds the request."""
    wrapped = error.args[0] if error.args else None
    reason = getattr(wrapped, "reason", None)
    holds = getattr(error, "request", None) is request
    return type(error), type(wrapped), type(reason), type(error.__context__), holds


@pytest.mark.parametrize("case", CASES)
def test_the_transport_gives_what_the_adapter_gives(
    serve: Callable[[Answer], ScriptServer], case: str
) -> None:
    server = serve(CASES[case])
    url = server.url + "/v2/time?a=1"
    with requests.Session() as one, requests.Session() as other:
        expected = through_adapter(one, prepared(url))
        got = through_transport(other, prepared(url))
    assert got == expected
    assert len(server.heads) == 2
    assert server.heads[0] == server.heads[1]  # the very same request on the wire


def test_a_refused_connection_and_a_refused_proxy_fail_as_with_the_adapter() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v2/time"
    with requests.Session() as one, requests.Session() as other:
        assert through_transport(other, prepared(url)) == through_adapter(one, prepared(url))
        for session in (one, other):
            session.proxies = {"http": f"http://127.0.0.1:{closed_port()}"}
        proxied = "http://tally.invalid/v2/time"
        expected = through_adapter(one, prepared(proxied))
        assert expected[0] is requests.exceptions.ProxyError
        assert through_transport(other, prepared(proxied)) == expected


def test_a_kept_pool_still_goes_through_the_environments_proxy(
    serve: Callable[[Answer], ScriptServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool and the proxies are kept from the first request: every later request still goes
    through the proxy, with the whole URL as its target, over the proxy's kept connection."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(reply(b"Content-Type: application/json\r\n", b'{"ok": 1}'))
        data = b""
        while True:  # the connection is kept: the next requests come on it
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                head, data = data.split(b"\r\n\r\n", 1)
                proxy.heads.append(head)
                conn.sendall(reply(b"Content-Type: application/json\r\n", b'{"ok": 2}'))

    proxy = serve(answer)
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    client, _, _ = make_client("bitstamp", "http://tally.invalid/", retry=RetryPolicy(1))
    replies = [client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd") for _ in range(3)]
    assert [reply.data for reply in replies] == [{"ok": 1}, {"ok": 2}, {"ok": 2}]
    lines = [head.split(b"\r\n")[0] for head in proxy.heads]
    assert lines == [b"GET http://tally.invalid/api/v2/eur_usd/ HTTP/1.1"] * 3


def test_a_pool_closed_with_the_session_is_made_again(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v2/eur_usd/").respond_with_json({"buy": "1.1"})
    client, _, _ = make_client("bitstamp", httpserver.url_for("/"))
    assert client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd").data == {"buy": "1.1"}
    client.close()  # (closes the session's pools, as requests would)
    assert client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd").data == {"buy": "1.1"}
    assert len(httpserver.log) == 2


def test_a_session_whose_adapter_is_its_own_sends_through_its_adapter(
    httpserver: HTTPServer,
) -> None:
    """An adapter that overrides part of `HTTPAdapter` is sent through, whole."""

    class Stamping(requests.adapters.HTTPAdapter):
        def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
            request.headers["X-Stamp"] = "adapter"

    httpserver.expect_request("/api/v2/eur_usd/", headers={"X-Stamp": "adapter"}).respond_with_json(
        {"buy": "1.1"}
    )
    session = requests.Session()
    session.mount("http://", Stamping())
    client, _, _ = make_client("bitstamp", httpserver.url_for("/"), session=session)
    for _ in range(2):
        assert client.request("GET", "/api/v2/eur_usd/", endpoint="eur_usd").data == {"buy": "1.1"}
    session.close()


def test_a_transport_failure_maps_as_before_and_keeps_no_request(
    serve: Callable[[Answer], ScriptServer],
) -> None:
    """The requests exception (it holds the request's headers) is neither the error's cause
    nor its context."""
    server = serve(reset)
    client, _, _ = make_client("bitvavo", server.url + "/v2", retry=RetryPolicy(1))
    with pytest.raises(TransportError, match=r"connection failed \(ConnectionError\)") as caught:
        client.request("GET", "/time", endpoint="time", signer=lambda _: {"X-Auth": "s3cr3t!!"})
    assert caught.value.__cause__ is None and caught.value.__context__ is None
