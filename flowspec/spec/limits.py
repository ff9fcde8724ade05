"""Resource limits: every bound flowspec puts on what an input can make it do, in one table.

A spec file, a weights file's embedded spec, a data file header or a command-line number could
otherwise ask for more memory or time than the machine has (a 500-byte YAML alias bomb, a
``repeat: 100000000``, ``hidden: [1000000000]``, ``sample -n 1000000000``). Each such quantity is
checked against a limit *before* anything of that size is built, and exceeding it is a located
error naming the limit and how to raise it. Defaults are generous for real models (a
3x256x256 Glow with L=6, K=32 is far inside every one) and keep every input within a few GB.

Raise a limit explicitly when you mean it:

* command line: ``flowspec validate big.yaml --limit ops=1000000`` (any subcommand, repeatable);
* Python: ``with flowspec.spec.limits.raised(ops=1_000_000): flowspec.compile(spec)``, or
  ``flowspec.spec.limits.set_limits(ops=1_000_000)`` for the rest of the process.

Example:
    >>> limit("ops")
    10000
    >>> with raised(ops=10**6):
    ...     limit("ops")
    1000000
    >>> limit("ops")
    10000
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "LIMITS",
    "Limit",
    "current",
    "limit",
    "markdown_table",
    "parse_assignment",
    "raise_hint",
    "raised",
    "set_limits",
]


@dataclass(frozen=True)
class Limit:
    """One bound: its name (as given to ``--limit``), default and what it counts."""

    name: str
    default: int
    counts: str


LIMITS: dict[str, Limit] = {
    lim.name: lim
    for lim in (
        Limit("spec_bytes", 1_000_000, "bytes of a spec file, or of the spec in a weights file"),
        Limit("nesting", 64, "depth of nested lists and mappings in a spec"),
        Limit("aliases", 10_000, "values added by expanding YAML aliases (*name) in a spec"),
        Limit("nodes", 1_000_000, "values in a spec (keys, scalars, lists, mappings)"),
        Limit("ops", 10_000, "op instances of a flow, after expanding repeat blocks"),
        Limit("elements", 16_777_216, "elements of one example (the product of input.shape)"),
        Limit(
            "width",
            16_384,
            "hidden units or channels of a conditioner; mixture components; spline bins; "
            "context classes and embedding width",
        ),
        Limit("blocks", 256, "hidden layers of an MLP conditioner or blocks of a ResNet"),
        Limit("parameters", 500_000_000, "parameters of a compiled flow (4 bytes each)"),
        Limit("diagnostics", 20, "diagnostics printed per file by the command (others counted)"),
        Limit("samples", 1_000_000, "samples drawn by 'flowspec sample -n'"),
        Limit("threads", 256, "torch CPU threads ('--threads', 'train.threads')"),
        Limit("workers", 64, "DataLoader worker processes ('--workers', 'train.workers')"),
    )
}

_current: dict[str, int] = {name: lim.default for name, lim in LIMITS.items()}


def limit(name: str) -> int:
    """The value of limit ``name`` now."""
    return _current[name]


def current() -> dict[str, int]:
    """Every limit's value now."""
    return dict(_current)


def _checked(values: dict[str, int]) -> dict[str, int]:
    for name, value in values.items():
        if name not in LIMITS:
            raise ValueError(f"unknown limit {name!r}; limits: {', '.join(LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"limit {name} must be a positive integer, got {value!r}")
    return values


def set_limits(**values: int) -> None:
    """Set limits for the rest of the process, e.g. ``set_limits(ops=1_000_000)``.

    Raises:
        ValueError: an unknown limit name or a value that is not a positive integer.
    """
    _current.update(_checked(values))


@contextlib.contextmanager
def raised(**values: int) -> Iterator[None]:
    """Within the block, use the given limits (any value; usually higher than the default)."""
    saved = dict(_current)
    _current.update(_checked(values))
    try:
        yield
    finally:
        _current.clear()
        _current.update(saved)


def parse_assignment(text: str) -> tuple[str, int]:
    """``"ops=1000000"`` -> ``("ops", 1000000)`` (underscores and ``1e6`` are accepted).

    Example:
        >>> parse_assignment("ops=2e5"), parse_assignment("nodes=1_000")
        (('ops', 200000), ('nodes', 1000))
    """
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in LIMITS:
        raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(LIMITS)}, got {text!r}")
    try:
        number = float(value.replace("_", "")) if "e" in value.lower() else int(value)
    except ValueError:
        raise ValueError(f"limit {name}: {value!r} is not a number") from None
    if number != int(number) or int(number) <= 0:
        raise ValueError(f"limit {name} must be a positive integer, got {value!r}")
    return name, int(number)


def raise_hint(name: str) -> str:
    """How to raise limit ``name``, for the hint of a diagnostic."""
    return (
        f"if you mean it, raise the limit: --limit {name}=N on the command line, or "
        f"flowspec.spec.limits.raised({name}=N) in Python (now {limit(name):,}; see docs/limits.md)"
    )


def markdown_table() -> str:
    """The table of limits in ``docs/limits.md``: name, default, what is counted."""
    rows = ["| limit | default | counts |", "| --- | --- | --- |"]
    rows += [f"| `{lim.name}` | {lim.default:,} | {lim.counts} |" for lim in LIMITS.values()]
    return "\n".join(rows)
