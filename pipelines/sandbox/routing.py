"""Requests, replies and routes: the plain data the exchange emulators work on.

The HTTP server turns a socket request into a `Request`; an emulator turns that into a `Reply`
(or raises `ApiError` carrying one); the server writes it back. Nothing here knows HTTP framing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pipelines.sandbox.auth import HeaderLookup

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # request target exactly as received: path + "?" + query
    host: str  # the Host header as received
    headers: HeaderLookup  # case-insensitive lookups (email.message.Message)
    body: str
    client_ip: str

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """ "" or "?a=1&b=2" exactly as sent."""
        _, mark, rest = self.target.partition("?")
        return f"?{rest}" if mark else ""

    @property
    def params(self) -> dict[str, str]:
        """Query parameters (last one wins)."""
        return dict(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        """x-www-form-urlencoded body fields (last one wins)."""
        return dict(parse_qsl(self.body, keep_blank_values=True))


@dataclass(slots=True)
class Reply:
    """A response before encoding.

    `payload` is a JSON value (encoded by `wire.dumps`) or raw bytes sent as they are.
    `rows_path` locates the list of rows inside `payload` (() = the payload itself is the list)
    for the malformed-row fault; None when the reply has no rows.
    """

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    rows_path: tuple[str, ...] | None = None
    content_type: str = JSON_CONTENT_TYPE


class ApiError(Exception):
    """Raised by a handler to answer with an exchange error body."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


Handler = Callable[[Request, Mapping[str, str]], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: `name` is the stats label, `pattern` matches the whole path."""

    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    weight: int = 1
    private: bool = False
    faultable: bool = True


def route(
    name: str,
    method: str,
    pattern: str,
    handler: Handler,
    *,
    weight: int = 1,
    private: bool = False,
    faultable: bool = True,
) -> Route:
    return Route(name, method, re.compile(pattern), handler, weight, private, faultable)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route | None  # None: no route for this path (404) or for this method (405)
    path_params: Mapping[str, str]
    path_known: bool


def match(routes: tuple[Route, ...], method: str, path: str) -> Match:
    path_known = False
    for candidate in routes:
        hit = candidate.pattern.fullmatch(path)
        if hit:
            path_known = True
            if candidate.method == method:
                return Match(candidate, hit.groupdict(), True)
    return Match(None, {}, path_known)


def html_page(status: int, title: str) -> Reply:
    """The bare HTML error page a load balancer answers with."""
    page = f"<html><head><title>{status} {title}</title></head><body><h1>{title}</h1></body></html>"
    return Reply(status, page.encode(), content_type="text/html")
