"""What the ``flowspec`` subcommands share: the command record, argument types, output helpers
and reading a spec.

Torch-free on purpose: ``flowspec validate`` imports this module and must stay instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Command",
    "UsageError",
    "add_no_verify",
    "block_of",
    "block_summary",
    "column_list",
    "format_error",
    "limit_assignment",
    "nonfinite_error",
    "positive_float",
    "positive_int",
    "read_spec",
    "require_model",
    "spec_graph",
    "table",
    "write_text",
]


@dataclass(frozen=True)
class Command:
    """One subcommand: its help texts, how it adds its arguments, and its handler.

    The handler returns the exit status; it raises :class:`~flowspec.errors.FlowspecError` for
    user errors (exit 1) and :class:`UsageError` for bad combinations of arguments (exit 2).
    """

    name: str
    help: str
    description: str
    epilog: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Arguments that parse but do not make sense together (exit status 2)."""


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_no_verify(p: argparse.ArgumentParser) -> None:
    """The ``--no-verify`` flag of the commands that read a model file."""
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the tensors' checksum (faster for large files; the spec is always checked)",
    )


def nonfinite_error(what: str, layer: str | None, flow: Any, direction: str, hint: str) -> Any:
    """The error for NaN or infinite outputs, naming the first layer that produced them."""
    from flowspec.errors import Diagnostic, WeightsError

    kinds = {step.name: step.kind for step in flow.steps}
    where = (
        f"the first non-finite output is at layer '{layer}' ({kinds[layer]}) in the "
        f"{direction} pass"
        if layer is not None
        else "every layer's output is finite, so the base distribution's log-density overflowed"
    )
    return WeightsError(Diagnostic("nonfinite-output", f"{what}; {where}", hint=hint))


def limit_assignment(text: str) -> tuple[str, int]:
    """argparse type of ``--limit NAME=VALUE``: a limit of :mod:`flowspec.spec.limits`."""
    from flowspec.spec.limits import parse_assignment

    try:
        return parse_assignment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_error(exc: Any) -> str:
    """A :class:`~flowspec.errors.FlowspecError` as printed: its first diagnostics (the
    ``diagnostics`` limit), then how many more there are."""
    from flowspec.spec.limits import limit

    shown = limit("diagnostics")
    diagnostics = exc.diagnostics
    text = "\n".join(d.format() for d in diagnostics[:shown])
    if len(diagnostics) > shown:
        text += (
            f"\n... and {len(diagnostics) - shown:,} more diagnostics (the first {shown} are "
            f"shown; --limit diagnostics=N shows more)"
        )
    return text


def column_list(text: str) -> tuple[int, ...]:
    """argparse type: 0-based column numbers, comma-separated (``2`` or ``0,3``)."""
    try:
        columns = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 0-based column numbers like 2 or 0,3, got {text!r}"
        ) from None
    if any(c < 0 for c in columns):
        raise argparse.ArgumentTypeError(f"column numbers start at 0, got {text!r}")
    return columns


def write_text(text: str, path: str | None) -> None:
    """Write ``text`` to the file ``path``, or to stdout when ``path`` is None or ``-``."""
    text = text if text.endswith("\n") else text + "\n"
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def table(rows: list[tuple[Any, ...]], indent: str = "  ") -> str:
    """Left-aligned columns (numbers right-aligned), the first row being the header."""
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    numeric = [all(isinstance(r[i], int | float) for r in rows[1:]) for i in range(len(widths))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def require_model(path: str) -> str:
    """``path`` if it is a file; else the same error ``flowspec.load`` gives, without torch."""
    if not Path(path).is_file():
        from flowspec.errors import Diagnostic, WeightsError

        raise WeightsError(
            Diagnostic(
                "weights-missing",
                f"no weights file at '{path}'",
                hint="train one with 'flowspec train' or write one with 'flowspec compile'",
            )
        )
    return path


def block_of(name: str) -> str:
    """The top-level block an op or parameter belongs to: ``levels.0``, ``layers.2``, ``base``."""
    parts = name.split(".")
    return parts[0] if parts[0] == "base" else ".".join(parts[:2])


def read_spec(path: str) -> Any:
    """The validated spec in file ``path``, or the shipped spec of that name when no such file
    exists (``flowspec train realnvp_moons``); a missing file is ``spec-missing``."""
    from flowspec.api import load_spec
    from flowspec.spec.shipped import shipped_spec

    file = Path(path)
    if not file.exists() and file.parent == Path(".") and file.suffix in ("", ".yaml"):
        file = shipped_spec(path)
    return load_spec(file)


def spec_graph(path: str) -> Any:
    """The checked IR of the spec in ``path``."""
    from flowspec.graph import build_graph

    return build_graph(read_spec(path))


def block_summary(graph: Any) -> list[tuple[str, int, str, str]]:
    """``(block, ops, input shape, output shapes)`` per top-level block, in execution order."""
    blocks: dict[str, list[Any]] = {}
    for op in graph.ops():
        blocks.setdefault(block_of(op.name), []).append(op)
    return [
        (name, len(ops), str(ops[0].in_shape), " + ".join(str(s) for s in ops[-1].out_shapes))
        for name, ops in blocks.items()
    ]
