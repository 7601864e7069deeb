"""`tally.toml` written from data: a document (the TOML as plain values: a dict of top-level
keys and one table per exchange) rendered with `tomli_w`, never assembled as text.

A caller builds a document (`config_document`, or a ready one such as the sandbox's), changes
the values it needs (`document["data_dir"] = "."`, `document["bitvavo"]["markets"] = [...]`)
and writes it (`write_config`: atomic). `load_settings` reads it back: the keys and what they
allow are declared in `pipelines.config_schema`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from pipelines.atomic import write_text
from pipelines.config_schema import SECTIONS, TOP_LEVEL_KEYS

ConfigDocument = dict[str, Any]


def config_document(**values: Any) -> ConfigDocument:
    """A document of `values`: top-level keys (`data_dir="data"`) and exchange sections as
    mappings (`bitvavo={"markets": ["BTC-EUR"]}`); a value of None is left out (the key keeps
    its default). A name the schema does not declare is a caller's typo: `TypeError`."""
    document: ConfigDocument = {}
    for name, value in values.items():
        if name in SECTIONS:
            document[name] = _section(name, value)
        elif name not in TOP_LEVEL_KEYS:
            raise TypeError(f"tally.toml has no key {name!r}")
        elif value is not None:
            document[name] = value
    return document


def _section(name: str, table: Mapping[str, Any]) -> dict[str, Any]:
    known = SECTIONS[name].model_fields
    unknown = [key for key in table if key not in known]
    if unknown:
        raise TypeError(f"[{name}] of tally.toml has no key {unknown[0]!r}")
    return {key: value for key, value in table.items() if value is not None}


def config_text(document: Mapping[str, Any], *, comment: str | None = None) -> str:
    """The document as TOML text, after `comment` (one `# ` line per line of it) if given."""
    head = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    return head + tomli_w.dumps(document)


def write_config(path: Path, document: Mapping[str, Any], *, comment: str | None = None) -> Path:
    """Write the document to `path` atomically (a reader sees the old file or the new one)."""
    return write_text(path, config_text(document, comment=comment))


def read_config(path: Path) -> ConfigDocument:
    """The document a TOML file holds (to change a value and write it back)."""
    with path.open("rb") as handle:
        return tomllib.load(handle)
