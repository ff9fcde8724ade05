"""``flowspec sample``: draw samples from a model to a ``.npy`` array or a ``.png`` figure."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowspec.cli.common import Command, UsageError, positive_float, positive_int, require_model
from flowspec.errors import Diagnostic, FlowspecError

__all__ = ["COMMAND", "WRITERS"]


def _write_npy(flow: Any, x: Any, path: Path) -> None:
    import numpy as np

    from flowspec.io import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, x.numpy())

    write_atomic(path, write)


def _write_png(flow: Any, x: Any, path: Path) -> None:
    from flowspec.training import drawing
    from flowspec.training.figures import to_images

    shape = tuple(flow.input_shape)
    if shape == (2,):
        drawing.plot_samples_2d(x.numpy(), None, path)
    elif len(shape) == 3 and shape[0] in (1, 3):
        drawing.plot_image_grid(to_images(flow, x), path)
    else:
        raise FlowspecError(
            Diagnostic(
                "sample-format",
                f"cannot draw samples of shape {shape} as a .png",
                hint="write them to a .npy file instead",
            )
        )


WRITERS: dict[str, Callable[[Any, Any, Path], None]] = {".npy": _write_npy, ".png": _write_png}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("-n", "--num", type=positive_int, required=True, help="number of samples")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="a .npy or .png file")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="base std scale (1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")


def _run(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in WRITERS:
        raise UsageError(f"-o must end in {' or '.join(WRITERS)}, got '{args.output}'")
    require_model(args.model)
    import torch

    import flowspec

    flow = flowspec.load(args.model).eval()
    torch.manual_seed(args.seed)
    with torch.no_grad():
        x = flow.sample(args.num, temperature=args.temperature)
    WRITERS[suffix](flow, x, Path(args.output))
    print(f"wrote {args.num} samples of shape {tuple(flow.input_shape)} to {args.output}")
    return 0


COMMAND = Command(
    "sample",
    "draw samples to .npy or .png",
    "Draw samples from a model. .npy holds an array (N, *input shape); .png draws a "
    "scatter plot (2-D) or an image grid.",
    """examples:
  flowspec sample runs/realnvp_moons/model.safetensors -n 1000 -o samples.npy
  flowspec sample runs/realnvp_moons/model.safetensors -n 2000 -o samples.png --seed 1
  flowspec sample runs/glow_digits/model.safetensors -n 64 -o digits.png --temperature 0.7""",
    _arguments,
    _run,
)
