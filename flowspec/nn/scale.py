"""NICE's diagonal scaling layer: ``y = x * exp(s)``, one learned ``s`` per element."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import Bijection
from flowspec.nn.emit import Emitted, literal

__all__ = ["Scale", "build"]


class Scale(Bijection):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y * torch.exp(-self.log_scale)

    def emit(self) -> Emitted:
        return Emitted(f"Scale({literal(tuple(self.log_scale.shape))})", {"Scale": SOURCE})


SOURCE = '''
class Scale(nn.Module):
    """NICE's diagonal scaling: y = x * exp(s), one s per element; logdet = sum(s)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y * torch.exp(-self.log_scale)
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Scale:
    return Scale(in_shape)
