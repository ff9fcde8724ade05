"""Fixed permutation of dim 1 (features of vectors, channels of images); logdet 0."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowspec.nn.base import Bijection, zeros_logdet

__all__ = ["Permute", "build"]


class Permute(Bijection):
    """``y[:, i] = x[:, perm[i]]``. Both index tensors are saved in the weights file."""

    def __init__(self, perm: tuple[int, ...]) -> None:
        super().__init__()
        order = torch.tensor(perm, dtype=torch.long)
        self.register_buffer("perm", order)
        self.register_buffer("inverse_perm", torch.argsort(order))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zeros_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y.index_select(1, self.inverse_perm)


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Permute:
    return Permute(params["perm"])
