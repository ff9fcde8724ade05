"""Subcommands that start from a model file: ``eval``, ``sample``, ``inspect``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowspec.cli_common import (
    Command,
    UsageError,
    positive_float,
    positive_int,
    require_model,
    table,
)
from flowspec.errors import DataError, Diagnostic, FlowspecError


def _training_info(metadata: dict[str, str]) -> dict[str, Any]:
    info = metadata.get("training") or metadata.get("train_state")
    return json.loads(info) if info else {}


# ----------------------------------------------------------------------------- eval
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("--data", metavar="NAME|FILE", help="default: the data the model trained on")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="(test)")
    p.add_argument("--batch-size", type=positive_int, default=2048, help="(2048)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (nll, bits_per_dim, n)"
    )


def _eval(args: argparse.Namespace) -> int:
    require_model(args.model)
    import flowspec
    from flowspec.data import load_splits
    from flowspec.evaluate import evaluate
    from flowspec.io import read_file

    metadata, _ = read_file(args.model)
    flow = flowspec.load(args.model)
    info, spec = _training_info(metadata), flow.spec
    source = args.data or info.get("data") or (spec.data.name if spec.data else None)
    if not source:
        raise DataError(
            Diagnostic(
                "no-data",
                f"'{args.model}' does not say what data it models",
                hint="pass --data NAME|FILE",
            )
        )
    seed = info.get("data_seed", spec.data.seed if spec.data else 0)
    splits = load_splits(source, tuple(flow.input_shape), seed=seed)
    score = evaluate(flow, getattr(splits, args.split), batch_size=args.batch_size)
    if args.json:
        print(json.dumps(score.as_dict()))
    else:
        print(
            f"{args.split} NLL {score.nll:.4f} nats per example, {score.bits_per_dim:.4f} "
            f"bits/dim, over {score.n} examples of {source}"
        )
    return 0


# ----------------------------------------------------------------------------- sample
def _write_npy(flow: Any, x: Any, path: Path) -> None:
    import numpy as np

    from flowspec.io import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, x.numpy())

    write_atomic(path, write)


def _write_png(flow: Any, x: Any, path: Path) -> None:
    from flowspec import plots
    from flowspec.figures import to_images

    shape = tuple(flow.input_shape)
    if shape == (2,):
        plots.plot_samples_2d(x.numpy(), None, path)
    elif len(shape) == 3 and shape[0] in (1, 3):
        plots.plot_image_grid(to_images(flow, x), path)
    else:
        raise FlowspecError(
            Diagnostic(
                "sample-format",
                f"cannot draw samples of shape {shape} as a .png",
                hint="write them to a .npy file instead",
            )
        )


SAMPLE_WRITERS: dict[str, Callable[[Any, Any, Path], None]] = {
    ".npy": _write_npy,
    ".png": _write_png,
}


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("-n", "--num", type=positive_int, required=True, help="number of samples")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="a .npy or .png file")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="base std scale (1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")


def _sample(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in SAMPLE_WRITERS:
        raise UsageError(f"-o must end in {' or '.join(SAMPLE_WRITERS)}, got '{args.output}'")
    require_model(args.model)
    import torch

    import flowspec

    flow = flowspec.load(args.model).eval()
    torch.manual_seed(args.seed)
    with torch.no_grad():
        x = flow.sample(args.num, temperature=args.temperature)
    SAMPLE_WRITERS[suffix](flow, x, Path(args.output))
    print(f"wrote {args.num} samples of shape {tuple(flow.input_shape)} to {args.output}")
    return 0


# ----------------------------------------------------------------------------- inspect
def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")


def _layer_rows(flow: Any) -> list[tuple[Any, ...]]:
    counts: dict[str, int] = {}
    for name, param in flow.named_parameters():
        owner = next((s for s in flow.step_names if name.startswith(s + ".")), "base")
        counts[owner] = counts.get(owner, 0) + param.numel()
    graph = flow.graph
    rows: list[tuple[Any, ...]] = [("layer", "kind", "parameters")]
    rows += [(n, graph.nodes[n]["op"].kind, counts.get(n, 0)) for n in flow.step_names]
    rows += [("base", flow.spec.base.type, counts.get("base", 0))]
    return [*rows, ("total", "", flow.num_parameters())]


def _inspect(args: argparse.Namespace) -> int:
    require_model(args.model)
    import yaml

    import flowspec
    from flowspec.io import read_file

    metadata, _ = read_file(args.model)
    flow = flowspec.load(args.model)
    size = Path(args.model).stat().st_size
    print(f"model: {args.model} ({size:,} bytes)")
    print(
        f"flowspec version: {metadata.get('flowspec_version')} "
        f"(weights format {metadata.get('format_version')})"
    )
    print(f"spec: '{flow.spec.name}', sha256 {metadata.get('spec_sha256', '')[:16]}...")
    info = _training_info(metadata)
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


EPILOG_EVAL = """examples:
  flowspec eval runs/realnvp_moons/model.safetensors
  flowspec eval runs/realnvp_moons/model.safetensors --json
  flowspec eval model.safetensors --data points.npy --split val"""

EPILOG_SAMPLE = """examples:
  flowspec sample runs/realnvp_moons/model.safetensors -n 1000 -o samples.npy
  flowspec sample runs/realnvp_moons/model.safetensors -n 2000 -o samples.png --seed 1
  flowspec sample runs/glow_digits/model.safetensors -n 64 -o digits.png --temperature 0.7"""

EPILOG_INSPECT = """examples:
  flowspec inspect runs/realnvp_moons/model.safetensors
  flowspec inspect runs/realnvp_moons/last.safetensors"""

COMMANDS = (
    Command(
        "eval",
        "test NLL (nats/example) and bits/dim",
        "Score a model on a data split: mean negative log-likelihood in nats per example "
        "and in bits per dimension.",
        EPILOG_EVAL,
        _eval_args,
        _eval,
    ),
    Command(
        "sample",
        "draw samples to .npy or .png",
        "Draw samples from a model. .npy holds an array (N, *input shape); .png draws a "
        "scatter plot (2-D) or an image grid.",
        EPILOG_SAMPLE,
        _sample_args,
        _sample,
    ),
    Command(
        "inspect",
        "show a model file's spec, version and parameters",
        "Show the embedded spec, the flowspec version, parameters per layer, the file "
        "size and any training information.",
        EPILOG_INSPECT,
        _inspect_args,
        _inspect,
    ),
)
