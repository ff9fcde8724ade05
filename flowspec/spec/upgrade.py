"""Format upgrades, run on the raw dict before validation.

``UPGRADES[n]`` turns a version-``n`` dict into a version ``n + 1`` dict. Version 1 is the first
format, so the table is empty; a future format change adds one function here and keeps every old
spec and weights file readable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowspec.errors import Diagnostic
from flowspec.spec.models import FORMAT_VERSION

__all__ = ["UPGRADES", "upgrade_spec"]

UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upgrade_spec(
    data: dict[str, Any],
    target: int = FORMAT_VERSION,
    upgrades: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = UPGRADES,
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Bring ``data`` to format version ``target`` by applying ``upgrades[n]`` for each version
    ``n`` below it; return it and any version diagnostics.

    Example:
        >>> bump = {1: lambda d: {**d, "flowspec": 2, "name": d["name"].upper()}}
        >>> upgrade_spec({"flowspec": 1, "name": "moons"}, target=2, upgrades=bump)
        ({'flowspec': 2, 'name': 'MOONS'}, [])
    """
    if "flowspec" not in data:
        return data, [
            Diagnostic(
                "missing-version",
                "the spec does not say its format version",
                hint=f"add 'flowspec: {target}' as the first line",
            )
        ]
    version = data["flowspec"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= target:
        return data, [
            Diagnostic(
                "bad-version",
                f"unknown spec format version {version!r}",
                path="flowspec",
                hint=f"this flowspec reads format versions 1 to {target}",
            )
        ]
    while data["flowspec"] < target:
        data = upgrades[data["flowspec"]](dict(data))
    return data, []
