"""Subcommands that start from a spec: ``validate``, ``graph``, ``compile``, ``check``.

``validate`` and ``graph`` never import torch (the graph stage is pure Python); ``compile`` and
``check`` import it inside their handlers.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from flowspec.cli_common import (
    Command,
    block_of,
    positive_float,
    positive_int,
    require_model,
    table,
    write_text,
)
from flowspec.errors import FlowspecError


def read_spec(path: str) -> Any:
    """The validated spec in file ``path`` (a ``Path`` is always read as a file, never as YAML
    text; a missing file is ``spec-missing``)."""
    from flowspec.spec.parse import load_spec

    return load_spec(Path(path))


def spec_graph(path: str) -> Any:
    """The checked IR of the spec in ``path``."""
    from flowspec.graph.build import build_graph

    return build_graph(read_spec(path))


def block_summary(graph: Any) -> list[tuple[str, int, str, str]]:
    """``(block, ops, input shape, output shapes)`` per top-level block, in execution order."""
    from flowspec.graph.ir import op_nodes

    blocks: dict[str, list[Any]] = {}
    for op in op_nodes(graph):
        blocks.setdefault(block_of(op.name), []).append(op)
    return [
        (name, len(ops), str(ops[0].in_shape), " + ".join(str(s) for s in ops[-1].out_shapes))
        for name, ops in blocks.items()
    ]


# ----------------------------------------------------------------------------- validate
def _validate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (.yaml)")


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.specs:
        try:
            graph = spec_graph(path)
        except FlowspecError as exc:
            if args.debug:
                traceback.print_exception(exc)
            print(exc.format(), file=sys.stderr)
            failed += 1
            continue
        for warning in graph.graph.get("warnings", ()):
            print(warning.format(), file=sys.stderr)
        n_ops = sum(1 for _, d in graph.nodes(data=True) if "op" in d)
        print(
            f"{path}: ok ({n_ops} ops, input {tuple(graph.graph['input_shape'])}, "
            f"{len(graph.graph['latents'])} latent(s), "
            f"{len(graph.graph.get('warnings', ()))} warning(s))"
        )
    return 1 if failed else 0


# ----------------------------------------------------------------------------- graph
def _format_text(graph: Any) -> str:
    from flowspec.graph.render import format_graph

    rows = [("block", "ops", "in", "out"), *block_summary(graph)]
    return format_graph(graph) + "\nblocks (per-example shapes):\n" + table(rows)


def _format_dot(graph: Any) -> str:
    from flowspec.graph.render import to_dot

    return to_dot(graph)


def _format_mermaid(graph: Any) -> str:
    from flowspec.graph.render import to_mermaid

    return to_mermaid(graph)


GRAPH_FORMATS = {"text": _format_text, "dot": _format_dot, "mermaid": _format_mermaid}


def _graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("--format", choices=sorted(GRAPH_FORMATS), default="text", help="output format")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _graph(args: argparse.Namespace) -> int:
    write_text(GRAPH_FORMATS[args.format](spec_graph(args.spec)), args.output)
    return 0


# ----------------------------------------------------------------------------- compile
def parameter_rows(flow: Any) -> list[tuple[str, int]]:
    """Parameter count per top-level block (``levels.0``, ``layers.1``, ``base``)."""
    counts: dict[str, int] = {}
    for name, param in flow.named_parameters():
        counts[block_of(name)] = counts.get(block_of(name), 0) + param.numel()
    return list(counts.items())


def _compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (.yaml)")
    p.add_argument("-o", "--output", metavar="MODEL", required=True, help="the .safetensors file")
    p.add_argument("--seed", type=int, help="weight-initialisation seed (default: the spec's)")
    p.add_argument("--init-data", metavar="DATA", help="data set name or file for actnorm init")


def _compile(args: argparse.Namespace) -> int:
    import flowspec
    from flowspec.data import load_splits
    from flowspec.evaluate import as_tensor
    from flowspec.train_support import data_init

    spec = read_spec(args.spec)
    flow = flowspec.compile(spec, seed=args.seed)
    if args.init_data:
        seed = spec.data.seed if spec.data is not None else 0
        splits = load_splits(args.init_data, tuple(flow.input_shape), seed=seed)
        done = data_init(flow, as_tensor(splits.train[:512]))
        used = min(512, len(splits.train))
        print(
            f"data-dependent init on {used} examples of {args.init_data}"
            if done
            else "no op needs data-dependent init; --init-data skipped"
        )
    flowspec.save(flow, args.output)
    rows = parameter_rows(flow)
    print(f"wrote {args.output}")
    print(table([("block", "parameters"), *rows, ("total", flow.num_parameters())]))
    return 0


# ----------------------------------------------------------------------------- check
def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="SPEC|MODEL", help="a spec (.yaml) or a model .safetensors")
    p.add_argument("-n", "--examples", type=positive_int, default=4, help="random inputs (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and perturbation")
    p.add_argument(
        "--scale", type=positive_float, default=0.05, help="weight perturbation of a spec (0.05)"
    )


def _check(args: argparse.Namespace) -> int:
    is_model = args.target.endswith(".safetensors")
    source = require_model(args.target) if is_model else read_spec(args.target)  # torch-free
    import torch

    import flowspec
    from flowspec.numerics import check_flow, example_inputs, perturb_parameters

    if is_model:
        flow, what = flowspec.load(source), "trained weights"
    else:
        flow = flowspec.compile(source).double()
        with torch.no_grad():  # data-dependent init first, then move off the identity
            flow(example_inputs(flow, 64, torch.Generator().manual_seed(args.seed)))
        perturb_parameters(flow, scale=args.scale, seed=args.seed)
        what = f"fresh weights perturbed by {args.scale} x N(0, 1)"
    results = check_flow(flow, n=args.examples, seed=args.seed)
    print(f"{args.target}: {args.examples} random inputs, float64, {what}")
    rows: list[tuple[Any, ...]] = [("check", "max error", "tolerance", "result")]
    rows += [
        (r.name, f"{r.error:.3g}", f"{r.tolerance:.3g}", "ok" if r.ok else "FAIL") for r in results
    ]
    print(table(rows))
    return 0 if all(r.ok for r in results) else 1


EPILOG_VALIDATE = """examples:
  flowspec validate specs/realnvp_moons.yaml
  flowspec validate specs/*.yaml

exit status: 0 every spec is valid (warnings are shown but do not fail), 1 otherwise."""

EPILOG_GRAPH = """examples:
  flowspec graph specs/realnvp_moons.yaml
  flowspec graph specs/realnvp_moons.yaml --format dot -o flow.dot && dot -Tpng flow.dot
  flowspec graph specs/realnvp_moons.yaml --format mermaid"""

EPILOG_COMPILE = """examples:
  flowspec compile specs/realnvp_moons.yaml -o model.safetensors
  flowspec compile specs/realnvp_moons.yaml -o model.safetensors --seed 1 --init-data moons"""

EPILOG_CHECK = """examples:
  flowspec check specs/realnvp_moons.yaml
  flowspec check runs/realnvp_moons/model.safetensors -n 8

exit status: 0 every check passes, 1 a check fails (or the file is invalid)."""

COMMANDS = (
    Command(
        "validate",
        "check specs without building any weights",
        "Parse and check each spec (schema, shapes, invertibility, mixing). Never imports torch.",
        EPILOG_VALIDATE,
        _validate_args,
        _validate,
    ),
    Command(
        "graph",
        "print the compiled IR with shapes",
        "Print the op graph with per-example shapes per op and per top-level block.",
        EPILOG_GRAPH,
        _graph_args,
        _graph,
    ),
    Command(
        "compile",
        "write an initialised model file",
        "Compile a spec to an initialised model (weights + embedded spec) and print "
        "its parameter counts.",
        EPILOG_COMPILE,
        _compile_args,
        _compile,
    ),
    Command(
        "check",
        "numerical round-trip and log-det checks",
        "Check x -> z -> x and z -> x -> z round trips and the log-determinant against "
        "the autograd Jacobian, in float64 on random inputs.",
        EPILOG_CHECK,
        _check_args,
        _check,
    ),
)
