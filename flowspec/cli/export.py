"""``flowspec export``: a model as standalone PyTorch source, a ``torch.export`` program or
ONNX, chosen by the output's suffix."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowspec.cli.common import Command, UsageError, require_model

__all__ = ["COMMAND"]

SUFFIXES = (".py", ".pt2", ".onnx")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="a .py, .pt2 or .onnx")
    p.add_argument(
        "--inverse",
        action="store_true",
        help=".pt2/.onnx: the latent -> data direction (default: data -> z, logdet, log_prob)",
    )


def _run(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"-o must end in {', '.join(SUFFIXES)}, got '{args.output}'")
    if args.inverse and suffix == ".py":
        raise UsageError("--inverse is for .pt2/.onnx; a .py file holds both directions")
    require_model(args.model)
    from flowspec.exporters import export
    from flowspec.io import load

    flow = load(args.model)
    export(flow, args.output, inverse=args.inverse)
    what = {
        ".py": f"standalone PyTorch source: {flow.spec.name}'s forward, inverse, log_prob, "
        f"sample; load weights with .from_file('{args.model}')",
        ".pt2": "torch.export program (torch.export.load)",
        ".onnx": "ONNX model",
    }[suffix]
    direction = (
        "" if suffix == ".py" else (" (z -> x)" if args.inverse else " (x -> z, logdet, log_prob)")
    )
    print(f"wrote {args.output}: {what}{direction}")
    return 0


COMMAND = Command(
    "export",
    "write a model as .py source, .pt2 or .onnx",
    "Export a model. .py: one standalone PyTorch file (no flowspec needed) with forward, "
    "inverse, log_prob and sample that loads the model's weights and reproduces flowspec's "
    "outputs bit for bit. .pt2 (torch.export) and .onnx: one direction with the weights inside, "
    "batch size dynamic.",
    """examples:
  flowspec export runs/realnvp_moons/model.safetensors -o moons.py
  flowspec export runs/realnvp_moons/model.safetensors -o moons.onnx
  flowspec export runs/realnvp_moons/model.safetensors -o moons_inverse.onnx --inverse
  flowspec export runs/glow_digits/model.safetensors -o glow.pt2

.onnx needs the export extra: pip install 'flowspec[export]'.""",
    _arguments,
    _run,
)
