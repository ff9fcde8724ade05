"""Actnorm (Glow): ``y = x * exp(log_scale) + bias`` per feature or channel.

The first forward batch sets ``log_scale`` and ``bias`` so that the output has zero mean and unit
variance per feature/channel. The buffer ``initialized`` records that this happened and is saved
with the weights, so a loaded model is never initialised again; a plain Python mirror of it keeps
the check out of the traced graph (``torch.compile`` guards on it instead of breaking).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import (
    Bijection,
    Reduce,
    broadcast_shape,
    channel_dim,
    reduced_moments,
    spatial_size,
)
from flowspec.nn.emit import Emitted, literal

__all__ = ["ActNorm", "build"]


class ActNorm(Bijection):
    """``y = x * exp(log_scale) + bias`` on ``(N, D)``, ``(N, C, H, W)`` or tokens
    ``(N, T, D)``: one scale and bias per feature/channel/token value (parameters ``(1, D)`` /
    ``(1, C, 1, 1)`` / ``(1, 1, D)``), shared over the H x W (or T) positions, so the logdet is
    ``positions * sum(log_scale)`` for every example. With ``reduce`` set (by the distributed
    trainer) the initialisation uses the statistics of the batch of every process."""

    reduce: Reduce | None = None

    def __init__(self, shape: tuple[int, ...], data_init: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(broadcast_shape(shape)))
        self.bias = nn.Parameter(torch.zeros(broadcast_shape(shape)))
        self.positions = spatial_size(shape)
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(not data_init, dtype=torch.bool))
        self._initialized = not data_init
        self.register_load_state_dict_post_hook(_sync_flag)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set the parameters from batch ``x`` so that the output has zero mean and unit
        (biased) variance per feature/channel over the batch and the positions."""
        if self.reduce is not None:
            mean, var, count = reduced_moments(x, self.reduce)
            std = var.sqrt() if count > 1 else torch.ones_like(mean)
        else:
            channel = channel_dim(x)
            dims = [d for d in range(x.dim()) if d != channel]
            mean = x.mean(dim=dims, keepdim=True)
            # One value per feature (a single vector) has no spread: then only centre it.
            std = (
                x.std(dim=dims, keepdim=True, unbiased=False)
                if x.numel() > x.shape[channel]
                else torch.ones_like(mean)
            )
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.bias.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)
        self._initialized = True

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self._initialized:
            self.initialize(x)
        logdet = self.log_scale.sum() * self.positions
        return x * torch.exp(self.log_scale) + self.bias, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return (y - self.bias) * torch.exp(-self.log_scale)

    def inverse_and_logdet(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = -self.log_scale.sum() * self.positions
        return self.inverse(y), logdet.expand(y.shape[0])

    def emit(self) -> Emitted:
        shape = literal(tuple(self.log_scale.shape))
        return Emitted(f"ActNorm({shape}, {self.positions}, {self.eps!r})", {"ActNorm": SOURCE})


SOURCE = '''
class ActNorm(nn.Module):
    """Actnorm (Glow): y = x * exp(log_scale) + bias, one scale and bias per feature/channel
    (per token value on token sequences (N, T, D)), shared over the positions;
    logdet = positions * sum(log_scale). The first forward batch of a file that
    was never run on data sets them so that the output has zero mean and unit variance."""

    def __init__(self, shape: tuple[int, ...], positions: int, eps: float) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))
        self.positions, self.eps = positions, eps

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        channel = 2 if x.dim() == 3 else 1
        dims = [d for d in range(x.dim()) if d != channel]
        mean = x.mean(dim=dims, keepdim=True)
        std = (
            x.std(dim=dims, keepdim=True, unbiased=False)
            if x.numel() > x.shape[channel]
            else torch.ones_like(mean)
        )
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.bias.copy_(-mean * torch.exp(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not bool(self.initialized):
            self.initialize(x)
        logdet = self.log_scale.sum() * self.positions
        return x * torch.exp(self.log_scale) + self.bias, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return (y - self.bias) * torch.exp(-self.log_scale)
'''


def _sync_flag(module: nn.Module, incompatible_keys: object) -> None:
    module._initialized = bool(module.initialized)


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> ActNorm:
    return ActNorm(in_shape, data_init=spec.data_init)
