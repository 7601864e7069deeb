"""The views name no exchange: what differs between exchanges reaches them as data.

Each exchange's rules are a row of `staging.exchange_rules` (`warehouse.rules`), written by the
build from the adapters; a `.sql` file under `warehouse/sql/` that compared `exchange` with a
name would bypass them. Comments are prose and may name an exchange.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from pipelines.config import Settings
from pipelines.exchanges.registry import names, warehouse_rules
from warehouse.build import build
from warehouse.connect import connect
from warehouse.rules import TABLE
from warehouse.sources import macro_files, view_files

SQL_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "sql"
# a comment to the end of its line, or a string literal ('' is a quote inside one)
_TOKEN = re.compile(r"--[^\n]*|'((?:[^']|'')*)'")


def sql_literals(text: str) -> Iterator[tuple[int, str]]:
    """(line, value) of each string literal of `text`, outside comments."""
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None:
            yield text.count("\n", 0, match.start()) + 1, match.group(1).replace("''", "'")


def named_exchanges(text: str) -> list[tuple[int, str]]:
    """(line, literal) of each string literal of `text` that is an exchange's name."""
    known = {name.lower() for name in names()}
    return [(line, value) for line, value in sql_literals(text) if value.lower() in known]


def test_no_view_file_names_an_exchange() -> None:
    files = [*macro_files(SQL_DIR), *view_files(SQL_DIR)]
    assert len(files) == len(list(SQL_DIR.glob("*.sql"))) > 1
    found = {
        f"{f.order:03d}_{f.name}.sql": hits for f in files if (hits := named_exchanges(f.text))
    }
    assert found == {}


@pytest.mark.parametrize("name", names())
def test_the_check_sees_a_comparison_with_a_name(name: str) -> None:
    text = (
        "-- a comment may say " + name + " does this\n"
        "select * from fills\n"
        f"where exchange = '{name.upper()}' and source <> 'it''s {name}'\n"
    )
    assert named_exchanges(text) == [(3, name.upper())]


def test_a_literal_that_only_contains_a_name_is_not_a_comparison() -> None:
    assert named_exchanges(f"select '{names()[0]}_ledger' as dataset -- '{names()[0]}'") == []


def test_the_build_writes_every_exchanges_rules_as_declared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    build(settings, rules=warehouse_rules())
    with connect(settings.data_dir) as connection:
        rows = connection.execute(f"select * from {TABLE}").fetchall()
    declared = [
        (name, *(list(v) if isinstance(v, tuple) else v for v in astuple(rules)))
        for name, rules in warehouse_rules().items()
    ]
    assert rows == declared
    assert [row[0] for row in rows] == list(names())


def test_the_build_refuses_without_rules(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(ValueError, match="no exchange rules"):
        build(settings, rules={})
    assert not settings.warehouse_path.exists()
