"""A PostgreSQL URL's password never shows, whatever it holds: an `@`, a `%`, a `:`; not in
`DatabaseUrl`'s repr, not on `tally config`'s output, not in the errors that quote libpq (which
quotes, in its own messages, a password it cannot parse)."""

from __future__ import annotations

import traceback
from pathlib import Path
from urllib.parse import unquote

import psycopg
import pytest
from postgres_server import free_port

from pipelines import stream_lock
from pipelines.cli import main
from pipelines.database_url import DatabaseUrl, masked_url, url_problem
from pipelines.http._pgstate import BudgetDatabaseError, PgState

# (URL, every form of its password that must never show)
GOOD = {
    "@ encoded": ("postgresql://u:p%40hunter2@h/db", ["p%40hunter2", "p@hunter2", "hunter2"]),
    "% encoded": ("postgresql://u:se%25zzcret@h/db", ["se%25zzcret", "se%zzcret"]),
    "colon": ("postgresql://u:hun:ter2@h/db", ["hun:ter2"]),
    "parameter": ("postgresql://u@h/db?password=hunter%25zz2", ["hunter%25zz2", "hunter%zz2"]),
}
BAD = {
    "@ unencoded": ("postgresql://u:p@hunter2@h/db", ["p@hunter2", "hunter2"]),
    "bad escape": ("postgresql://u:se%zzcret@h/db", ["se%zzcret", "zzcret"]),
    "bad escape in parameter": ("postgresql://u@h/db?password=hunter%zz2", ["hunter%zz2"]),
    "%00": ("postgresql://u:p%00x@h/db", ["p%00x"]),
    "slash before the @": ("postgresql://u:pa/ss@h/db", ["pa/ss", "ss@"]),
    "hash before the @": ("postgresql://u:pa#ss@h/db", ["pa#ss", "ss@"]),
}


def assert_hidden(text: str, forms: list[str]) -> None:
    for form in forms:
        assert form not in text, f"{form!r} shown in {text!r}"


@pytest.mark.parametrize(("url", "forms"), GOOD.values(), ids=GOOD.keys())
def test_a_password_with_at_percent_or_colon_is_masked(url: str, forms: list[str]) -> None:
    parsed = DatabaseUrl(url)
    assert parsed.reveal() == url and parsed.has_password
    for shown in (str(parsed), repr(parsed), f"{parsed}", masked_url(url) or ""):
        assert "****" in shown and "@h/db" in shown
        assert_hidden(shown, forms)


@pytest.mark.parametrize(("url", "forms"), BAD.values(), ids=BAD.keys())
def test_a_url_libpq_would_misread_is_refused_without_showing_it(
    url: str, forms: list[str]
) -> None:
    problem = url_problem(url)
    assert problem is not None
    assert_hidden(problem, forms)
    with pytest.raises(ValueError) as refused:
        DatabaseUrl(url)
    assert_hidden(str(refused.value), forms)
    assert_hidden(masked_url(url) or "", forms)


@pytest.mark.parametrize(("url", "forms"), [*GOOD.values(), *BAD.values()])
def test_tally_config_never_shows_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, forms: list[str]
) -> None:
    path = tmp_path / "tally.toml"
    path.write_text(f'rate_budget_url = "{url}"\n', encoding="utf-8")
    main(["config", "--config", str(path)])
    out, err = capsys.readouterr()
    assert "rate_budget_url" in out + err
    assert_hidden(out + err, forms)


# libpq's own parse errors quote the password; `_error` must hide it in any of its forms.
LIBPQ = {
    "user part": ("postgresql://u:se%zzcret@127.0.0.1:1/db", "postgresql://u:se%25zzcret@h/db"),
    "parameter": (
        "postgresql://u@127.0.0.1:1/db?password=hunter%zz2",
        "postgresql://u@h/db?password=hunter%25zz2",
    ),
}


@pytest.mark.parametrize(("raw", "url"), LIBPQ.values(), ids=LIBPQ.keys())
def test_libpq_parse_errors_never_show_the_password(raw: str, url: str) -> None:
    with pytest.raises(psycopg.Error) as libpq:
        psycopg.connect(raw, connect_timeout=1)
    database_url = DatabaseUrl(url)
    password = unquote(url.split("password=")[-1] if "password=" in url else "se%25zzcret")
    assert password in str(libpq.value)  # libpq does quote it
    errors = [
        stream_lock._error(database_url, "could not lock", libpq.value),
        PgState(database_url, "b", reconnect_seconds=0)._error("could not connect to", libpq.value),
    ]
    for error in errors:
        assert "invalid percent-encoded token" in str(error)
        for form in (password, unquote(password), password.replace("%", "%25")):
            assert form not in str(error)
            assert form not in "".join(traceback.format_exception(error))


def test_a_failed_connection_with_an_at_in_the_password_never_shows_it() -> None:
    url = DatabaseUrl(f"postgresql://tally:p%40ss:w@127.0.0.1:{free_port()}/budgets")
    state = PgState(url, "b", reconnect_seconds=0)
    assert_hidden(repr(state), ["p%40ss:w", "p@ss:w", "ss:w"])
    with pytest.raises(BudgetDatabaseError) as failed, state.edit():
        pass
    assert "could not connect" in str(failed.value)
    assert_hidden(str(failed.value), ["p%40ss:w", "p@ss:w", "ss:w"])
