"""Fixed permutation of dim 1 (features of vectors, channels of images); logdet 0."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowspec.nn.base import Bijection, zeros_logdet
from flowspec.nn.emit import Emitted

__all__ = ["Permute", "build"]


class Permute(Bijection):
    """``y[:, i] = x[:, perm[i]]``. Both index tensors are saved in the weights file."""

    def __init__(self, perm: tuple[int, ...]) -> None:
        super().__init__()
        order = torch.tensor(perm, dtype=torch.long)
        self.spec_perm = tuple(perm)  # what the spec defines; a loaded file must agree
        self.register_buffer("perm", order)
        self.register_buffer("inverse_perm", torch.argsort(order))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zeros_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y.index_select(1, self.inverse_perm)

    def check_state(self) -> list[str]:
        """``perm`` must be the permutation the spec defines and ``inverse_perm`` its inverse."""
        perm, inverse = self.perm.tolist(), self.inverse_perm.tolist()
        n = len(self.spec_perm)
        if sorted(perm) != list(range(n)):
            return [f"perm: not a permutation of 0..{n - 1} ({_shown(perm)})"]
        problems = []
        if tuple(perm) != self.spec_perm:
            problems.append(f"perm: not the permutation the spec defines ({_shown(perm)})")
        if any(inverse[p] != i for i, p in enumerate(perm)) or len(inverse) != n:
            problems.append("inverse_perm: not the inverse of perm")
        return problems

    def emit(self) -> Emitted:
        return Emitted(f"Permute({len(self.perm)})", {"Permute": SOURCE})


def _shown(values: list[int]) -> str:
    return ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")


SOURCE = '''
class Permute(nn.Module):
    """A fixed permutation of dim 1: y[:, i] = x[:, perm[i]]; logdet 0 (perm from the file)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("perm", torch.arange(size))
        self.register_buffer("inverse_perm", torch.arange(size))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zeros_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y.index_select(1, self.inverse_perm)
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Permute:
    return Permute(params["perm"])
