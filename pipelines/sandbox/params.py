"""Request parameters as both emulators check them, and the one-or-all row reply.

Each check takes the exchange's own error reply as a callable, so that the rule is written once
and each exchange keeps its own error body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipelines.sandbox.routing import ApiError, Reply


def parse_int(text: str | None) -> int | None:
    """A plain base-10 integer (optional leading minus), else None."""
    if text is None:
        return None
    body = text[1:] if text.startswith("-") else text
    if not body.isdigit() or not body.isascii():
        return None
    return int(text)


def bounded_int(
    fields: Mapping[str, str],
    name: str,
    default: int | None,
    low: int,
    high: int,
    invalid: Callable[[], Reply],
) -> int | None:
    """`fields[name]` as an integer in `[low, high]`, `default` when absent; anything else
    raises `ApiError(invalid())`."""
    text = fields.get(name)
    if text is None:
        return default
    value = parse_int(text)
    if value is None or not low <= value <= high:
        raise ApiError(invalid())
    return value


def all_or_one(
    rows: list[dict[str, Any]],
    wanted: str | None,
    matches: Callable[[dict[str, Any], str], bool],
    missing: Callable[[], Reply],
) -> Reply:
    """Every row (a list) when nothing is `wanted`, else the first row that `matches` it (an
    object); none raises `ApiError(missing())`."""
    if wanted is None:
        return Reply(200, rows, rows_path=())
    for row in rows:
        if matches(row, wanted):
            return Reply(200, row)
    raise ApiError(missing())
