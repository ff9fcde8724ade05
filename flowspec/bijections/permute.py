"""Fixed permutation of dim 1 (features of vectors, channels of images); logdet 0."""

from __future__ import annotations

import torch
from torch import Tensor

from flowspec.bijections.base import Bijection, zeros_logdet
from flowspec.graph.ir import OpNode


class Permute(Bijection):
    """``y[:, i] = x[:, perm[i]]``. Both index tensors are saved in the weights file."""

    def __init__(self, perm: tuple[int, ...]) -> None:
        super().__init__()
        order = torch.tensor(perm, dtype=torch.long)
        self.register_buffer("perm", order)
        self.register_buffer("inverse_perm", torch.argsort(order))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zeros_logdet(x)

    def inverse(self, y: Tensor) -> Tensor:
        return y.index_select(1, self.inverse_perm)


def build_permute(node: OpNode) -> Permute:
    return Permute(node.params["perm"])
