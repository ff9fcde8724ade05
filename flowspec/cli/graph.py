"""``flowspec graph``: print the checked IR as text, Graphviz DOT or Mermaid (torch-free)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flowspec.cli.common import Command, block_summary, spec_graph, table, write_text

__all__ = ["COMMAND", "FORMATS"]


def _text(graph: Any) -> str:
    rows = [("block", "ops", "in", "out"), *block_summary(graph)]
    return str(graph) + "\nblocks (per-example shapes):\n" + table(rows)


def _dot(graph: Any) -> str:
    from flowspec.graph import to_dot

    return to_dot(graph)


def _mermaid(graph: Any) -> str:
    from flowspec.graph import to_mermaid

    return to_mermaid(graph)


FORMATS: dict[str, Callable[[Any], str]] = {"text": _text, "dot": _dot, "mermaid": _mermaid}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _run(args: argparse.Namespace) -> int:
    write_text(FORMATS[args.format](spec_graph(args.spec)), args.output)
    return 0


COMMAND = Command(
    "graph",
    "print the compiled IR with shapes",
    "Print the op graph with per-example shapes per op and per top-level block.",
    """examples:
  flowspec graph specs/realnvp_moons.yaml
  flowspec graph specs/realnvp_moons.yaml --format dot -o flow.dot && dot -Tpng flow.dot
  flowspec graph specs/realnvp_moons.yaml --format mermaid""",
    _arguments,
    _run,
)
