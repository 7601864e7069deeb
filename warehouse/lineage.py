"""Which models read what, from the model files' SQL: a build computes again only the models
whose inputs changed.

    stale = stale_models(view_files(), changed={"candles"})

A model reads a staging table (`staging.<dataset>`, `staging.<dataset>_landed`), lists a
dataset's files (`glob('{lake}/<dataset>/…')`) or reads an earlier model, by name. Names are found
as words of its SQL outside comments: a word that only looks like a name (a column called like a
model) makes a model stale more often than needed, never less.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from warehouse.sources import GLOB, STAGING, ViewFile

_COMMENT = re.compile(r"--[^\n]*")
_NAME = re.compile(rf"\b(?:{STAGING}\.)?[a-z_][a-z0-9_]*\b")


def stale_models(files: Sequence[ViewFile], changed: Collection[str]) -> list[str]:
    """The models (in order of creation) to compute again once the datasets `changed` were
    loaded again: those that read one of their staging tables or list their files, and those
    that read such a model."""
    stale_names = {f"{STAGING}.{name}" for name in changed}
    stale_names |= {f"{STAGING}.{name}_landed" for name in changed}
    stale: list[str] = []
    for view in files:
        text = _COMMENT.sub("", view.text)
        listed = {match["dataset"] for match in GLOB.finditer(text)}
        if set(_NAME.findall(text)) & stale_names or listed & set(changed):
            stale.append(view.name)
            stale_names.add(view.name)
    return stale
