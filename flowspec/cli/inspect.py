"""``flowspec inspect``: a model file's embedded spec, version, parameters and training record."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowspec.cli.common import Command, require_model, table
from flowspec.cli.eval import training_info

__all__ = ["COMMAND"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")


def _layer_rows(flow: Any) -> list[tuple[Any, ...]]:
    counts: dict[str, int] = {}
    for name, param in flow.named_parameters():
        owner = next((s for s in flow.step_names if name.startswith(s + ".")), "base")
        counts[owner] = counts.get(owner, 0) + param.numel()
    rows: list[tuple[Any, ...]] = [("layer", "kind", "parameters")]
    rows += [(step.name, step.kind, counts.get(step.name, 0)) for step in flow.steps]
    rows += [("base", flow.spec.base.type, counts.get("base", 0))]
    return [*rows, ("total", "", flow.num_parameters())]


def _run(args: argparse.Namespace) -> int:
    require_model(args.model)
    import yaml

    from flowspec.io import flow_from_file, read_weights

    weights = read_weights(args.model)
    metadata = weights.metadata
    flow = flow_from_file(weights)
    size = Path(args.model).stat().st_size
    print(f"model: {args.model} ({size:,} bytes)")
    print(
        f"flowspec version: {metadata.get('flowspec_version')} "
        f"(weights format {metadata.get('format_version')})"
    )
    print(f"spec: '{flow.spec.name}', sha256 {metadata.get('spec_sha256', '')[:16]}...")
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
    print("parameters per layer:")
    print(table(_layer_rows(flow)))
    print("embedded spec (resolved):")
    dumped = yaml.safe_dump(flow.spec.model_dump(mode="json"), sort_keys=False)
    print("  " + dumped.rstrip().replace("\n", "\n  "))
    return 0


COMMAND = Command(
    "inspect",
    "show a model file's spec, version and parameters",
    "Show the embedded spec, the flowspec version, parameters per layer, the file "
    "size and any training information.",
    """examples:
  flowspec inspect runs/realnvp_moons/model.safetensors
  flowspec inspect runs/realnvp_moons/last.safetensors""",
    _arguments,
    _run,
)
