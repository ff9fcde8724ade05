"""``flowspec inspect``: a model file's embedded spec, version, parameters and training record.

The model is never built: the file's tensors are grouped by the ops of the embedded spec's graph
(read through the same limits as a spec file), so inspecting a file costs what reading it costs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flowspec.cli.common import Command, add_no_verify, require_model, table
from flowspec.cli.eval import training_info

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    add_no_verify(p)


def _owner(name: str, ops: set[str]) -> str:
    """The op (or ``base``) a tensor name belongs to: its longest prefix that is an op."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in ops:
            return prefix
    return parts[0]


def _layer_rows(graph: Any, weights: Any) -> tuple[list[tuple[Any, ...]], str]:
    """Per op: its kind and the number of values of its parameters (of all its tensors for a
    file written before flowspec recorded which tensors are buffers)."""
    ops = {op.name: op.kind for op in graph.ops()}
    listed = weights.metadata.get("buffers")
    buffers = set(json.loads(listed)) if listed else set()
    counts: dict[str, int] = {}
    for name, tensor in weights.state.items():
        if name not in buffers:
            owner = _owner(name, set(ops))
            counts[owner] = counts.get(owner, 0) + tensor.numel()
    what = "parameters" if listed else "values (parameters and buffers)"
    rows: list[tuple[Any, ...]] = [("layer", "kind", what)]
    if graph.spec.context is not None:
        rows += [("context", graph.spec.context.describe(), counts.get("context", 0))]
    rows += [(name, kind, counts.get(name, 0)) for name, kind in ops.items()]
    rows += [("base", graph.spec.base.type, counts.get("base", 0))]
    return [*rows, ("total", "", sum(counts.values()))], what


def _settings(used: dict[str, Any], spec_train: Any) -> str:
    """The run's settings, one per line, each that differs from the spec's ``train:`` marked."""
    written = spec_train.model_dump(mode="json") if spec_train is not None else {}
    lines = []
    for key, value in used.items():
        note = f"   (spec: {written[key]})" if key in written and written[key] != value else ""
        lines.append(f"  {key}: {'null' if value is None else value}{note}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    require_model(args.model)
    import yaml

    from flowspec.io import graph_from_file, read_weights

    weights = read_weights(args.model, verify=not args.no_verify)
    metadata = weights.metadata
    graph = graph_from_file(weights)
    spec = graph.spec
    size = Path(args.model).stat().st_size
    print(f"model: {args.model} ({size:,} bytes)")
    print(
        f"flowspec version: {metadata.get('flowspec_version')} "
        f"(weights format {metadata.get('format_version')})"
    )
    print(f"spec: '{spec.name}', sha256 {metadata.get('spec_sha256', '')[:16]}...")
    checked = "verified" if not args.no_verify else "not verified (--no-verify)"
    tensors = metadata.get("tensors_sha256")
    print(
        f"tensors: {len(weights.tensors)}, sha256 {tensors[:16]}... ({checked})"
        if tensors
        else f"tensors: {len(weights.tensors)}, no checksum (written by flowspec 0.1)"
    )
    info = training_info(metadata)
    if "train_state" in metadata:
        best = "none yet" if info["best_val"] is None else f"{info['best_val']:.4f}"
        print(
            f"checkpoint: step {info['step']}, epoch {info['epoch'] + 1}, data "
            f"{info['data']!r}, best val NLL {best} (resumable)"
        )
    elif info:
        print(
            f"trained: step {info['step']}, epoch {info['epoch']}, val NLL "
            f"{info['val_nll']:.4f}, data {info['data']!r}"
        )
    if info.get("config"):
        print("training settings this run used (flags and overrides included):")
        print(_settings(info["config"], spec.train))
    rows, what = _layer_rows(graph, weights)
    print(f"{what} per layer:")
    print(table(rows))
    print("embedded spec (resolved; its train: section holds the spec's defaults):")
    dumped = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    print("  " + dumped.rstrip().replace("\n", "\n  "))
    return 0


COMMAND = Command(
    "inspect",
    "show a model file's spec, version and parameters",
    "Show the embedded spec, the flowspec version, parameters per layer, the file "
    "size and any training information. The model is not built.",
    """examples:
  flowspec inspect runs/realnvp_moons/model.safetensors
  flowspec inspect runs/realnvp_moons/last.safetensors""",
    _arguments,
    _run,
)
