"""``flowspec graph``: print the checked IR as text, Graphviz DOT or Mermaid, or its cost
(``--cost``); torch-free."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flowspec.cli.common import (
    Command,
    block_summary,
    positive_int,
    spec_graph,
    table,
    write_text,
)

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


def _cost(graph: Any, batch: int | None) -> str:
    from flowspec.graph.cost import cost_report, format_cost
    from flowspec.spec.passes import DEFAULT_PASSES

    train = graph.spec.train
    batch = batch or (train.batch_size if train is not None else 256)
    passes = train.passes if train is not None and train.passes is not None else DEFAULT_PASSES
    return format_cost(cost_report(graph, passes), batch, graph.spec.name)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")
    p.add_argument(
        "--cost",
        action="store_true",
        help="print parameters, FLOPs, training memory (plain and invertible) and file size",
    )
    p.add_argument(
        "--batch",
        type=positive_int,
        metavar="B",
        help="batch size of the --cost memory estimate (default: the spec's train.batch_size)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _run(args: argparse.Namespace) -> int:
    graph = spec_graph(args.spec)
    text = _cost(graph, args.batch) if args.cost else FORMATS[args.format](graph)
    write_text(text, args.output)
    return 0


COMMAND = Command(
    "graph",
    "print the compiled IR with shapes",
    "Print the op graph with per-example shapes per op and per top-level block, or with "
    "--cost what the flow costs before anything is allocated.",
    """examples:
  flowspec graph specs/realnvp_moons.yaml
  flowspec graph specs/glow_digits.yaml --cost --batch 64
  flowspec graph specs/realnvp_moons.yaml --format dot -o flow.dot && dot -Tpng flow.dot
  flowspec graph specs/realnvp_moons.yaml --format mermaid""",
    _arguments,
    _run,
)
