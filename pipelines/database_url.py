"""`DatabaseUrl`: a PostgreSQL connection URL whose password never prints.

`postgresql://user[:password]@host[:port]/database[?param=value...]`, as libpq takes it. The
password is better left out of the URL: libpq (and so the driver) reads `PGPASSWORD` and
`~/.pgpass` (`PGPASSFILE`) itself. One given in the URL (as `user:password@` or a `password=`
parameter) is kept as a `Secret`: `repr`, `str` and f-strings show the URL with `****` in its
place, pickling refuses it, and only `reveal()` (the code that connects) returns the whole URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pipelines.credentials import Secret

SCHEMES = ("postgresql", "postgres")
MASK = "****"
_USERINFO = re.compile(r"^(?P<user>[^:@]*)(?::(?P<password>[^@]*))?@")


class DatabaseUrl:
    """A `postgresql://` URL; the password, if any, only through `reveal()`."""

    __slots__ = ("_has_password", "_shown", "_url")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError("DatabaseUrl takes a str")
        problem = url_problem(url)
        if problem:
            raise ValueError(f"not a PostgreSQL URL: {problem}")
        self._url = Secret(url)
        self._shown, self._has_password = _masked(url)

    def reveal(self) -> str:
        """The whole URL, password included: for the driver, never for a message."""
        return self._url.reveal()

    @property
    def has_password(self) -> bool:
        """Whether the URL itself carries a password (else libpq looks for one)."""
        return self._has_password

    def __str__(self) -> str:
        return self._shown

    def __repr__(self) -> str:
        return f"DatabaseUrl({self._shown!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(("DatabaseUrl", self._url))

    def __reduce__(self) -> tuple[object, ...]:
        if self.has_password:
            raise TypeError("a DatabaseUrl with a password cannot be pickled or serialised")
        return (DatabaseUrl, (self.reveal(),))


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a PostgreSQL URL (never quoting it), or None."""
    if any(c.isspace() for c in url):
        return "it has spaces or line breaks"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "it cannot be parsed (its port?)"
    if parts.scheme not in SCHEMES:
        return f"its scheme is not {' or '.join(s + '://' for s in SCHEMES)}"
    if not parts.path.strip("/"):
        return "it names no database (…/DATABASE)"
    return None


def masked_url(url: str) -> str | None:
    """`url` with its password masked, or None when it cannot be parsed (then show none of it)."""
    try:
        return _masked(url)[0]
    except ValueError:
        return None


def _masked(url: str) -> tuple[str, bool]:
    """`url` with its password (in the user part or as a parameter) replaced by `MASK`, and
    whether it had one."""
    parts = urlsplit(url)
    netloc, query, found = parts.netloc, parts.query, False
    user = _USERINFO.match(netloc)
    if user and user.group("password") is not None:
        netloc = f"{user.group('user')}:{MASK}@{netloc[user.end() :]}"
        found = True
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(n, MASK if n == "password" else v) for n, v in pairs], safe="*")
        found = True
    if not found:
        return url, False
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), True
