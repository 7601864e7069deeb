"""One table of exit codes (`pipelines.exit_codes.EXIT_CODES`): `tally --help`, the module's
docstring and the README say the same; `tally sql` with a query that does not run exits 2 with
one line, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_runner import REPO, tally

import pipelines.exit_codes
from pipelines.exit_codes import EXIT_CODES, EXIT_CODES_HELP, ExitCode, readme_rows


def readme_table() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| code | meaning | for example |")
    assert lines[start + 1] == "|---|---|---|"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append(line)
    return rows


def code_of(row: str) -> int:
    """The exit code a README table row starts with."""
    found = re.match(r"\| (\d+) \|", row)
    assert found is not None, row
    return int(found[1])


def test_the_readme_table_is_the_one_table() -> None:
    rows = readme_table()
    assert rows == readme_rows()
    assert [code_of(row) for row in rows] == [int(c) for c in ExitCode]


def test_help_and_docstring_name_every_code_with_its_meaning() -> None:
    done = tally("--help", cwd=REPO)
    assert done.returncode == 0
    assert EXIT_CODES_HELP in done.stdout
    doc = pipelines.exit_codes.__doc__ or ""
    for row in EXIT_CODES:
        assert f"  {int(row.code)}  {row.meaning}" in done.stdout
        assert f"    {int(row.code)}  {row.meaning}: " in doc
        for example in row.examples:
            assert example in doc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a tally.toml and the warehouse of an empty lake."""
    here = tmp_path_factory.mktemp("sql")
    (here / "tally.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    done = tally("warehouse", cwd=here)
    assert done.returncode == 0, done.stderr
    return here


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("selec 1", 'tally sql: Parser Error: syntax error at or near "selec"'),
        ("select * from nope", "tally sql: Catalog Error: Table with name nope does not exist!"),
        ("select nope from fills", 'tally sql: Binder Error: Referenced column "nope" not found'),
        ("select cast('x' as int)", "tally sql: Conversion Error: Could not convert string 'x'"),
    ],
)
def test_a_query_that_does_not_run_exits_2_in_one_line(built: Path, query: str, said: str) -> None:
    done = tally("sql", query, cwd=built)
    assert done.returncode == ExitCode.USAGE == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(said)
    assert "LINE 1" not in line and "Traceback" not in done.stderr


def test_a_query_that_runs_still_answers(built: Path) -> None:
    done = tally("sql", "select count(*) as n from fills", "--format", "csv", cwd=built)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["n", "0"]


def test_a_damaged_lake_file_met_by_a_query_is_a_data_problem(tmp_path: Path) -> None:
    """DuckDB reports a file that is not Parquet as invalid input, like a query's own bad value:
    it names the file, and `tally sql` exits 1 (data), not 2."""
    (tmp_path / "tally.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    assert tally("warehouse", cwd=tmp_path).returncode == 0
    damaged = tmp_path / "data" / "lake" / "damaged.parquet"  # after: nothing moves it
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b"not parquet at all")
    done = tally("sql", f"select * from read_parquet('{damaged}')", cwd=tmp_path)
    assert done.returncode == ExitCode.DATA == 1, done.stderr
    (line,) = done.stderr.splitlines()
    assert str(damaged) in line and "Traceback" not in done.stderr
    assert "Invalid Input Error" in line  # the kind of error a query's own bad value is too
