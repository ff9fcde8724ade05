"""Dequantisation and logit preprocessing, with exact log-determinants.

``Dequantize``: integers ``x`` in 0..levels-1 -> ``y = (x + u) / levels`` in [0, 1), with
``u ~ U[0, 1)^D`` drawn in every forward pass (RealNVP, Glow); logdet ``-D log(levels)``, so the
flow's ``log_prob`` is the density of ``x + u`` at the data's integer scale. The inverse floors
back to integers. ``noise`` and ``round`` can be switched off to get the deterministic scaling
``y = x / levels`` alone (used by the numerical checks).

``Logit`` (RealNVP): ``p = alpha + (1 - 2 alpha) y``, ``z = log p - log(1 - p)``; logdet
``sum(log(1 - 2 alpha) - log p - log(1 - p))``.

Both act elementwise on any shape ``(N, ...)``; logdet has shape ``(N,)``.
"""

from __future__ import annotations

import math
from math import prod

import torch
from torch import Tensor

from flowspec.bijections.base import Bijection, sum_except_batch
from flowspec.graph.ir import OpNode


class Dequantize(Bijection):
    """Uniform dequantisation of integer data; see the module docstring."""

    def __init__(self, shape: tuple[int, ...], levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.log_levels_total = prod(shape) * math.log(levels)
        self.noise = True
        self.round = True
        # Integer data is cast to the dtype the flow was moved to (``.double()`` moves this).
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not x.is_floating_point():
            x = x.to(self._ref.dtype)
        if self.noise:
            x = x + torch.rand_like(x)
        logdet = torch.full((x.shape[0],), -self.log_levels_total, dtype=x.dtype, device=x.device)
        return x / self.levels, logdet

    def inverse(self, y: Tensor) -> Tensor:
        x = y * self.levels
        return torch.floor(x).clamp(0, self.levels - 1) if self.round else x


class Logit(Bijection):
    """RealNVP's logit map of [0, 1] to the real line; see the module docstring."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_q = torch.log(p), torch.log1p(-p)
        logdet = sum_except_batch(math.log(1 - 2 * self.alpha) - log_p - log_q)
        return log_p - log_q, logdet

    def inverse(self, z: Tensor) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)


def build_dequantize(node: OpNode) -> Dequantize:
    return Dequantize(node.in_shape, node.spec.levels)


def build_logit(node: OpNode) -> Logit:
    return Logit(node.spec.alpha)


__all__ = ["Dequantize", "Logit", "build_dequantize", "build_logit"]
