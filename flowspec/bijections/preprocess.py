"""Dequantisation and logit preprocessing, with exact log-determinants.

``Dequantize``: y = (x + u) / levels, u ~ U[0, 1)^D drawn in every forward pass, logdet
-D log(levels); inverse floors to integers 0..levels-1. ``noise`` and ``round`` can be switched
off to get the deterministic scaling alone (used by the numerical checks).
``Logit``: p = alpha + (1 - 2 alpha) y, z = log p - log(1 - p).
"""

from __future__ import annotations

import math
from math import prod

import torch
from torch import Tensor

from flowspec.bijections.base import Bijection, sum_except_batch
from flowspec.graph.ir import OpNode


class Dequantize(Bijection):
    def __init__(self, shape: tuple[int, ...], levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.log_levels_total = prod(shape) * math.log(levels)
        self.noise = True
        self.round = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(torch.get_default_dtype()) if not x.is_floating_point() else x
        if self.noise:
            x = x + torch.rand_like(x)
        logdet = torch.full((x.shape[0],), -self.log_levels_total, dtype=x.dtype, device=x.device)
        return x / self.levels, logdet

    def inverse(self, y: Tensor) -> Tensor:
        x = y * self.levels
        return torch.floor(x).clamp(0, self.levels - 1) if self.round else x


class Logit(Bijection):
    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(p) - torch.log1p(-p)
        logdet = sum_except_batch(math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p))
        return z, logdet

    def inverse(self, z: Tensor) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)


def build_dequantize(node: OpNode) -> Dequantize:
    return Dequantize(node.in_shape, node.spec.levels)


def build_logit(node: OpNode) -> Logit:
    return Logit(node.spec.alpha)


__all__ = ["Dequantize", "Logit", "build_dequantize", "build_logit"]
