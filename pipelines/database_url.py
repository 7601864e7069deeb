"""`DatabaseUrl`: a PostgreSQL connection URL whose password never prints.

`postgresql://user[:password]@host[:port]/database[?param=value...]`, as libpq takes it. The
password is better left out of the URL: libpq (and so the driver) reads `PGPASSWORD` and
`~/.pgpass` (`PGPASSFILE`) itself. One given in the URL (as `user:password@` or a `password=`
parameter) is kept as a `Secret`: `repr`, `str` and f-strings show the URL with `****` in its
place, pickling refuses it, and only `reveal()` (the code that connects) returns the whole URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

from pipelines.credentials import Secret

SCHEMES = ("postgresql", "postgres")
MASK = "****"
# `%` not followed by two hex digits, or `%00` (libpq refuses both, quoting the text around them)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})|%00")


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

    def scrub(self, text: str) -> str:
        """`text` (a driver's message, say) with the whole URL shown masked and every form of
        its password (as written and percent-decoded, in the user part or a `password=`
        parameter) replaced by `MASK`: libpq quotes the password itself in some messages."""
        text = text.replace(self.reveal(), self._shown)
        for secret in sorted(_password_forms(self.reveal()), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

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
    if parts.netloc.count("@") > 1 or "@" in url.partition("://")[2].removeprefix(parts.netloc):
        return "it has an '@' not percent-encoded (as %40) in its password, host or path"
    if parts.fragment or url.endswith("#"):
        return "it has a '#' not percent-encoded (as %23)"
    if _BAD_ESCAPE.search(url):
        return "it has a '%' not followed by two hex digits (a '%' is written %25), or %00"
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
    if "@" in url.partition("://")[2].removeprefix(parts.netloc):
        # a password with an unencoded '/', '?' or '#' ends the netloc early: hide it all
        raise ValueError("an '@' outside the netloc")
    netloc, query, found = parts.netloc, parts.query, False
    userinfo, at, host = netloc.rpartition("@")  # the last '@': a password may hold one
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
        found = True
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(n, MASK if n == "password" else v) for n, v in pairs], safe="*")
        found = True
    if not found:
        return url, False
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)), True


def _password_forms(url: str) -> set[str]:
    """Every nonempty password in `url`, as written and percent-decoded."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    written = [userinfo.partition(":")[2]] if at and ":" in userinfo else []
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if unquote(name) == "password":
            written.append(value)
    forms = set(written)
    forms.update(unquote(w) for w in written)
    forms.update(unquote_plus(w) for w in written)
    return {form for form in forms if form}
