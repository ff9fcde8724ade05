"""Batch normalisation as a bijection (RealNVP).

``y = (x - mu) / sqrt(var + eps) * exp(log_gamma) + beta`` per feature/channel, with the batch's
statistics in training (running averages updated) and the running averages in eval and in
``inverse``. logdet = positions * (sum(log_gamma) - 1/2 sum(log(var + eps))), as in the course
notes' table, with the statistics taken as constants of the batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import Bijection, Reduce, broadcast_shape, reduced_moments, spatial_size
from flowspec.nn.emit import Emitted, literal

__all__ = ["BatchNormFlow", "build"]


class BatchNormFlow(Bijection):
    """Batch normalisation on ``(N, D)`` or ``(N, C, H, W)`` with learned ``log_gamma`` and
    ``beta`` per feature/channel. ``inverse`` always uses the running averages: the batch's
    statistics of ``x`` cannot be recovered from ``y``, so invert in eval mode. With ``reduce``
    set (by the distributed trainer) the statistics are those of the batch of every process,
    gradients included (synchronised batch normalisation)."""

    reduce: Reduce | None = None

    def __init__(self, shape: tuple[int, ...], momentum: float, eps: float) -> None:
        super().__init__()
        pshape = broadcast_shape(shape)
        self.log_gamma = nn.Parameter(torch.zeros(pshape))
        self.beta = nn.Parameter(torch.zeros(pshape))
        self.register_buffer("running_mean", torch.zeros(pshape))
        self.register_buffer("running_var", torch.ones(pshape))
        self.momentum, self.eps, self.positions = momentum, eps, spatial_size(shape)

    @property
    def invertible_backprop(self) -> bool:
        """In training the batch statistics of ``x`` are lost in ``y``: invertible backprop
        checkpoints this step (stores its input) instead of inverting it."""
        return not self.training

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Batch mean and (biased) variance in training, running averages otherwise."""
        if not self.training:
            return self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        if self.reduce is not None:
            mean, var, _ = reduced_moments(x, self.reduce)
        else:
            dims = [0, *range(2, x.dim())]
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, keepdim=True, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
        return mean, var

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self.statistics(x)
        y = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        logdet = self.positions * (self.log_gamma.sum() - 0.5 * torch.log(var + self.eps).sum())
        return y, logdet.expand(x.shape[0])

    def check_state(self) -> list[str]:
        """Running variances must be positive (they are divided by)."""
        bad = not bool((self.running_var.detach() + self.eps > 0).all())
        return ["running_var: values <= -eps (a variance is positive)"] if bad else []

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        mean, var = self.running_mean.to(y.dtype), self.running_var.to(y.dtype)
        return (y - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps) + mean

    def inverse_and_logdet(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The inverse with the running averages (as ``inverse``) and its log-determinant."""
        var = self.running_var.to(y.dtype)
        logdet = self.positions * (0.5 * torch.log(var + self.eps).sum() - self.log_gamma.sum())
        return self.inverse(y), logdet.expand(y.shape[0])

    def emit(self) -> Emitted:
        args = (
            f"{literal(tuple(self.beta.shape))}, {self.momentum!r}, {self.eps!r}, {self.positions}"
        )
        return Emitted(f"BatchNormFlow({args})", {"BatchNormFlow": SOURCE})


SOURCE = '''
class BatchNormFlow(nn.Module):
    """Batch normalisation as a bijection (RealNVP): y = (x - mu) / sqrt(var + eps) *
    exp(log_gamma) + beta per feature/channel, with the batch's statistics in training (running
    averages updated) and the running averages in eval mode and in inverse; logdet = positions
    * (sum(log_gamma) - 1/2 sum(log(var + eps)))."""

    def __init__(self, shape: tuple[int, ...], momentum: float, eps: float, positions: int):
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.momentum, self.eps, self.positions = momentum, eps, positions

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
        return mean, var

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = self.statistics(x)
        y = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        logdet = self.positions * (self.log_gamma.sum() - 0.5 * torch.log(var + self.eps).sum())
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        mean, var = self.running_mean.to(y.dtype), self.running_var.to(y.dtype)
        return (y - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps) + mean
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> BatchNormFlow:
    return BatchNormFlow(in_shape, spec.momentum, spec.eps)
