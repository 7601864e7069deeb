"""Small pieces shared by the classifiers, the limiters and the client."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _number(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None
