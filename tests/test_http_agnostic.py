"""`pipelines.http` knows no exchange: it imports nothing of `pipelines.exchanges`, and no code of
it names an exchange (its docstrings and comments may)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from code_scan import code_strings

REPO = Path(__file__).resolve().parents[1]
HTTP = REPO / "pipelines" / "http"
NAMES = ("bitstamp", "bitvavo")


def _modules_after_import(module: str) -> list[str]:
    script = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(done.stdout)


def test_importing_pipelines_http_imports_no_exchange_module() -> None:
    # `_client` is loaded on first use of its names: imported here as well, so that it is checked
    loaded = _modules_after_import("pipelines.http, pipelines.http._client")
    assert "pipelines.http._client" in loaded  # the import really happened
    assert [name for name in loaded if name.startswith("pipelines.exchanges")] == []


def test_the_check_sees_an_exchange_module_when_one_is_imported() -> None:
    """The same check fails where it should: an adapter does pull `pipelines.exchanges` in."""
    loaded = _modules_after_import("pipelines.exchanges.bitstamp_adapter")
    assert "pipelines.exchanges.bitstamp_errors" in loaded


def _named(literal: str) -> bool:
    return any(name in literal.lower() for name in NAMES)


def test_no_code_in_pipelines_http_names_an_exchange() -> None:
    files = sorted(HTTP.glob("*.py"))
    assert len(files) >= 8
    named = {
        f"{path.name}: {literal}"
        for path in files
        for _, literal in code_strings(path.read_text())
        if _named(literal)
    }
    assert named == set()


@pytest.mark.parametrize(
    ("source", "hits"),
    [
        ('"""Bitstamp docs."""\nx = 1  # bitvavo\n', 0),
        ('x = "bitvavo"\n', 1),
        ('def f(e):\n    """Doc bitstamp."""\n    return e == "bitstamp"\n', 1),
        ("f(\n    'BITSTAMP',\n)\n", 1),
        ('path = f"{d}/bitvavo-{k}.json"\n', 1),
    ],
)
def test_the_scan_finds_names_in_code_only(source: str, hits: int) -> None:
    assert len([literal for _, literal in code_strings(source) if _named(literal)]) == hits
