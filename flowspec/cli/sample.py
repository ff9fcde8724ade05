"""``flowspec sample``: draw samples from a model to a ``.npy`` array or a ``.png`` figure."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowspec.cli.common import (
    Command,
    UsageError,
    add_no_verify,
    nonfinite_error,
    positive_float,
    positive_int,
    require_model,
)
from flowspec.errors import Diagnostic, FlowspecError

__all__ = ["COMMAND", "WRITERS"]


BATCH = 4096  # samples drawn at a time: memory stays bounded however large -n is


def _batches(flow: Any, n: int, temperature: float) -> Any:
    """Yield the samples ``BATCH`` at a time, refusing the first batch with NaN or Inf."""
    import torch

    for start in range(0, n, BATCH):
        with torch.no_grad():
            z = flow.base.sample(min(BATCH, n - start), temperature)
            x = flow.inverse(z)
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
        if bool(bad.any()):
            raise nonfinite_error(
                f"{int(bad.sum())} of {len(x)} samples in a batch are NaN or infinite "
                f"(temperature {temperature:g}); nothing was written",
                flow.first_nonfinite_inverse(z[bad]),
                flow,
                "inverse",
                "the model's inverse overflows on these latents: sample at a lower "
                "--temperature, or check the model with 'flowspec check MODEL'",
            )
        yield x


def _write_npy(flow: Any, samples: Any, n: int, path: Path, temperature: float) -> None:
    """Stream the batches into a memory-mapped ``.npy`` beside ``path``, then rename it."""
    import numpy as np

    from flowspec.io import write_atomic

    def write(tmp: str) -> None:
        out, start = None, 0
        for x in samples:
            array = x.numpy()
            if out is None:
                out = np.lib.format.open_memmap(tmp, "w+", array.dtype, (n, *flow.input_shape))
            out[start : start + len(x)] = array
            start += len(x)
        if out is not None:
            out.flush()
            del out

    write_atomic(path, write)


def _write_png(flow: Any, samples: Any, n: int, path: Path, temperature: float) -> None:
    import torch

    from flowspec.training import drawing
    from flowspec.training.figures import to_images

    shape = tuple(flow.input_shape)
    title = f"{n} samples of '{flow.spec.name}', temperature {temperature:g}"
    if shape == (2,):
        drawing.plot_samples_2d(torch.cat(list(samples)).numpy(), None, path, title=title)
    elif len(shape) == 3 and shape[0] in (1, 3):
        drawing.plot_image_grid(to_images(flow, torch.cat(list(samples))), path, title=title)
    else:
        raise FlowspecError(
            Diagnostic(
                "sample-format",
                f"cannot draw samples of shape {shape} as a .png",
                hint="write them to a .npy file instead",
            )
        )


WRITERS: dict[str, Callable[[Any, Any, int, Path, float], None]] = {
    ".npy": _write_npy,
    ".png": _write_png,
}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument("-n", "--num", type=positive_int, required=True, help="number of samples")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="a .npy or .png file")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="base std scale (1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    add_no_verify(p)


def _run(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in WRITERS:
        raise UsageError(f"-o must end in {' or '.join(WRITERS)}, got '{args.output}'")
    from flowspec.limits import limit

    if args.num > limit("samples"):
        raise UsageError(
            f"-n {args.num:,} is above the samples limit ({limit('samples'):,}); raise it "
            f"with --limit samples={args.num} if you mean it"
        )
    require_model(args.model)
    import torch

    import flowspec

    flow = flowspec.load(args.model, verify=not args.no_verify)
    torch.manual_seed(args.seed)
    samples = _batches(flow, args.num, args.temperature)
    WRITERS[suffix](flow, samples, args.num, Path(args.output), args.temperature)
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
