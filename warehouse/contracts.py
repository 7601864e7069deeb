"""What each model promises: how it is built, its key and its not-null columns.

    for contract in contracts():
        problems = broken(connection, contract)

The views' promises are declared in one place, `sql/models.toml` (one table per view file); the
staging models' come from the lake's dataset definitions (`staging.<dataset>` is unique on the
dataset's key). `broken` checks a built catalog against one contract: duplicate keys, nulls
where none may be, and money held as a float (no column of any model is DOUBLE or FLOAT).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import duckdb

from warehouse.sources import DATASETS, STAGING, fetch_time

CONTRACTS_FILE = "models.toml"
MATERIALIZATIONS = ("table", "view")
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")


class ContractError(ValueError):
    """`models.toml` does not declare a model the way the builder needs."""


@dataclass(frozen=True)
class Contract:
    model: str  # as queried: `ledger`, `staging.fills`
    materialized: Literal["table", "view"]
    key: tuple[str, ...]
    not_null: tuple[str, ...]


def view_contracts(directory: Path | None = None) -> dict[str, Contract]:
    """The declared contracts of the view files, by model name (`directory` defaults to the
    packaged `sql/`)."""
    root = directory if directory is not None else Path(str(resources.files("warehouse") / "sql"))
    path = root / CONTRACTS_FILE
    if not path.is_file():
        raise ContractError(f"{path}: missing (every model declares its contract there)")
    declared = tomllib.loads(path.read_text("utf-8"))
    return {name: _contract(path, name, entry) for name, entry in declared.items()}


def staging_contracts() -> dict[str, Contract]:
    """`staging.<dataset>`: one row per the dataset's key, the key never null. (Declared a
    table; `warehouse.staging` keeps it as a view of the landed rows while no key was landed
    twice.)"""
    return {
        f"{STAGING}.{name}": Contract(
            f"{STAGING}.{name}", "table", tuple(dataset.key), tuple(dataset.key)
        )
        for name, dataset in DATASETS.items()
        if fetch_time(dataset) is not None
    }


def contracts(directory: Path | None = None) -> dict[str, Contract]:
    return {**staging_contracts(), **view_contracts(directory)}


def broken(connection: duckdb.DuckDBPyConnection, contract: Contract) -> list[str]:
    """What the built model breaks of its contract, one line each (empty: nothing)."""
    problems = []
    if contract.key:
        keys = ", ".join(contract.key)
        duplicated = connection.execute(
            f"select count(*) from (select {keys} from {contract.model} "
            "group by all having count(*) > 1)"
        ).fetchone()
        if duplicated and duplicated[0]:
            problems.append(f"{contract.model}: {duplicated[0]} keys ({keys}) name several rows")
    if contract.not_null:
        counts = ", ".join(f"count(*) filter (where {c} is null)" for c in contract.not_null)
        nulls = connection.execute(f"select {counts} from {contract.model}").fetchone() or ()
        problems += [
            f"{contract.model}: {count} rows with {column} null"
            for column, count in zip(contract.not_null, nulls, strict=True)
            if count
        ]
    schema, _, table = contract.model.rpartition(".")
    floats = connection.execute(
        "select column_name, data_type from duckdb_columns() "
        "where schema_name = ? and table_name = ? and data_type in ?",
        [schema or "main", table, list(FLOAT_TYPES)],
    ).fetchall()
    problems += [f"{contract.model}: column {name} is {kind}" for name, kind in floats]
    return problems


def _contract(path: Path, name: str, entry: Mapping[str, object]) -> Contract:
    unknown = set(entry) - {"materialized", "key", "not_null"}
    materialized = entry.get("materialized")
    key = entry.get("key", [])
    not_null = entry.get("not_null", [])
    if unknown or materialized not in MATERIALIZATIONS:
        raise ContractError(
            f"{path}: [{name}] takes materialized ({' or '.join(MATERIALIZATIONS)}), key and "
            f"not_null{f', not {sorted(unknown)}' if unknown else ''}"
        )
    kind: Literal["table", "view"] = "table" if materialized == "table" else "view"
    return Contract(name, kind, _names(path, name, key), _names(path, name, not_null))


def _names(path: Path, name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ContractError(f"{path}: [{name}] key and not_null are lists of column names")
    return tuple(value)
