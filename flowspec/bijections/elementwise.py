"""NICE's diagonal scaling layer: ``y = x * exp(s)``, one learned ``s`` per element."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowspec.bijections.base import Bijection
from flowspec.graph.ir import OpNode


class Scale(Bijection):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale)


def build_scale(node: OpNode) -> Scale:
    return Scale(node.in_shape)
