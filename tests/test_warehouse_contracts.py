"""The models' declared contracts (`warehouse/sql/models.toml`, `warehouse.contracts`): what a
broken one reports, and that the build refuses a model file nobody declared (the demo warehouse
keeping every contract is checked in test_notebooks, on the demo's data)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from warehouse_build import build

import warehouse
from pipelines.config import Settings
from warehouse.build import WarehouseBuildError
from warehouse.contracts import Contract, ContractError, broken, contracts, view_contracts
from warehouse.sources import DATASETS, STAGING, fetch_time, view_files

SQL = Path(warehouse.__file__).parent / "sql"


def test_broken_names_duplicate_keys_nulls_and_float_columns() -> None:
    with duckdb.connect() as connection:
        connection.execute("create table t (a integer, b varchar, c double)")
        connection.execute("insert into t values (1, 'x', 1.5), (1, null, 2), (2, 'y', null)")
        problems = broken(connection, Contract("t", "table", ("a",), ("a", "b")))
    assert problems == [
        "t: 1 keys (a) name several rows",
        "t: 1 rows with b null",
        "t: column c is DOUBLE",
    ]


def test_a_model_that_keeps_its_contract_breaks_nothing() -> None:
    with duckdb.connect() as connection:
        connection.execute("create table t (a integer, b decimal(38, 18))")
        connection.execute("insert into t values (1, 1.5), (2, null), (null, 2)")
        # nulls in a key compare equal: one null key is still one key
        assert broken(connection, Contract("t", "table", ("a",), ())) == []


def test_every_model_file_is_declared_and_every_dataset_staged_on_its_key() -> None:
    declared = contracts()
    assert set(view_contracts()) == {view.name for view in view_files()}
    staged = {n: d for n, d in DATASETS.items() if fetch_time(d) is not None}
    for name, dataset in staged.items():
        assert declared[f"{STAGING}.{name}"].key == tuple(dataset.key), name
    for contract in declared.values():
        assert set(contract.key) | set(contract.not_null), contract.model


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        (lambda text: text.replace("[fees]", "[fees_gone]"), "undeclared ['fees']"),
        (lambda text: text + '\n[nothing]\nmaterialized = "view"\n', "no such model ['nothing']"),
    ],
)
def test_the_build_refuses_a_model_not_declared_or_a_declaration_of_none(
    tmp_path: Path, change: Callable[[str], str], refused: str
) -> None:
    sql = tmp_path / "sql"
    shutil.copytree(SQL, sql)
    declared = sql / "models.toml"
    declared.write_text(change(declared.read_text("utf-8")), "utf-8")
    with pytest.raises(WarehouseBuildError, match=refused.replace("[", r"\[")):
        build(Settings(data_dir=tmp_path / "data"), sql_dir=sql)


def test_a_declaration_must_say_how_the_model_is_built(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text('[ledger]\nkey = ["exchange"]\n', "utf-8")
    with pytest.raises(ContractError, match=r"\[ledger\] takes materialized \(table or view\)"):
        view_contracts(tmp_path)


def test_every_staging_name_a_model_reads_is_one_the_build_creates() -> None:
    """The lineage of an incremental build (`warehouse.lineage`) finds a model's inputs by
    name: a staging table read under another spelling would go unseen."""
    created = {f"{STAGING}.{name}" for name in DATASETS}
    created |= {f"{STAGING}.{name}_landed" for name in DATASETS}
    created |= {f"{STAGING}.exchange_rules"}
    for view in view_files():
        text = re.sub(r"--[^\n]*", "", view.text)
        assert set(re.findall(r"\bstaging\.\w+", text)) <= created, view.name
        assert re.search(r"\bstaging\s*\.\s*\"|\"staging\"", text) is None, view.name
