"""`Transport`: the wire under `HttpClient`, as requests' `HTTPAdapter.send` would send.

`HTTPAdapter.send` finds its connection pool again on every request (the proxy for the URL, the
pool key from the URL and the TLS settings), works out the request target, and wraps the urllib3
response in a `requests.Response` (a cookie jar, the cookies parsed out of the headers, the
encoding). An `HttpClient` sends to one origin through the proxies it resolved at its first
request, and needs only the status, the headers and the body: `Transport` asks the adapter for
the pool, and works out the kind of target, once (again when the session's adapter, `verify` or
`cert` change, or the pool was closed), and calls the pool as the adapter calls it, with its
arguments and the same requests exceptions for what urllib3 raises (`_send_failure`,
`_read_failure`: copied from `HTTPAdapter.send` and `Response.iter_content`). A session whose
adapter is not a plain `HTTPAdapter` (one that overrides some of it) is sent through its
adapter's `send`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, cast
from urllib.parse import urlparse

import requests
from requests import exceptions as rex
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy, urldefragauth
from urllib3 import exceptions as u3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import Timeout


@dataclass(frozen=True)
class Received:
    """A response read whole: its status, its headers (case-insensitive, as requests gives
    them) and its body (decoded as `Response.content` would be)."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes


@dataclass(frozen=True)
class _Route:
    """Where the requests of one origin go, as `HTTPAdapter.send` works it out per request."""

    key: tuple[HTTPAdapter, Any, Any]  # the adapter, verify and cert it was made for
    pool: HTTPConnectionPool
    absolute: bool  # the target is the whole URL (through an HTTP proxy), else path and query


class Transport:
    """Sends `session`'s requests to one origin, through the proxies resolved at the first."""

    def __init__(self, session: requests.Session) -> None:
        self._session = session
        self._proxies: dict[str, str] | None = None
        self._route: _Route | None = None
        self._timeout: tuple[tuple[float, float], Timeout] | None = None

    def send(self, prepared: requests.PreparedRequest, timeout: tuple[float, float]) -> Received:
        """The response to `prepared`, read whole, or the requests exception `Session.send`
        and `Response.content` would raise."""
        session = self._session
        url = prepared.url
        assert url is not None
        adapter = session.get_adapter(url)
        verify, cert = session.verify, session.cert
        proxies = self._proxies_for(prepared)
        if type(adapter) is not HTTPAdapter:
            response = adapter.send(
                prepared,
                stream=True,
                timeout=timeout,
                verify=verify,  # type: ignore[arg-type]  # (as Session.send passes it)
                cert=cert,
                proxies=proxies,
            )
            body = b"".join(response.iter_content(None))
            return Received(response.status_code, response.headers, body)
        route = self._route_for(adapter, prepared, verify, cert, proxies)
        pool = route.pool
        adapter.cert_verify(pool, url, verify, cert)  # (per request, as the adapter does)
        target = urldefragauth(url) if route.absolute else prepared.path_url
        chunked = not (prepared.body is None or "Content-Length" in prepared.headers)
        try:
            raw = pool.urlopen(
                method=prepared.method,  # type: ignore[arg-type]
                url=target,
                body=prepared.body,
                headers=prepared.headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=adapter.max_retries,
                timeout=self._timeout_for(timeout),
                chunked=chunked,
            )
        except (u3.ProtocolError, OSError, u3.MaxRetryError, u3.ClosedPoolError, u3.HTTPError) as e:
            _send_failure(e, prepared)
        try:
            body = b"".join(raw.stream(None, decode_content=True))
        except (u3.ProtocolError, u3.DecodeError, u3.ReadTimeoutError, u3.SSLError) as e:
            _read_failure(e)
        return Received(raw.status, CaseInsensitiveDict(raw.headers), body)

    def _proxies_for(self, prepared: requests.PreparedRequest) -> dict[str, str]:
        # requests reads the proxies from the environment again on every send (about a
        # millisecond); they depend on the scheme and host only, the same for every request of
        # this transport: read once, at its first request
        if self._proxies is None:
            session = self._session
            self._proxies = requests.utils.resolve_proxies(
                prepared, dict(session.proxies), session.trust_env
            )
        return self._proxies

    def _route_for(
        self,
        adapter: HTTPAdapter,
        prepared: requests.PreparedRequest,
        verify: Any,
        cert: Any,
        proxies: dict[str, str],
    ) -> _Route:
        route = self._route
        key = (adapter, verify, cert)
        # (a pool the adapter closed, or its pool manager evicted, has no queue left)
        if route is not None and route.key == key and route.pool.pool is not None:
            return route
        try:
            pool = cast(
                HTTPConnectionPool,
                adapter.get_connection_with_tls_context(prepared, verify, proxies, cert),
            )
        except u3.LocationValueError as e:
            raise rex.InvalidURL(e, request=prepared)  # noqa: B904  # (as the adapter raises it)
        url = prepared.url
        assert url is not None
        # as `HTTPAdapter.request_url` tells (the proxy depends on the scheme and host only)
        proxy = select_proxy(url, proxies)
        absolute = bool(proxy) and urlparse(url).scheme != "https"
        if proxy and urlparse(proxy).scheme.lower().startswith("socks"):
            absolute = False
        route = self._route = _Route(key, pool, absolute)
        return route

    def _timeout_for(self, timeout: tuple[float, float]) -> Timeout:
        known = self._timeout
        if known is not None and known[0] == timeout:
            return known[1]  # (the pool clones it for each request)
        try:  # (as `HTTPAdapter.send` resolves it)
            connect, read = timeout
            resolved = Timeout(connect=connect, read=read)
        except ValueError:
            raise ValueError(  # noqa: B904  # (as the adapter raises it)
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                f"or a single float to set both timeouts to the same value."
            )
        self._timeout = (timeout, resolved)
        return resolved


def _send_failure(error: Exception, prepared: requests.PreparedRequest) -> NoReturn:
    """Raise what `HTTPAdapter.send` raises for what `urlopen` raised."""
    if isinstance(error, u3.ProtocolError | OSError):
        raise rex.ConnectionError(error, request=prepared)
    if isinstance(error, u3.MaxRetryError):
        reason = error.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(
            reason, u3.NewConnectionError
        ):
            raise rex.ConnectTimeout(error, request=prepared)
        if isinstance(reason, u3.ResponseError):
            raise rex.RetryError(error, request=prepared)
        if isinstance(reason, u3.ProxyError):
            raise rex.ProxyError(error, request=prepared)
        if isinstance(reason, u3.SSLError):
            raise rex.SSLError(error, request=prepared)
        raise rex.ConnectionError(error, request=prepared)
    if isinstance(error, u3.ClosedPoolError):
        raise rex.ConnectionError(error, request=prepared)
    if isinstance(error, u3.ProxyError):
        raise rex.ProxyError(error)
    if isinstance(error, u3.SSLError):
        raise rex.SSLError(error, request=prepared)
    if isinstance(error, u3.ReadTimeoutError):
        raise rex.ReadTimeout(error, request=prepared)
    if isinstance(error, u3.InvalidHeader):
        raise rex.InvalidHeader(error, request=prepared)
    raise error


def _read_failure(error: Exception) -> NoReturn:
    """Raise what `Response.iter_content` raises for what reading the body raised."""
    if isinstance(error, u3.ProtocolError):
        raise rex.ChunkedEncodingError(error)
    if isinstance(error, u3.DecodeError):
        raise rex.ContentDecodingError(error)
    if isinstance(error, u3.ReadTimeoutError):
        raise rex.ConnectionError(error)
    raise rex.SSLError(error)
