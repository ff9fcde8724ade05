"""Explaining a divergence: a non-finite loss, gradient or validation NLL stops training with a
:class:`~flowspec.errors.TrainingError` naming the step and the first layer whose output was not
finite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from flowspec.errors import Diagnostic, TrainingError
from flowspec.nn.flow import Flow
from flowspec.training.checkpoint import TrainState
from flowspec.training.evaluate import to_batch

__all__ = ["diverged", "first_bad_chunk", "first_bad_gradient"]


def first_bad_gradient(flow: Flow) -> str | None:
    """Name of the first parameter whose gradient holds NaN or Inf (None if all finite)."""
    for name, param in flow.named_parameters():
        if param.grad is not None and not torch.isfinite(param.grad).all():
            return name
    return None


@torch.no_grad()
def first_bad_chunk(
    flow: Flow,
    x: Any,
    dtype: torch.dtype,
    device: torch.device,
    size: int = 2048,
    context: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``size`` examples of ``x`` (and their contexts) on which some layer's output is
    not finite (read chunk by chunk), else the first chunk."""
    for start in range(0, len(x), size):
        chunk = to_batch(x[start : start + size], dtype).to(device)
        c = None if context is None else context[start : start + size].to(device)
        if flow.first_nonfinite(chunk, c) is not None:
            return chunk, c
    c = None if context is None else context[:size].to(device)
    return to_batch(x[:size], dtype).to(device), c


def diverged(
    flow: Flow,
    batch: torch.Tensor,
    state: TrainState,
    loss: float,
    checkpoint: Path | None,
    saved_step: int,
    gradient_of: str | None = None,
    phase: str = "",
    elsewhere: bool = False,
    context: torch.Tensor | None = None,
) -> TrainingError:
    """The error for a non-finite loss (or gradient, or validation NLL), naming the step and the
    first layer whose output is not finite on ``batch`` (at its ``context``, for a conditional
    flow). ``elsewhere``: on a job of several processes, this process's share of the global
    batch gave a finite loss."""
    layer = flow.first_nonfinite(batch, context)
    kinds = {step.name: step.kind for step in flow.steps}
    step = state.step if phase == "validation" else state.step + 1
    if gradient_of:
        what = f"the gradient of parameter '{gradient_of}' is not finite (loss {loss:.6g})"
    elif phase == "validation":
        what = f"the validation NLL is {loss}"
    else:
        what = f"the loss is {loss}"
    where = (
        f"first non-finite output at layer '{layer}' ({kinds[layer]})"
        if layer is not None
        else "every layer's output is finite, so the base distribution's log-density overflowed"
    )
    if elsewhere:
        where = "this process's share of the batch is finite; another process's share is not"
    largest = float(batch.abs().max()) if batch.numel() else 0.0
    keep = (
        f"the last good checkpoint is {checkpoint} (step {saved_step}); "
        if checkpoint is not None
        else ""
    )
    return TrainingError(
        Diagnostic(
            "nonfinite-loss",
            f"training diverged at step {step} (epoch {state.epoch + 1}): {what}; {where} "
            f"(largest |x| in the batch: {largest:.3g})",
            hint=keep + "lower the learning rate (--lr), keep clip_grad_norm on, or check the "
            "data for extreme values",
        )
    )
