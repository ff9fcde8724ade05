"""RealNVP's logit map of [0, 1] to the real line, with its exact log-determinant.

``p = alpha + (1 - 2 alpha) y``, ``z = log p - log(1 - p)``; logdet
``sum(log(1 - 2 alpha) - log p - log(1 - p))``. Elementwise on any shape ``(N, ...)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from flowspec.nn.base import Bijection, sum_except_batch
from flowspec.nn.emit import Emitted

__all__ = ["Logit", "build"]


class Logit(Bijection):
    """RealNVP's logit map of [0, 1] to the real line; see the module docstring."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_q = torch.log(p), torch.log1p(-p)
        logdet = sum_except_batch(math.log(1 - 2 * self.alpha) - log_p - log_q)
        return log_p - log_q, logdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)

    def inverse_and_logdet(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The inverse and ``sum(log sigmoid'(z)) - D log(1 - 2 alpha)``, computed from ``z``
        (stable where ``x`` rounds to 0 or 1)."""
        slopes = -F.softplus(-z) - F.softplus(z) - math.log(1 - 2 * self.alpha)
        return self.inverse(z), sum_except_batch(slopes)

    def emit(self) -> Emitted:
        return Emitted(f"Logit({self.alpha!r})", {"Logit": SOURCE})


SOURCE = '''
class Logit(nn.Module):
    """RealNVP's logit: p = alpha + (1 - 2 alpha) y, z = log p - log(1 - p);
    logdet = sum(log(1 - 2 alpha) - log p - log(1 - p))."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_q = torch.log(p), torch.log1p(-p)
        logdet = sum_except_batch(math.log(1 - 2 * self.alpha) - log_p - log_q)
        return log_p - log_q, logdet

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Logit:
    return Logit(spec.alpha)
