"""The figures of a training run, drawn with :mod:`flowspec.training.drawing` from a trained flow.

``loss.png`` always; ``samples.png`` for 2-D data (model samples beside data) and for images (a
grid); for 2-D flows also ``flow_steps.png`` (the course notes' figure: noise pushed back through
the flow one scheduled op at a time) and ``density.png`` (a heat map of the model density).
Sampling runs under its own seeded random stream, so drawing figures never changes training.

A conditional flow draws with the test set's contexts: 2-D samples take the contexts of the test
points beside them (coloured by class for class contexts), the density is the mixture over
those contexts, and class-conditional image samples come one row per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowspec.nn.flow import Flow, Step
from flowspec.training import drawing
from flowspec.training.evaluate import as_tensor

__all__ = ["class_rows", "flow_stages", "to_images", "write_run_figures"]

N_POINTS = 2000
N_IMAGES = 64
IMAGE_TEMPERATURE = 0.8
MAX_STAGES = 24


def to_images(flow: Flow, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Samples as images in [0, 1]: integer levels are divided by ``levels - 1``."""
    arr = np.asarray(x, dtype=np.float64)
    levels = flow.discrete_levels
    return np.clip(arr / (levels - 1) if levels else arr, 0.0, 1.0)


def flow_stages(
    flow: Flow, z: torch.Tensor, context: Any = None
) -> list[tuple[str, np.ndarray]] | None:
    """Latent points pushed back through the flow (with their contexts), one step at a time, as
    ``(title, points)`` panels (None unless a 2-D flow without splits). Each title names the
    step just inverted by its instance name and kind (``layers.0.9.1 (affine_coupling)``)."""
    if flow.input_shape != (2,) or any(len(step.dst) != 1 for step in flow.steps):
        return None
    stages = [("Noise samples z", z.numpy())]
    total = len(flow.steps)

    def record(step: Step, outs: tuple[torch.Tensor, ...], logdet: torch.Tensor | None) -> None:
        k = len(stages)
        name = "step" if k == 1 else "steps"
        done = " = samples" if k == total else ""
        title = f"After {k} inverse {name}{done}\n{step.name} ({step.kind})"
        stages.append((title, outs[0].numpy()))

    flow.decode([z], context, observe=record)
    if len(stages) > MAX_STAGES:
        keep = np.unique(np.linspace(0, len(stages) - 1, MAX_STAGES).round().astype(int))
        stages = [stages[i] for i in keep]
    return stages


N_DENSITY_CONTEXTS = 8  # vector contexts averaged over for the density figure


def _log_prob_fn(flow: Flow, context: np.ndarray | None = None) -> Any:
    """``points -> log p(points)``; for a conditional flow the mixture over the contexts given
    (class contexts: weighted by their frequency; vectors: the first few, equally)."""
    if context is None:
        mixture = [(None, 0.0)]
    elif not np.issubdtype(np.asarray(context).dtype, np.floating):
        labels, counts = np.unique(np.asarray(context), return_counts=True)
        mixture = [(int(c), float(np.log(k / counts.sum()))) for c, k in zip(labels, counts)]
    else:
        some = np.asarray(context)[:N_DENSITY_CONTEXTS]
        mixture = [(torch.as_tensor(c), -float(np.log(len(some)))) for c in some]

    def log_prob(points: np.ndarray) -> np.ndarray:
        per = []
        for c, log_weight in mixture:
            out = [
                flow.log_prob(as_tensor(chunk), c).double().numpy()
                for chunk in np.split(points, range(4096, len(points), 4096))
            ]
            per.append(np.concatenate(out) + log_weight)
        stacked = np.stack(per)
        top = stacked.max(0)
        return top + np.log(np.exp(stacked - np.where(np.isfinite(top), top, 0.0)).sum(0))

    return log_prob


def _bounds(data: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    lo, hi = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
    pad = 0.25 * (hi - lo)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (
        float(lo[1] - pad[1]),
        float(hi[1] + pad[1]),
    )


@torch.no_grad()
def write_run_figures(
    flow: Flow,
    data: np.ndarray,
    history: Sequence[dict[str, Any]],
    out_dir: Path,
    seed: int = 0,
    bits: bool = False,
    context: np.ndarray | None = None,
) -> list[Path]:
    """Draw the run's figures into ``out_dir``; return the files written.

    Arguments:
        flow: the trained model (best weights).
        data: held-out examples to draw beside the samples, ``(N, *input_shape)``.
        history: the metrics rows (``metrics.jsonl``).
        out_dir: the run directory.
        seed: seeds the sampling.
        bits: give the loss figure its bits/dim panel (discrete data and images).
        context: the contexts of ``data``, for a conditional flow.
    """
    loss = drawing.plot_loss(list(history), out_dir / "loss.png", bits=bits, dim=flow.dim)
    written = [loss]
    device = next(flow.buffers()).device
    training = flow.training
    flow.eval().cpu()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            written += _draw_samples(flow, data, out_dir, context)
    finally:
        flow.to(device).train(training)
    return written


def class_rows(classes: int, per_row: int) -> np.ndarray:
    """Labels for a grid with one row per class: ``[0]*per_row + [1]*per_row + ...``."""
    return np.repeat(np.arange(classes), per_row)


def _draw_samples(
    flow: Flow, data: np.ndarray, out_dir: Path, context: np.ndarray | None
) -> list[Path]:
    shape = flow.input_shape
    classes = getattr(flow.context, "classes", None) if flow.conditional else None
    if shape == (2,):
        c = None if context is None else torch.as_tensor(context[:N_POINTS])
        n = N_POINTS if c is None else len(c)
        features = flow.context_features(c, n)
        z = flow.base.sample(n, 1.0, features)
        samples = flow.inverse(z, c).numpy()
        labels = None if classes is None or context is None else context[:N_POINTS]
        title = "Model density" + ("" if context is None else " (mixture over test contexts)")
        written = [
            drawing.plot_samples_2d(
                samples, data[:N_POINTS], out_dir / "samples.png", "Model samples", labels, labels
            ),
            drawing.plot_density_2d(
                _log_prob_fn(flow, context),
                out_dir / "density.png",
                _bounds(data),
                data=data[:N_POINTS],
                title=title,
            ),
        ]
        stages = flow_stages(flow, z, c)
        if stages is not None:
            written.append(drawing.plot_flow_steps(stages, out_dir / "flow_steps.png"))
        return written
    if len(shape) == 3 and shape[0] in (1, 3):
        beside = [
            (f"Data ({min(N_IMAGES, len(data))} test images)", to_images(flow, data[:N_IMAGES]))
        ]
        if classes is not None:  # one row of samples per class
            per_row = 8
            c = torch.as_tensor(class_rows(classes, per_row))
            x = flow.sample(len(c), temperature=IMAGE_TEMPERATURE, context=c)
            title = f"Model samples, one row per class (temperature {IMAGE_TEMPERATURE})"
            grid = drawing.plot_image_grid(
                to_images(flow, x), out_dir / "samples.png", per_row, title=title, beside=beside
            )
            return [grid]
        c = None if context is None else torch.as_tensor(context[:N_IMAGES])
        n = N_IMAGES if c is None else len(c)
        images = to_images(flow, flow.sample(n, temperature=IMAGE_TEMPERATURE, context=c))
        title = f"Model samples (temperature {IMAGE_TEMPERATURE})"
        return [
            drawing.plot_image_grid(images, out_dir / "samples.png", title=title, beside=beside)
        ]
    return []
