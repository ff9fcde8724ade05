"""Invertible 1x1 convolution (Glow): a learned C x C matrix applied at every position.

Plain: logdet = positions * slogdet(W). LU: ``W = P L (U + diag(sign * exp(log_s)))`` with P and
sign fixed, L unit-lower and U strictly upper, logdet = positions * sum(log_s) in O(C). Both start
from the same seeded random rotation. For vectors it is a learned D x D linear map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.nn.base import Bijection, spatial_size
from flowspec.nn.emit import Emitted

__all__ = ["InvConv", "build", "random_rotation"]


def random_rotation(n: int, seed: int) -> Tensor:
    """A seeded random orthogonal matrix (QR of a Gaussian matrix), float64."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q


class InvConv(Bijection):
    """``y[:, :, i, j] = W x[:, :, i, j]`` on ``(N, C, H, W)`` (``y = x W^T`` on ``(N, D)``);
    logdet ``H * W * log|det W|``. With ``lu`` the parameters are the full ``lower`` and
    ``upper`` matrices (only their strict triangles are used) and ``log_s``; ``p`` and ``sign``
    are fixed buffers, saved with the weights."""

    def __init__(self, shape: tuple[int, ...], lu: bool, seed: int) -> None:
        super().__init__()
        n = shape[0]
        self.positions, self.lu = spatial_size(shape), lu
        # Drawn in float64, stored like any new tensor: the default dtype and row-major (QR's
        # column-major Q would make slogdet differ in the last bits from the saved, reloaded W).
        w = random_rotation(n, seed).contiguous()
        dtype = torch.get_default_dtype()
        if lu:
            p, lower, upper = (t.contiguous() for t in torch.linalg.lu(w))
            s = torch.diagonal(upper)
            self.register_buffer("p", p.to(dtype))
            self.register_buffer("sign", torch.sign(s).to(dtype))
            self.register_buffer("lower_mask", torch.tril(torch.ones(n, n), -1), persistent=False)
            self.register_buffer("eye", torch.eye(n), persistent=False)
            self.lower = nn.Parameter(lower.to(dtype))
            self.upper = nn.Parameter(torch.triu(upper, 1).to(dtype))
            self.log_s = nn.Parameter(torch.log(torch.abs(s)).to(dtype))
        else:
            self.weight = nn.Parameter(w.to(dtype))
        self._frozen: tuple[Tensor, Tensor, Tensor] | None = None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within: W, its inverse and the log-determinant are constants computed once (for
        export: ONNX has no matrix inverse, and a fixed model need not recompute them)."""
        with torch.no_grad():
            w = self.matrix()
            self._frozen = (w, torch.linalg.inv(w), self.positions * self.log_abs_det())
        try:
            yield
        finally:
            self._frozen = None

    def matrix(self) -> Tensor:
        """The C x C weight W."""
        if not self.lu:
            return self.weight
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def check_state(self) -> list[str]:
        """LU: ``p`` a permutation matrix and ``sign`` all +-1 (with finite ``log_s`` the
        matrix is invertible); plain: a weight with a finite, non-zero determinant."""
        if not self.lu:
            logdet = torch.linalg.slogdet(self.weight.detach().double())[1]
            return [] if bool(torch.isfinite(logdet)) else ["weight: a singular matrix"]
        problems = []
        p = self.p.detach()
        ones = torch.ones(p.shape[0], dtype=p.dtype)
        binary = bool(((p == 0) | (p == 1)).all())
        if not (binary and torch.equal(p.sum(0), ones) and torch.equal(p.sum(1), ones)):
            problems.append("p: not a permutation matrix")
        if not bool((self.sign.detach().abs() == 1).all()):
            problems.append("sign: entries other than +1 and -1 (a singular matrix)")
        return problems

    def log_abs_det(self) -> Tensor:
        return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    def _mix_channels(self, x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.T
        return F.conv2d(x, w.reshape(*w.shape, 1, 1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self._frozen is not None:
            w, _, logdet = self._frozen
            return self._mix_channels(x, w.to(x.dtype)), logdet.to(x.dtype).expand(x.shape[0])
        w = self.matrix().to(x.dtype)
        logdet = (self.positions * self.log_abs_det()).to(x.dtype)
        return self._mix_channels(x, w), logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        if self._frozen is not None:
            return self._mix_channels(y, self._frozen[1].to(y.dtype))
        return self._mix_channels(y, torch.linalg.inv(self.matrix().to(y.dtype)))

    def inverse_and_forward(
        self, y: Tensor, context: Tensor | None, need_input: bool
    ) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        """Invertible backprop: ``x`` rebuilt from ``y`` and the forward graph on a leaf
        holding it, with ``W`` built once for both (see :mod:`flowspec.nn.invertible`)."""
        w = self.matrix().to(y.dtype)
        with torch.no_grad():
            x = _mix_by_product(y, torch.linalg.inv(w.detach()))
        leaf = x.detach().requires_grad_(need_input)
        logdet = (self.positions * self.log_abs_det()).to(y.dtype)
        return x, [leaf], _mix_by_product(leaf, w), logdet.expand(y.shape[0])

    def emit(self) -> Emitted:
        n = (self.lower if self.lu else self.weight).shape[0]
        return Emitted(f"InvConv({n}, {self.positions}, {self.lu})", {"InvConv": SOURCE})


SOURCE = '''
class InvConv(nn.Module):
    """Invertible 1x1 convolution (Glow): y[:, :, i, j] = W x[:, :, i, j] (y = x W^T on
    vectors); logdet = H * W * log|det W|. With lu, W = P L (U + diag(sign * exp(log_s))),
    L unit-lower, U strictly upper, and log|det W| = sum(log_s)."""

    def __init__(self, channels: int, positions: int, lu: bool) -> None:
        super().__init__()
        n, self.positions, self.lu = channels, positions, lu
        if lu:
            self.register_buffer("p", torch.zeros(n, n))
            self.register_buffer("sign", torch.zeros(n))
            self.register_buffer("lower_mask", torch.tril(torch.ones(n, n), -1), persistent=False)
            self.register_buffer("eye", torch.eye(n), persistent=False)
            self.lower = nn.Parameter(torch.zeros(n, n))
            self.upper = nn.Parameter(torch.zeros(n, n))
            self.log_s = nn.Parameter(torch.zeros(n))
        else:
            self.weight = nn.Parameter(torch.zeros(n, n))

    def matrix(self) -> Tensor:
        if not self.lu:
            return self.weight
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def log_abs_det(self) -> Tensor:
        return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    def _mix_channels(self, x: Tensor, w: Tensor) -> Tensor:
        if x.dim() == 2:
            return x @ w.T
        return F.conv2d(x, w.reshape(*w.shape, 1, 1))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.matrix().to(x.dtype)
        logdet = (self.positions * self.log_abs_det()).to(x.dtype)
        return self._mix_channels(x, w), logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return self._mix_channels(y, torch.linalg.inv(self.matrix().to(y.dtype)))
'''


def _mix_by_product(x: Tensor, w: Tensor) -> Tensor:
    """``W x`` at every position as a product: the same map as the 1x1 convolution, several
    times faster on small images (a convolution call costs ~40 us whatever its size)."""
    return x @ w.T if x.dim() == 2 else torch.einsum("ij,nj...->ni...", w, x)


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> InvConv:
    return InvConv(in_shape, spec.lu, params["seed"] % (2**31))
