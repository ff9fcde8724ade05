"""The figures of a training run, drawn with :mod:`flowspec.training.drawing` from a trained flow.

``loss.png`` always; ``samples.png`` for 2-D data (model samples beside data) and for images (a
grid); for 2-D flows also ``flow_steps.png`` (the course notes' figure: noise pushed back through
the flow one scheduled op at a time) and ``density.png`` (a heat map of the model density).
Sampling runs under its own seeded random stream, so drawing figures never changes training.
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

__all__ = ["flow_stages", "to_images", "write_run_figures"]

N_POINTS = 2000
N_IMAGES = 64
IMAGE_TEMPERATURE = 0.8
MAX_STAGES = 24


def to_images(flow: Flow, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Samples as images in [0, 1]: integer levels are divided by ``levels - 1``."""
    arr = np.asarray(x, dtype=np.float64)
    levels = flow.discrete_levels
    return np.clip(arr / (levels - 1) if levels else arr, 0.0, 1.0)


def flow_stages(flow: Flow, z: torch.Tensor) -> list[tuple[str, np.ndarray]] | None:
    """Latent points pushed back through the flow, one step at a time, as ``(title, points)``
    panels (None unless a 2-D flow without splits). Each title names the step just inverted by
    its instance name and kind (``layers.0.9.1 (affine_coupling)``)."""
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

    flow.decode([z], observe=record)
    if len(stages) > MAX_STAGES:
        keep = np.unique(np.linspace(0, len(stages) - 1, MAX_STAGES).round().astype(int))
        stages = [stages[i] for i in keep]
    return stages


def _log_prob_fn(flow: Flow) -> Any:
    def log_prob(points: np.ndarray) -> np.ndarray:
        out = [
            flow.log_prob(as_tensor(chunk)).double().numpy()
            for chunk in np.split(points, range(4096, len(points), 4096))
        ]
        return np.concatenate(out)

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
) -> list[Path]:
    """Draw the run's figures into ``out_dir``; return the files written.

    Arguments:
        flow: the trained model (best weights).
        data: held-out examples to draw beside the samples, ``(N, *input_shape)``.
        history: the metrics rows (``metrics.jsonl``).
        out_dir: the run directory.
        seed: seeds the sampling.
        bits: give the loss figure its bits/dim panel (discrete data and images).
    """
    loss = drawing.plot_loss(list(history), out_dir / "loss.png", bits=bits, dim=flow.dim)
    written = [loss]
    device = next(flow.buffers()).device
    training = flow.training
    flow.eval().cpu()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            written += _draw_samples(flow, data, out_dir)
    finally:
        flow.to(device).train(training)
    return written


def _draw_samples(flow: Flow, data: np.ndarray, out_dir: Path) -> list[Path]:
    shape = flow.input_shape
    if shape == (2,):
        z = flow.base.sample(N_POINTS)
        samples = flow.inverse(z).numpy()
        written = [
            drawing.plot_samples_2d(samples, data[:N_POINTS], out_dir / "samples.png"),
            drawing.plot_density_2d(
                _log_prob_fn(flow), out_dir / "density.png", _bounds(data), data=data[:N_POINTS]
            ),
        ]
        stages = flow_stages(flow, z)
        if stages is not None:
            written.append(drawing.plot_flow_steps(stages, out_dir / "flow_steps.png"))
        return written
    if len(shape) == 3 and shape[0] in (1, 3):
        images = to_images(flow, flow.sample(N_IMAGES, temperature=IMAGE_TEMPERATURE))
        title = f"Model samples (temperature {IMAGE_TEMPERATURE})"
        beside = [
            (f"Data ({min(N_IMAGES, len(data))} test images)", to_images(flow, data[:N_IMAGES]))
        ]
        return [
            drawing.plot_image_grid(images, out_dir / "samples.png", title=title, beside=beside)
        ]
    return []
