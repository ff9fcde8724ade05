"""``flowspec sample``: draw samples from a model to a ``.npy`` / ``.npz`` array or a ``.png``.

A conditional model samples at ``--context`` (a class label, or a comma-separated vector). A
class-conditional model without ``--context`` draws ``-n`` samples of every class: a ``.png``
shows one row per class, an ``.npz`` stores the labels beside the samples.
"""

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
from flowspec.errors import DataError, Diagnostic, FlowspecError

__all__ = ["COMMAND", "WRITERS"]


BATCH = 4096  # samples drawn at a time: memory stays bounded however large -n is


def _batches(flow: Any, n: int, temperature: float, context: Any = None) -> Any:
    """Yield the samples ``BATCH`` at a time (each with its slice of the contexts), refusing the
    first batch with NaN or Inf."""
    import torch

    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        c = None if context is None else context[start : start + size]
        with torch.no_grad():
            z = flow.base.sample(size, temperature, flow.context_features(c, size))
            x = flow.inverse(z, c)
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
        if bool(bad.any()):
            raise nonfinite_error(
                f"{int(bad.sum())} of {len(x)} samples in a batch are NaN or infinite "
                f"(temperature {temperature:g}); nothing was written",
                flow.first_nonfinite_inverse(z[bad], None if c is None else c[bad]),
                flow,
                "inverse",
                "the model's inverse overflows on these latents: sample at a lower "
                "--temperature, or check the model with 'flowspec check MODEL'",
            )
        yield x


def _write_npy(
    flow: Any, samples: Any, n: int, context: Any, path: Path, temperature: float
) -> None:
    """Stream the batches into a memory-mapped ``.npy`` beside ``path``, then rename it."""
    import numpy as np

    from flowspec.io import write_atomic

    if context is not None and context.numel() > 1 and not bool((context == context[0]).all()):
        raise DataError(
            Diagnostic(
                "context-missing",
                "samples of several contexts would lose their contexts in a .npy",
                hint="write an .npz (arrays x and context) or pass --context",
            )
        )

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


def _write_npz(
    flow: Any, samples: Any, n: int, context: Any, path: Path, temperature: float
) -> None:
    """Arrays ``x`` and (a conditional model's) ``context``, one row each per sample."""
    import numpy as np
    import torch

    from flowspec.io import write_atomic

    arrays = {"x": torch.cat(list(samples)).numpy()}
    if context is not None:
        arrays["context"] = context.numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    write_atomic(path, write)


def _write_png(
    flow: Any, samples: Any, n: int, context: Any, path: Path, temperature: float
) -> None:
    import torch

    from flowspec.training import drawing
    from flowspec.training.figures import to_images

    shape = tuple(flow.input_shape)
    labels = None
    if context is not None and getattr(flow.context, "classes", None) is not None:
        labels = context.numpy()
    title = f"{n} samples of '{flow.spec.name}', temperature {temperature:g}"
    if shape == (2,):
        x = torch.cat(list(samples)).numpy()
        drawing.plot_samples_2d(x, None, path, title=title, sample_labels=labels)
    elif len(shape) == 3 and shape[0] in (1, 3):
        per_row = None
        if labels is not None and len(set(labels.tolist())) > 1:
            per_row = int((labels == labels[0]).sum())  # one row per class
            title += ", one row per class"
        images = to_images(flow, torch.cat(list(samples)))
        drawing.plot_image_grid(images, path, per_row, title=title)
    else:
        raise FlowspecError(
            Diagnostic(
                "sample-format",
                f"cannot draw samples of shape {shape} as a .png",
                hint="write them to a .npy file instead",
            )
        )


WRITERS: dict[str, Callable[[Any, Any, int, Any, Path, float], None]] = {
    ".npy": _write_npy,
    ".npz": _write_npz,
    ".png": _write_png,
}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model .safetensors")
    p.add_argument(
        "-n", "--num", type=positive_int, required=True, help="number of samples (per class)"
    )
    p.add_argument("-o", "--output", metavar="FILE", required=True, help=".npy, .npz or .png")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="base std scale (1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    p.add_argument(
        "--context",
        metavar="C",
        help="a conditional model's context: a class label (3) or a vector (0.5,1.2)",
    )
    add_no_verify(p)


def _contexts(flow: Any, args: argparse.Namespace) -> tuple[Any, int]:
    """The context of every sample (None for an unconditional model) and how many samples."""
    import numpy as np
    import torch

    from flowspec.data.context import parse_context

    spec = flow.spec.context
    if spec is None:
        if args.context is not None:
            raise DataError(
                Diagnostic(
                    "context-unexpected",
                    f"'{args.model}' is an unconditional model; it takes no --context",
                    hint="drop --context",
                )
            )
        return None, args.num
    if args.context is not None:
        one = parse_context(args.context, spec)
        return torch.as_tensor(np.repeat(one, args.num, axis=0)), args.num
    classes = getattr(spec, "classes", None)
    if classes is None:
        raise DataError(
            Diagnostic(
                "context-missing",
                f"'{args.model}' is conditional on a vector of {spec.features}; give --context",
                hint=f"e.g. --context {','.join(['0.0'] * spec.features)}",
            )
        )
    labels = np.repeat(np.arange(classes), args.num)  # -n of every class
    return torch.as_tensor(labels), len(labels)


def _run(args: argparse.Namespace) -> int:
    suffix = Path(args.output).suffix.lower()
    if suffix not in WRITERS:
        raise UsageError(f"-o must end in {' or '.join(WRITERS)}, got '{args.output}'")
    from flowspec.spec.limits import limit

    if args.num > limit("samples"):
        raise UsageError(
            f"-n {args.num:,} is above the samples limit ({limit('samples'):,}); raise it "
            f"with --limit samples={args.num} if you mean it"
        )
    require_model(args.model)
    import torch

    import flowspec

    flow = flowspec.load(args.model, verify=not args.no_verify)
    context, n = _contexts(flow, args)
    if n > limit("samples"):
        raise UsageError(
            f"{n:,} samples ({args.num:,} of each class) are above the samples limit "
            f"({limit('samples'):,}); lower -n or raise --limit samples"
        )
    torch.manual_seed(args.seed)
    samples = _batches(flow, n, args.temperature, context)
    WRITERS[suffix](flow, samples, n, context, Path(args.output), args.temperature)
    which = ""
    if context is not None:
        which = f" at context {args.context}" if args.context else f" ({args.num} per class)"
    print(f"wrote {n} samples of shape {tuple(flow.input_shape)}{which} to {args.output}")
    return 0


COMMAND = Command(
    "sample",
    "draw samples to .npy, .npz or .png",
    "Draw samples from a model. .npy holds an array (N, *input shape); .npz the arrays x and "
    "context; .png draws a scatter plot (2-D) or an image grid (one row per class for a "
    "class-conditional model sampled without --context).",
    """examples:
  flowspec sample runs/realnvp_moons/model.safetensors -n 1000 -o samples.npy
  flowspec sample runs/realnvp_moons/model.safetensors -n 2000 -o samples.png --seed 1
  flowspec sample runs/glow_digits/model.safetensors -n 64 -o digits.png --temperature 0.7
  flowspec sample runs/conditional_digits/model.safetensors -n 64 -o threes.png --context 3
  flowspec sample runs/conditional_digits/model.safetensors -n 8 -o rows.png   # 8 per class""",
    _arguments,
    _run,
)
