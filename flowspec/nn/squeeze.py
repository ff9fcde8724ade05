"""Squeeze: (N, C, H, W) -> (N, 4C, H/2, W/2); channel 4c + 2dy + dx holds (c, 2i+dy, 2j+dx)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from flowspec.nn.base import Bijection, zeros_logdet
from flowspec.nn.emit import Emitted

__all__ = ["Squeeze", "build"]


class Squeeze(Bijection):
    """``(N, C, H, W) -> (N, 4C, H/2, W/2)``, a pure reshuffle (logdet 0)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), zeros_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        n, c4, h2, w2 = y.shape
        x = y.reshape(n, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h2, 2 * w2)

    def emit(self) -> Emitted:
        return Emitted("Squeeze()", {"Squeeze": SOURCE})


SOURCE = '''
class Squeeze(nn.Module):
    """(N, C, H, W) -> (N, 4C, H/2, W/2); channel 4c + 2dy + dx holds (c, 2i+dy, 2j+dx)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), zeros_logdet(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        n, c4, h2, w2 = y.shape
        x = y.reshape(n, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h2, 2 * w2)
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Squeeze:
    return Squeeze()
