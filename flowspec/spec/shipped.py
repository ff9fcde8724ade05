"""The specs that ship inside the package, by name: a starting point for anyone who installed
flowspec (``flowspec specs`` lists them, ``flowspec train realnvp_moons`` trains one).

They are package data in ``flowspec/specs/``; in the source repository that folder is a link to
the top-level ``specs/``, so there is one copy of each file. Torch-free.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from flowspec.errors import Diagnostic, SpecError

__all__ = ["SPECS_DIR", "shipped_spec", "shipped_specs"]

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"  # flowspec/specs (package data)


def shipped_specs() -> dict[str, Path]:
    """``name -> path`` of every shipped spec, sorted by name.

    Example:
        >>> "realnvp_moons" in shipped_specs()
        True
    """
    return {p.stem: p for p in sorted(SPECS_DIR.glob("*.yaml"))}


def shipped_spec(name: str) -> Path:
    """The path of the shipped spec ``name`` (with or without ``.yaml``).

    Raises:
        SpecError: ``spec-missing``, with the closest shipped name as a hint.
    """
    specs = shipped_specs()
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem in specs:
        return specs[stem]
    close = difflib.get_close_matches(stem, list(specs), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise SpecError(
        Diagnostic(
            "spec-missing",
            f"no spec file '{name}' and no shipped spec of that name",
            hint=hint + f"shipped specs: {', '.join(specs)} ('flowspec specs' lists them)",
        )
    )
