"""Scoring a flow on data: mean NLL in nats per example and bits per dimension.

Used by the trainer (validation) and by ``flowspec eval`` (test), so both report the same
numbers. Evaluation runs in eval mode, without gradients, and under its own seeded random
stream: dequantisation noise is the same on every call and the caller's random state (the
training stream) is left untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from flowspec.nn.flow import Flow

__all__ = [
    "EVAL_BATCH",
    "Score",
    "as_tensor",
    "context_tensor",
    "evaluate",
    "flow_dtype",
    "reports_bits",
    "to_batch",
]

EVAL_BATCH = 2048


@dataclass(frozen=True)
class Score:
    """Mean negative log-likelihood of ``n`` examples, in nats and in bits per dimension."""

    nll: float
    bits_per_dim: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"nll": self.nll, "bits_per_dim": self.bits_per_dim, "n": self.n}


def as_tensor(x: np.ndarray | Tensor) -> Tensor:
    """Data as a float32 tensor (integer data stays exact: levels are small integers)."""
    t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x
    return t.to(torch.float32)


def to_batch(x: Any, dtype: torch.dtype = torch.float32) -> Tensor:
    """Some examples (numpy, :class:`~flowspec.data.Rows` rows or torch) as a tensor: floats in
    ``dtype``, integers kept as integers (the flow casts them on its device, so a uint8 batch
    travels four times smaller than a float32 one)."""
    if isinstance(x, Tensor):
        t = x
    else:
        arr = np.ascontiguousarray(x)
        if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:  # torch's unsigned support is thin
            arr = arr.astype(np.int64)
        t = torch.from_numpy(arr)
    return t.to(dtype) if t.is_floating_point() else t


def flow_dtype(flow: Flow) -> torch.dtype:
    """The floating dtype the flow computes in (float32 unless it was moved, e.g. ``.double()``)."""
    return next((b.dtype for b in flow.buffers() if b.is_floating_point()), torch.float32)


def context_tensor(context: np.ndarray | Tensor | None) -> Tensor | None:
    """A context as a tensor: integer labels stay int64, vectors become float32."""
    if context is None:
        return None
    t = torch.as_tensor(context) if isinstance(context, np.ndarray) else context
    return t.long() if not t.is_floating_point() else t.to(torch.float32)


def reports_bits(flow: Flow, discrete_levels: int | None) -> bool:
    """Bits/dim is the customary unit for discrete data and for images."""
    return discrete_levels is not None or len(flow.input_shape) == 3


@torch.no_grad()
def evaluate(
    flow: Flow,
    x: Any,
    batch_size: int = EVAL_BATCH,
    seed: int = 0,
    context: np.ndarray | Tensor | None = None,
) -> Score:
    """Score ``flow`` on examples ``x`` of shape ``(N, *flow.input_shape)``.

    Arguments:
        flow: the model; put in eval mode for the call and restored afterwards.
        x: the examples (numpy, :class:`~flowspec.data.Rows` or torch; read and moved to the
            flow's device batch by batch).
        batch_size: examples per forward pass.
        seed: seeds the random stream used by stochastic ops (dequantisation).
        context: the examples' contexts, for a conditional flow (scores log p(x | context)).

    Returns:
        The mean NLL (nats per example) and bits per dimension over all of ``x``.
    """
    contexts = context_tensor(context)
    device = next((b.device for b in flow.buffers()), torch.device("cpu"))
    dtype, n = flow_dtype(flow), len(x)
    training = flow.training
    flow.eval()
    total = 0.0
    try:
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(seed)
            for start in range(0, n, batch_size):  # read (memory-mapped data) batch by batch
                batch = to_batch(x[start : start + batch_size], dtype).to(device)
                c = None if contexts is None else contexts[start : start + batch_size].to(device)
                total += float(-flow.log_prob(batch, c).double().sum())
    finally:
        flow.train(training)
    nll = total / max(n, 1)
    return Score(nll=nll, bits_per_dim=nll / (flow.dim * math.log(2.0)), n=n)
