"""Batch statistics over every process of a job: actnorm's data-dependent initialisation on
the global first batch, and synchronised batch normalisation (flow ``batchnorm`` and
``BatchNorm1d/2d`` inside conditioners). On one process nothing changes.

Both rest on :func:`flowspec.nn.base.reduced_moments` with :meth:`Ranks.reduce
<flowspec.training.distributed.Ranks.reduce>` as the sum over processes: the mean and variance
of the global batch, differentiable, so that N processes compute what one process computes on
the whole batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import reduced_moments
from flowspec.nn.flow import Flow
from flowspec.training.distributed import Ranks
from flowspec.training.evaluate import flow_dtype, to_batch
from flowspec.training.setup import data_init

__all__ = ["SynchronisedBatchNorm", "global_data_init", "synchronised_statistics"]


class SynchronisedBatchNorm(nn.BatchNorm2d):
    """``BatchNorm1d/2d`` with the statistics of every process's batch (what
    ``torch.nn.SyncBatchNorm`` does on GPUs, here on any device). A module becomes one for the
    duration of a distributed run; its parameters and buffers are untouched."""

    reduce: Any

    def _check_input_dim(self, x: Tensor) -> None:  # 1d and 2d alike
        pass

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        mean, var, n = reduced_moments(x, self.reduce)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
            flat = mean.reshape(-1), (var * n / (n - 1).clamp(min=1)).reshape(-1)
            self.running_mean.lerp_(flat[0].to(self.running_mean.dtype), factor)
            self.running_var.lerp_(flat[1].to(self.running_var.dtype), factor)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            shape = mean.shape
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


@contextlib.contextmanager
def synchronised_statistics(flow: Flow, ranks: Ranks) -> Iterator[None]:
    """Within the block, ops with batch statistics use those of the global batch: actnorm's
    initialisation, flow batchnorm and ``BatchNorm1d/2d`` in conditioners. Nothing changes on
    one process."""
    if not ranks.distributed:
        yield
        return
    ops = [m for m in flow.modules() if hasattr(type(m), "reduce")]
    norms = [m for m in flow.modules() if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)]
    classes = [type(m) for m in norms]
    for m in ops:
        m.reduce = ranks.reduce
    for m in norms:
        m.__class__ = SynchronisedBatchNorm
        m.reduce = ranks.reduce
    try:
        yield
    finally:
        for m in ops:
            del m.reduce
        for m, cls in zip(norms, classes):
            del m.reduce
            m.__class__ = cls


@torch.no_grad()
def global_data_init(
    flow: Flow, train: Any, ranks: Ranks, n: int, contexts: Tensor | None = None
) -> bool:
    """Data-dependent initialisation on the first ``n`` training examples (and their contexts):
    each process takes its share and the statistics are all-reduced (call inside
    :func:`synchronised_statistics`), so every rank sets the same parameters, equal to one
    process's init on all ``n``."""
    first = min(n, len(train))
    share = ranks.share(first) if ranks.distributed else slice(0, first)
    rows = train[share]
    context = None if contexts is None else contexts[share].to(ranks.device)
    return data_init(flow, to_batch(rows, flow_dtype(flow)).to(ranks.device), context)
