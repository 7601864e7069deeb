"""The typed configuration: every problem of a `tally.toml` at once, one line each naming the
file, the key and what is allowed; an unknown key or section refused with the nearest name;
`tally config` with its sources and secrets masked; `reporting_currency` as the default currency
of `tally export` and of the notebooks.

The allowed intervals below are copied from EXCHANGES.md (Bitstamp's OHLC steps 60 … 259200 s,
Bitvavo's candle intervals), not from the code.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cli_runner import clean_env as child_env
from cli_runner import tally
from view_tables import create_view_tables

from pipelines.cli import main
from pipelines.config import ConfigError, describe_settings, load_settings
from pipelines.config_schema import SECTIONS, TOP_LEVEL_KEYS
from pipelines.credentials import Credentials
from pipelines.exit_codes import ExitCode, OperatorError
from warehouse.notebook import reporting_currency

REPO = Path(__file__).resolve().parents[1]
BITSTAMP_DOCUMENTED = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "3d"]
BITVAVO_DOCUMENTED = ["1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]


def write(directory: Path, text: str, name: str = "tally.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ=environ or {})
    return raised.value.lines


# --- what is wrong, one line each ---------------------------------------------------------------


def test_config_error_is_an_operator_error_of_exit_code_2() -> None:
    error = ConfigError("a", "b")
    assert isinstance(error, OperatorError)
    assert error.exit_code == ExitCode.USAGE == 2
    assert error.lines == ("a", "b")


def test_a_toml_syntax_error_names_the_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'data_dir = "data"\nreporting_currency = EUR\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: ")
    assert "line 2" in line and "column" in line
    assert main(["config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [f"tally config: {line}"]


def test_a_misspelled_top_level_key_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    path = write(tmp_path, 'reporting_curency = "USD"\n')
    assert problems(path) == (
        f"{path}: unknown key 'reporting_curency' (did you mean 'reporting_currency'?)",
    )


def test_a_misspelled_key_in_a_section_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[bitvavo]\nintervalls = ["1h"]\n[bitstamp]\nbase_ur = "x"\n')
    assert set(problems(path)) == {
        f"{path}: unknown key 'intervalls' in [bitvavo] (did you mean 'intervals'?)",
        f"{path}: unknown key 'base_ur' in [bitstamp] (did you mean 'base_url'?)",
    }


def test_an_unknown_section_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[bitvavoo]\nmarkets = ["BTC-EUR"]\n')
    assert problems(path) == (f"{path}: unknown section [bitvavoo] (did you mean [bitvavo]?)",)
    path = write(tmp_path, "[kraken]\n")
    (line,) = problems(path)
    assert "unknown section [kraken]" in line
    assert "[bitstamp]" in line and "[bitvavo]" in line  # what is known


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        # TOML puts every key after a [section] header into that section
        ('[bitvavo]\nmarkets = ["BTC-EUR"]\nreporting_currency = "USD"\n', "top-level key"),
        ("[bitvavo]\nrequests_per_window = 100\n", "[bitstamp]"),
        ('markets = ["BTC-EUR"]\n', "[bitstamp] and [bitvavo]"),
    ],
)
def test_a_key_in_the_wrong_table_says_where_it_belongs(
    tmp_path: Path, text: str, hint: str
) -> None:
    (line,) = problems(write(tmp_path, text))
    assert "unknown key" in line and hint in line


BAD_VALUES = [
    ('reporting_currency = "CHF"', "reporting_currency", "one of EUR, USD, GBP"),
    ("reporting_currency = 1", "reporting_currency", "one of EUR, USD, GBP"),
    ('now = "2024-03-31T00:00:00"', "now", "zone"),
    ("now = 2024-03-31T00:00:00", "now", "zone"),  # a TOML local date-time
    ("now = 2024-03-31", "now", "zone"),
    ('now = "yesterday"', "now", "zone"),
    ("public_trades_days = 0", "public_trades_days", "1 or more"),
    ("candles_reread_minutes = 1.5", "candles_reread_minutes", "0 or more"),
    ('warehouse_memory_limit = "lots"', "warehouse_memory_limit", "a size, e.g. 1GB"),
    ("warehouse_memory_limit = 1", "warehouse_memory_limit", "a size, e.g. 1GB"),
    ("data_dir = 5", "data_dir", "a directory"),
    ("rate_budget_dir = false", "rate_budget_dir", "a directory"),
    ("bitvavo = 5", "bitvavo", "[bitvavo] section"),
    (
        '[bitvavo]\nintervals = ["1h", "3d"]',
        '[bitvavo] intervals has "3d"',
        "one of " + ", ".join(BITVAVO_DOCUMENTED),
    ),
    (
        '[bitstamp]\nintervals = ["8h"]',
        '[bitstamp] intervals has "8h"',
        "one of " + ", ".join(BITSTAMP_DOCUMENTED),
    ),
    ('[bitstamp]\nintervals = "1h"', "[bitstamp] intervals", "a list"),
    ('[bitstamp]\nmarkets = ["btceur"]', '[bitstamp] markets has "btceur"', "BASE-QUOTE"),
    ('[bitvavo]\nmarkets = ["BTC/EUR"]', "[bitvavo] markets", "BASE-QUOTE"),
    ('[bitvavo]\nbase_url = "api.bitvavo.com/v2"', "[bitvavo] base_url", "http:// or https://"),
    ('[bitstamp]\nbase_url = "ftp://www.bitstamp.net"', "[bitstamp] base_url", "https://"),
    ("[bitstamp]\nrequests_per_window = 0", "[bitstamp] requests_per_window", "1 or more"),
    ('[bitstamp]\nrequests_per_window = "8000"', "[bitstamp] requests_per_window", "whole"),
    ("[bitstamp]\nwindow_seconds = 0", "[bitstamp] window_seconds", "greater than 0"),
    ("[bitstamp]\nwindow_seconds = true", "[bitstamp] window_seconds", "greater than 0"),
    ("[bitstamp]\nmax_requests_per_second = -1", "[bitstamp] max_requests_per_second", "than 0"),
    ("[bitvavo]\naccess_window_ms = 99", "[bitvavo] access_window_ms", "100 to 60000"),
    ("[bitvavo]\naccess_window_ms = 60001", "[bitvavo] access_window_ms", "100 to 60000"),
    ('[bitvavo]\napi_key = 5\napi_secret = "s"', "[bitvavo] api_key", "text"),
]


@pytest.mark.parametrize(("text", "key", "allowed"), BAD_VALUES)
def test_a_bad_value_names_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    path = write(tmp_path, text + "\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}: {key}")
    assert allowed in line


def test_allowed_values_are_taken_and_spelled_one_way(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'reporting_currency = "usd"\n'
        'now = "2024-03-31T02:00:00+02:00"\n'
        "[bitstamp]\n"
        'base_url = "http://127.0.0.1:9/"\n'
        'markets = ["btc-eur", "BTC-USD-PERP", "BTC-EUR"]\n'
        f"intervals = {json.dumps(BITSTAMP_DOCUMENTED)}\n"
        "window_seconds = 300\n"
        "[bitvavo]\n"
        f"intervals = {json.dumps(BITVAVO_DOCUMENTED)}\n"
        "access_window_ms = 100\n",
    )
    settings = load_settings(path, environ={})
    assert settings.reporting_currency == "USD"
    assert settings.now == datetime(2024, 3, 31, tzinfo=UTC)
    bitstamp, bitvavo = settings.exchange("bitstamp"), settings.exchange("bitvavo")
    assert bitstamp.base_url == "http://127.0.0.1:9"
    assert bitstamp.markets == ("BTC-EUR", "BTC-USD-PERP")  # each market once
    assert bitstamp.intervals == tuple(BITSTAMP_DOCUMENTED)
    assert bitstamp.options.window_seconds == 300.0
    assert bitvavo.intervals == tuple(BITVAVO_DOCUMENTED)
    assert bitvavo.options.access_window_ms == 100
    write(tmp_path, "now = 2024-03-31T00:00:00Z\n[bitvavo]\naccess_window_ms = 60000\n")
    settings = load_settings(path, environ={})
    assert settings.exchange("bitvavo").options.access_window_ms == 60_000
    assert settings.now == datetime(2024, 3, 31, tzinfo=UTC)


def test_every_problem_of_a_file_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        'reporting_curency = "USD"\n'
        'reporting_currency = "CHF"\n'
        "[bitstamp]\n"
        'markets = ["BTC-EUR", "btceur"]\n'
        "[bitvavo]\n"
        'intervals = ["1h", "1w"]\n'
        'api_key = "only-the-key"\n',
    )
    lines = problems(path)
    assert len(lines) == 5, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    for named in (
        "'reporting_curency'",
        "reporting_currency = ",
        "[bitstamp] markets",
        "[bitvavo] intervals",
        "BITVAVO_API_SECRET",
    ):
        assert sum(named in line for line in lines) == 1, (named, lines)
    assert main(["config", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"tally config: {line}" for line in lines]


def test_half_a_key_pair_names_the_missing_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[bitvavo]\napi_key = "file-key"\n')
    (line,) = problems(path)
    assert line.startswith(f"{path}: [bitvavo] api_key")
    assert "BITVAVO_API_SECRET" in line
    assert "file-key" not in line

    empty = write(tmp_path, "", name="empty.toml")
    (line,) = problems(empty, {"BITSTAMP_API_SECRET": "env-secret"})
    assert "BITSTAMP_API_KEY" in line and "env-secret" not in line
    # the other half from the other place makes a pair (the environment wins half by half)
    settings = load_settings(path, environ={"BITVAVO_API_SECRET": "env-secret"})
    credentials = settings.exchange("bitvavo").load_credentials()
    assert credentials is not None
    assert (credentials.key.reveal(), credentials.secret.reveal()) == ("file-key", "env-secret")


def test_a_missing_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    (line,) = problems(tmp_path / "absent.toml")
    assert "absent.toml" in line and "does not exist" in line
    (line,) = problems(tmp_path)  # a directory
    assert str(tmp_path) in line


# --- tally config ---------------------------------------------------------------------------


def test_tally_config_shows_every_key_its_source_and_masks_secrets(tmp_path: Path) -> None:
    secrets = ["Kq7ZvM2xPw", "Sg4TbN8rYc", "Vd3HjQ6uLe", "Wf5XkR9oBn", "Oa2GiU7yZs"]
    path = write(
        tmp_path,
        'reporting_currency = "USD"\n'
        "[bitstamp]\n"
        'api_key = "Kq7ZvM2xPw"\n'
        'api_secret = "Sg4TbN8rYc"\n'
        "[bitvavo]\n"
        'markets = ["BTC-EUR"]\n'
        'api_key = "Oa2GiU7yZs"\n',
    )
    env = child_env(BITVAVO_API_KEY="Vd3HjQ6uLe", BITVAVO_API_SECRET="Wf5XkR9oBn")
    table = tally("config", "--config", str(path), cwd=tmp_path, env=env)
    as_json = tally("config", "--config", str(path), "--json", cwd=tmp_path, env=env)
    assert table.returncode == 0 == as_json.returncode, table.stderr + as_json.stderr
    printed = table.stdout + table.stderr + as_json.stdout + as_json.stderr
    for secret in secrets:
        for start in range(len(secret) - 4):  # no five characters of any secret
            assert secret[start : start + 5] not in printed, secret

    document = json.loads(as_json.stdout)
    assert document["file"] == str(path.resolve())
    rows = {row["key"]: (row["value"], row["source"]) for row in document["settings"]}
    expected_keys = [
        *TOP_LEVEL_KEYS,
        *(
            f"[{section}] {key}"
            for section, model in SECTIONS.items()
            for key in model.model_fields
        ),
    ]
    assert [row["key"] for row in document["settings"]] == expected_keys
    from_file = f"file {path}"
    assert rows["reporting_currency"] == ("USD", from_file)
    assert rows["candles_reread_minutes"] == (180, "default")
    assert rows["data_dir"] == (str((tmp_path / "data").resolve()), "default")
    assert rows["[bitvavo] markets"] == (["BTC-EUR"], from_file)
    assert rows["[bitstamp] markets"][1] == "default"
    vavo_id = Credentials.from_strings("Vd3HjQ6uLe", "x").key_id
    stamp_id = Credentials.from_strings("Kq7ZvM2xPw", "x").key_id
    assert rows["[bitvavo] api_key"] == (f"set, id {vavo_id}", "environment BITVAVO_API_KEY")
    assert rows["[bitvavo] api_secret"] == ("set", "environment BITVAVO_API_SECRET")
    assert rows["[bitstamp] api_key"] == (f"set, id {stamp_id}", from_file)
    assert rows["[bitstamp] api_secret"] == ("set", from_file)

    lines = table.stdout.splitlines()
    assert lines[0] == f"configuration: {path.resolve()}"
    [vavo_key] = [line for line in lines if line.startswith("[bitvavo] api_key ")]
    assert vavo_id in vavo_key and vavo_key.endswith("environment BITVAVO_API_KEY")
    [currency] = [line for line in lines if line.startswith("reporting_currency ")]
    assert "USD" in currency and currency.endswith(from_file)
    assert len(lines) == 2 + len(expected_keys)  # the file, the header, one line per key


def test_describe_settings_without_a_file_and_with_a_data_dir_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={}, data_dir="elsewhere")
    rows = {row.key: (row.value, row.source) for row in describe_settings(settings)}
    assert settings.config_file is None
    assert rows["data_dir"] == (str(tmp_path / "elsewhere"), "argument")
    assert rows["rate_budget_dir"] == (str(tmp_path / "elsewhere" / ".ratelimit"), "default")
    assert rows["[bitvavo] api_key"] == ("not set (BITVAVO_API_KEY)", "default")
    assert rows["now"] == (None, "default")


# --- reporting_currency is the default currency ---------------------------------------------


def small_warehouse(data_dir: Path) -> None:
    """One deposit of 1 BTC, priced 50000 EUR and 54000 USD the hour before: the tables the
    exports read, with the columns of the views."""
    data_dir.mkdir(parents=True)
    connection = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    connection.execute("set TimeZone = 'UTC'")
    create_view_tables(connection)
    connection.execute(
        "insert into ledger values ('bitvavo', 'main', 'BTC', 1, 'deposit', "
        "'2024-03-01 10:00:00+00', 'd1', 'test', 'deposit', 'deposit', null, null, 1)"
    )
    for currency, price in (("EUR", 50000), ("USD", 54000)):
        connection.execute(
            "insert into prices values ('BTC', ?, '2024-03-01 09:00:00+00', ?, 'test', "
            "'2024-03-01 09:00:00+00', null)",
            [currency, price],
        )
    connection.close()


def exported_ledger(out: Path) -> tuple[str, list[dict[str, str]]]:
    [sidecar] = out.glob("*.json")
    [table] = out.glob("*.csv")
    with table.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return json.loads(sidecar.read_text(encoding="utf-8"))["currency"], rows


@pytest.mark.parametrize(
    ("line", "option", "currency", "value"),
    [
        ("", [], "EUR", Decimal(50000)),
        ('reporting_currency = "USD"', [], "USD", Decimal(54000)),
        ('reporting_currency = "USD"', ["--currency", "EUR"], "EUR", Decimal(50000)),
    ],
)
def test_reporting_currency_is_the_default_of_tally_export(
    tmp_path: Path, line: str, option: list[str], currency: str, value: Decimal
) -> None:
    small_warehouse(tmp_path / "data")
    config = write(tmp_path, f"{line}\n")
    out = tmp_path / "out"
    assert main(["export", "ledger", "--config", str(config), "--out", str(out), *option]) == 0
    got, rows = exported_ledger(out)
    assert got == currency
    [row] = rows
    assert (row["currency"], Decimal(row["value"])) == (currency, value)


def test_the_notebooks_default_currency_is_the_projects_reporting_currency(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    assert reporting_currency(project / "notebooks", environ={}) == "EUR"
    write(project, 'reporting_currency = "gbp"\n')
    assert reporting_currency(project / "notebooks", environ={}) == "GBP"
    write(project, 'reporting_currency = "CHF"\n')
    with pytest.raises(ConfigError, match="reporting_currency"):
        reporting_currency(project / "notebooks", environ={})


@pytest.mark.parametrize("name", ["tax_year.ipynb", "reconciliation.ipynb"])
def test_the_notebooks_take_a_currency_parameter_that_defaults_to_the_setting(name: str) -> None:
    notebook = json.loads((REPO / "notebooks" / name).read_text(encoding="utf-8"))
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert "\nCURRENCY = None" in code[0]  # the parameters cell: a person or papermill sets it
    assert sum("CURRENCY or reporting_currency()" in source for source in code) == 1
    assert not any("'EUR'" in source for source in code)


# --- before any work: tally sync with a bad file --------------------------------------------


def test_tally_sync_with_a_misspelled_key_exits_2_in_one_line_before_prefect(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, 'data_dir = "data"\nreporting_curency = "USD"\n', name="bad.toml")
    began = time.monotonic()
    done = tally("sync", "--config", str(config), cwd=tmp_path, env=child_env())
    seconds = time.monotonic() - began
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"tally sync: {config}: unknown key 'reporting_curency' "
        "(did you mean 'reporting_currency'?)"
    ], f"{seconds:.1f} s"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # no data directory, so no .prefect in it
    assert not list(tmp_path.rglob(".prefect"))


# --- the README documents every key ---------------------------------------------------------


def test_the_readme_table_has_a_row_for_every_key() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    keys: list[Any] = [
        *TOP_LEVEL_KEYS,
        *(
            f"[{section}] {key}"
            for section, model in SECTIONS.items()
            for key in model.model_fields
        ),
    ]
    missing = [key for key in keys if f"| `{key}` |" not in readme]
    assert not missing
    assert "tally config" in readme
