"""Images (or vectors) as token sequences: non-overlapping patches, one token per patch.

``patchify`` maps images ``(N, C, H, W)`` to ``(N, T, D)`` with ``T = (H/p) * (W/p)`` tokens of
``D = C * p * p`` values, and vectors ``(N, L)`` to ``(N, L/p, p)``. The orders are fixed
(``flowspec.layers.patchify`` states them): tokens row-major over the patch grid; inside a token,
channel-major then row-major within the patch, the order of ``torch.nn.functional.unfold`` and of
TarFlow's ``patchify``. Jet's channels-last images put the channel last inside a token instead;
the two differ by a fixed permutation of each token's values. The map only moves values, so it is
volume preserving: ``Patchify`` has logdet 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowspec.nn.base import Bijection
from flowspec.nn.emit import Emitted, literal

__all__ = ["Patchify", "build", "patchify", "unpatchify"]


def _check_patch(p: int) -> None:
    if p < 1:
        raise ValueError(f"patch size must be a positive integer, got {p}")


def patchify(x: Tensor, p: int) -> Tensor:
    """Cut images into non-overlapping ``p x p`` patches, one token each.

    Arguments:
        x: images, shape ``(N, C, H, W)``; ``H`` and ``W`` must be multiples of ``p``.
        p: patch size.

    Returns:
        Tokens of shape ``(N, (H/p) * (W/p), C * p * p)`` in the orders of the module docstring.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> patchify(x, 2)[0, 1].tolist()  # second token: the top-right 2x2 patch
        [2.0, 3.0, 6.0, 7.0]
    """
    _check_patch(p)
    if x.dim() != 4:
        raise ValueError(f"patchify expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
    x = x.reshape(n, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: Tensor, p: int, size: tuple[int, int]) -> Tensor:
    """Reassemble images from the tokens of :func:`patchify` (its exact inverse).

    Arguments:
        tokens: shape ``(N, T, D)`` with ``T = (H/p) * (W/p)`` and ``D = C * p * p``.
        p: patch size.
        size: the image size ``(H, W)``.

    Returns:
        Images of shape ``(N, C, H, W)``.

    Example:
        >>> x = torch.randn(2, 3, 4, 6)
        >>> torch.equal(unpatchify(patchify(x, 2), 2, (4, 6)), x)
        True
    """
    _check_patch(p)
    h, w = size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
    if tokens.dim() != 3:
        raise ValueError(f"unpatchify expects (N, T, D) tokens, got shape {tuple(tokens.shape)}")
    n, t, d = tokens.shape
    if t != (h // p) * (w // p) or d % (p * p):
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not tile a {h}x{w} image "
            f"with {p}x{p} patches"
        )
    x = tokens.reshape(n, h // p, w // p, d // (p * p), p, p)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(n, d // (p * p), h, w)


class Patchify(Bijection):
    """Patches as a bijection: forward images -> tokens (or vectors -> 1-D token sequences),
    inverse tokens -> images (vectors).

    Arguments:
        shape: the per-example input shape, ``(C, H, W)`` or ``(L,)``.
        p: patch size; ``H`` and ``W`` (or ``L``) must be multiples of it.

    Example:
        >>> layer = Patchify((3, 8, 8), 4)
        >>> tokens, logdet = layer(torch.randn(5, 3, 8, 8))
        >>> tuple(tokens.shape), logdet.tolist() == [0.0] * 5
        ((5, 4, 48), True)
        >>> tuple(Patchify((6,), 2)(torch.randn(5, 6))[0].shape)  # a vector: 3 tokens of 2
        (5, 3, 2)
    """

    def __init__(self, shape: tuple[int, ...], p: int) -> None:
        super().__init__()
        _check_patch(p)
        if len(shape) not in (1, 3):
            raise ValueError(f"Patchify needs a shape (C, H, W) or (L,), got {tuple(shape)}")
        if any(side % p for side in shape[-2:] if len(shape) == 3) or shape[-1] % p:
            raise ValueError(f"input shape {tuple(shape)} is not divisible by the patch size {p}")
        self.p, self.shape = p, tuple(shape)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images ``(N, C, H, W)`` -> tokens ``(N, T, D)``, or ``(N, L)`` -> ``(N, L/p, p)``;
        a zero logdet ``(N,)``."""
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if len(self.shape) == 1:
            return x.reshape(x.shape[0], -1, self.p), logdet
        return patchify(x, self.p), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        """Tokens back to images (or vectors)."""
        if len(self.shape) == 1:
            return y.reshape(y.shape[0], -1)
        return unpatchify(y, self.p, (self.shape[1], self.shape[2]))

    def extra_repr(self) -> str:
        return f"p={self.p}, shape={self.shape}"

    def emit(self) -> Emitted:
        return Emitted(f"Patchify({literal(self.shape)}, {self.p})", {"Patchify": SOURCE})


SOURCE = '''
class Patchify(nn.Module):
    """Images (N, C, H, W) -> tokens (N, (H/p) * (W/p), C * p * p), one per p x p patch,
    row-major over the patch grid, channel-major then row-major inside a token (the order of
    F.unfold); vectors (N, L) -> (N, L/p, p). Moves values only: logdet 0."""

    def __init__(self, shape: tuple[int, ...], p: int) -> None:
        super().__init__()
        self.shape, self.p = tuple(shape), p

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        p = self.p
        if len(self.shape) == 1:
            return x.reshape(x.shape[0], -1, p), logdet
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p), logdet

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        p = self.p
        if len(self.shape) == 1:
            return y.reshape(y.shape[0], -1)
        (h, w), (n, _, d) = self.shape[1:], y.shape
        x = y.reshape(n, h // p, w // p, d // (p * p), p, p)
        return x.permute(0, 3, 1, 4, 2, 5).reshape(n, d // (p * p), h, w)
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Patchify:
    return Patchify(in_shape, spec.patch)
