"""`pipelines.demo` does not import `pipelines.cli`: the command imports the demo, one way only
(the sandbox's config, which the demo used to take from `cli`, lives in `sandbox_config`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "pipelines" / "demo.py"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports from, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from pipelines import cli` imports a module too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_demo_names_no_import_of_the_cli() -> None:
    imported = imported_modules(DEMO)
    assert "pipelines.sandbox_config" in imported, "the check reads the demo's imports"
    assert not [name for name in imported if name.split(".")[:2] == ["pipelines", "cli"]]


def is_ours(name: str) -> bool:
    """Whether `name` is a module or package of this repository (not a function or class)."""
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_nothing_the_demo_imports_brings_in_the_cli() -> None:
    """Nor through the modules it imports, however deep: `sys.modules` in a fresh process
    that imports the demo and every module it imports (its function-level imports too)."""
    modules = ["pipelines.demo", *sorted(filter(is_ours, imported_modules(DEMO)))]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = ast.literal_eval(done.stdout)
    assert {"pipelines.sandbox_config", "pipelines.flows.sync", "warehouse.build"} <= set(loaded)
    assert "pipelines.cli" not in loaded
