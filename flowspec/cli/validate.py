"""``flowspec validate``: parse and check specs without building any weights (torch-free)."""

from __future__ import annotations

import argparse
import sys
import traceback

from flowspec.cli.common import Command, format_error, spec_graph
from flowspec.errors import FlowspecError

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (.yaml)")


def _run(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.specs:
        try:
            graph = spec_graph(path)
        except FlowspecError as exc:
            if args.debug:
                traceback.print_exception(exc)
            print(format_error(exc), file=sys.stderr)
            failed += 1
            continue
        for warning in graph.warnings:
            print(warning.format(), file=sys.stderr)
        n_ops = sum(1 for _ in graph.ops())
        print(
            f"{path}: ok ({n_ops} ops, input {graph.input_shape}, "
            f"{len(graph.latents)} latent(s), {len(graph.warnings)} warning(s))"
        )
    return 1 if failed else 0


COMMAND = Command(
    "validate",
    "check specs without building any weights",
    "Parse and check each spec (schema, shapes, invertibility, mixing). Never imports torch.",
    """examples:
  flowspec validate specs/realnvp_moons.yaml
  flowspec validate specs/*.yaml

exit status: 0 every spec is valid (warnings are shown but do not fail), 1 otherwise.""",
    _arguments,
    _run,
)
