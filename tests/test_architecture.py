"""The arrows between the layers point one way (DESIGN.md "Layout").

Each layer's modules are all imported in a fresh interpreter and `sys.modules` is read back, so
an import that reaches a forbidden package through another module counts as much as a direct
one. The import statements are also read from the source, which catches an import made inside a
function (not run by importing the module).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Imports the module named in argv and, for a package, every module inside it, then prints what
# got imported.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
name = sys.argv[1]
package = importlib.import_module(name)
for module in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


@dataclass(frozen=True)
class Layer:
    package: str
    forbidden: tuple[str, ...]


LAYERS = (
    Layer("warehouse", ("pipelines.exchanges", "pipelines.http", "pipelines.flows")),
    Layer(
        "pipelines.sandbox",
        ("pipelines.exchanges", "pipelines.http", "pipelines.flows", "pipelines.config"),
    ),
    Layer("pipelines.exchanges", ("pipelines.flows", "pipelines.checks", "pipelines.cli")),
    Layer("pipelines.http", ("pipelines.exchanges",)),
)


@cache
def imported_by(package: str) -> frozenset[str]:
    """Every module in `sys.modules` after importing all of `package` (a package or a module)
    in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, package],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return frozenset(json.loads(result.stdout))


def within(modules: frozenset[str] | list[str], package: str) -> list[str]:
    """The modules that are `package` or inside it."""
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def imports_in_source(root: Path) -> dict[str, list[str]]:
    """Each module file under the package directory `root` (named from `root`'s parent) → every
    module its import statements name, those inside functions included."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found[str(path.relative_to(root.parent))] = names
    return found


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.package)
def test_a_layer_imports_nothing_it_must_not_even_indirectly(layer: Layer) -> None:
    modules = imported_by(layer.package)
    assert within(modules, layer.package), "the layer's own modules were not imported"
    for forbidden in layer.forbidden:
        assert within(modules, forbidden) == [], f"{layer.package} pulls in {forbidden}"


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.package)
def test_no_import_statement_of_a_layer_names_what_it_must_not_import(layer: Layer) -> None:
    for path, names in imports_in_source(REPO.joinpath(*layer.package.split("."))).items():
        for forbidden in layer.forbidden:
            assert within(names, forbidden) == [], f"{path} imports {forbidden}"


HEAVY = ("requests", "tenacity", "polars", "psycopg")
"""What the HTTP client, the lake and the budgets in PostgreSQL need; listing exchanges or
reading settings needs none."""

LIGHT = ("pipelines.config", "pipelines.exchanges.registry", "pipelines.cli")
"""Imported by every command, `tally --help` included: they load none of `HEAVY`."""


@pytest.mark.parametrize("module", LIGHT)
def test_reading_settings_and_listing_exchanges_loads_no_client_and_no_lake(module: str) -> None:
    modules = imported_by(module)
    assert module in modules, "the module was not imported"
    for heavy in HEAVY:
        assert within(modules, heavy) == [], f"{module} pulls in {heavy}"


def test_the_weight_check_sees_a_client_import() -> None:
    """The same check fails where it should: an exchange's client loads the HTTP client."""
    modules = imported_by("pipelines.exchanges.bitstamp")
    assert within(modules, "requests") and within(modules, "tenacity")


EXCHANGES_DIR = REPO / "pipelines" / "exchanges"
ADAPTERS = sorted(f"pipelines.exchanges.{path.stem}" for path in EXCHANGES_DIR.glob("*_adapter.py"))


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_module_imported_first_in_a_fresh_interpreter_loads(adapter: str) -> None:
    assert adapter in imported_by(adapter)


def test_no_module_of_the_exchanges_imports_an_adapter_back() -> None:
    """An adapter imports its client, errors and checks (at module level or in its factories):
    none of them may import an adapter, which would make a cycle. Only the registry lists them."""
    assert len(ADAPTERS) >= 2
    for path, names in imports_in_source(EXCHANGES_DIR).items():
        if path in (
            "exchanges/registry.py",
            *(f"exchanges/{a.split('.')[-1]}.py" for a in ADAPTERS),
        ):
            continue
        for adapter in ADAPTERS:
            assert within(names, adapter) == [], f"{path} imports {adapter}"


def test_the_warehouse_reads_the_dataset_definitions_not_the_record_classes() -> None:
    modules = imported_by("warehouse")
    assert "pipelines.lake_datasets" in modules
    assert within(modules, "pipelines.datasets") == []
    assert within(modules, "pipelines.config") == []


def test_the_check_sees_an_indirect_import() -> None:
    """`pipelines.status` reaches the exchange records only through `pipelines.datasets` (which
    binds each dataset to its record class): the check that keeps them out of the layers above
    finds them here."""
    modules = imported_by("pipelines.status")
    assert "pipelines.datasets" in modules
    assert "pipelines.exchanges.records" in within(modules, "pipelines.exchanges")


def test_the_source_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "layer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lazy.py").write_text("def f():\n    from pipelines.exchanges import records\n")
    found = imports_in_source(package)
    assert within(found["layer/lazy.py"], "pipelines.exchanges") == [
        "pipelines.exchanges",
        "pipelines.exchanges.records",
    ]
    assert found["layer/__init__.py"] == []
