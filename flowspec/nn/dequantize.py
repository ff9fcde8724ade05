"""Uniform dequantisation of integer data, with its exact log-determinant.

``Dequantize``: integers ``x`` in 0..levels-1 -> ``y = (x + u) / levels`` in [0, 1), with
``u ~ U[0, 1)^D`` drawn in every forward pass (RealNVP, Glow); logdet ``-D log(levels)``, so the
flow's ``log_prob`` is the density of ``x + u`` at the data's integer scale. The inverse floors
back to integers. With Gaussian noise augmentation (``sigma``), training mode draws
``y = (x + 1/2) / levels + sigma * e``, ``e ~ N(0, I)``, and eval mode stays uniform (see
``flowspec.layers.dequantize``). ``noise`` and ``round`` can be switched off to get the
deterministic scaling ``y = x / levels`` alone (used by the numerical oracles). Elementwise on any
shape ``(N, ...)``.
"""

from __future__ import annotations

import math
from math import prod
from typing import Any

import torch
from torch import Tensor

from flowspec.nn.base import Bijection
from flowspec.nn.emit import Emitted

__all__ = ["Dequantize", "build"]


class Dequantize(Bijection):
    """Uniform dequantisation of integer data; see the module docstring."""

    def __init__(self, shape: tuple[int, ...], levels: int, sigma: float | None = None) -> None:
        super().__init__()
        self.levels = levels
        # Gaussian noise augmentation, in units of one level (None: uniform dequantisation)
        self.noise_levels = None if sigma is None else sigma * levels
        self.log_levels_total = prod(shape) * math.log(levels)
        self.noise = True
        self.round = True
        # Integer data is cast to the dtype the flow was moved to (``.double()`` moves this).
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    @property
    def invertible_backprop(self) -> bool:
        """Noise and rounding make ``x`` unrecoverable from ``y``: invertible backprop
        checkpoints this step (its input stored, its noise replayed) unless both are off."""
        return not (self.noise or self.round)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not x.is_floating_point():
            x = x.to(self._ref.dtype)
        if self.noise and self.noise_levels is not None and self.training:
            x = x + 0.5 + self.noise_levels * torch.randn_like(x)
        elif self.noise:
            x = x + torch.rand_like(x)
        logdet = torch.full((x.shape[0],), -self.log_levels_total, dtype=x.dtype, device=x.device)
        return x / self.levels, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        x = y * self.levels
        return torch.floor(x).clamp(0, self.levels - 1) if self.round else x

    def inverse_and_logdet(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The inverse and ``+D log(levels)``: the log-determinant of ``y -> levels * y``, so a
        sample's density is that of the continuous value before rounding, at the integer
        scale (as ``log_prob`` scores ``x + u``)."""
        logdet = torch.full((y.shape[0],), self.log_levels_total, dtype=y.dtype, device=y.device)
        return self.inverse(y), logdet

    def emit(self) -> Emitted:
        expr = f"Dequantize({self.levels}, {self.log_levels_total!r})"
        if self.noise_levels is not None:  # Gaussian noise augmentation in training mode
            expr = f"{expr[:-1]}, noise_levels={self.noise_levels!r})"
        return Emitted(expr, {"Dequantize": SOURCE})


SOURCE = '''
class Dequantize(nn.Module):
    """Uniform dequantisation: integers x in 0..levels-1 -> (x + u) / levels with u ~ U[0, 1)
    drawn in every forward pass (noise=False: x / levels); logdet = -D log(levels). The inverse
    floors back to integers (round=False: no flooring). With noise_levels (Gaussian noise
    augmentation, in units of one level) training mode draws (x + 1/2 + noise_levels * e) /
    levels, e ~ N(0, I), instead."""

    def __init__(
        self, levels: int, log_levels_total: float, noise_levels: float | None = None
    ) -> None:
        super().__init__()
        self.levels, self.log_levels_total = levels, log_levels_total
        self.noise_levels = noise_levels
        self.noise, self.round = True, True
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not x.is_floating_point():
            x = x.to(self._ref.dtype)
        if self.noise and self.noise_levels is not None and self.training:
            x = x + 0.5 + self.noise_levels * torch.randn_like(x)
        elif self.noise:
            x = x + torch.rand_like(x)
        logdet = torch.full((x.shape[0],), -self.log_levels_total, dtype=x.dtype, device=x.device)
        return x / self.levels, logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        x = y * self.levels
        return torch.floor(x).clamp(0, self.levels - 1) if self.round else x
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Dequantize:
    sigma = spec.noise.sigma if spec.noise.type == "gaussian" else None
    return Dequantize(in_shape, spec.levels, sigma)
