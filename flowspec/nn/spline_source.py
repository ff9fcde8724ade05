"""The rational-quadratic spline as plain PyTorch source, for ``flowspec export -o model.py``.

:data:`SPLINE_SOURCE` is what :meth:`flowspec.nn.transforms.Spline.emit` writes into a generated
file: the functions of :mod:`flowspec.nn.spline` without the argument checks (the compiled flow
was checked already) and a ``Spline`` transform class, performing the same tensor operations in
the same order, so a generated model reproduces flowspec's spline couplings and autoregressive
layers bit for bit (``tests/test_export.py`` checks it on every shipped spec and catalogue
example). A change to :mod:`flowspec.nn.spline` must be mirrored here.

Example:
    >>> "def rq_spline(" in SPLINE_SOURCE and "class Spline:" in SPLINE_SOURCE
    True
"""

from __future__ import annotations

__all__ = ["SPLINE_SOURCE"]

SPLINE_SOURCE = '''
# Rational-quadratic spline on [-B, B] with identity tails (Durkan et al. 2019). Per element
# 3K - 1 raw parameters [K widths | K heights | K - 1 inner derivatives]; widths and heights are
# floored softmax fractions of 2B, inner derivatives min_derivative + softplus(raw + c) with raw 0
# giving 1, outer derivatives 1. Out-of-domain inputs are replaced by an in-domain value before
# the spline math, so values and gradients stay finite everywhere.


def spline_edges(raw: Tensor, bound: float, minimum: float) -> Tensor:
    """Softmax fractions with a floor -> knot positions (..., K + 1), ends exactly +-B."""
    k = raw.shape[-1]
    fractions = minimum + (1.0 - minimum * k) * torch.softmax(raw, dim=-1)
    inner = 2.0 * bound * torch.cumsum(fractions, dim=-1)[..., :-1] - bound
    end = torch.full_like(raw[..., :1], bound)
    return torch.cat([-end, inner, end], dim=-1)


def rq_knots(
    params: Tensor,
    bound: float,
    min_bin_width: float,
    min_bin_height: float,
    min_derivative: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Raw parameters (..., 3K - 1) -> knot positions x, y and derivatives d, each (..., K + 1)."""
    bins = (params.shape[-1] + 1) // 3
    raw_w, raw_h, raw_d = params.split([bins, bins, bins - 1], dim=-1)
    offset = math.log(math.expm1(1.0 - min_derivative))
    one = torch.ones_like(raw_w[..., :1])
    inner_d = min_derivative + F.softplus(raw_d + offset)
    return (
        spline_edges(raw_w, bound, min_bin_width),
        spline_edges(raw_h, bound, min_bin_height),
        torch.cat([one, inner_d, one], dim=-1),
    )


def spline_bin(v: Tensor, src: Tensor, *knots: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The bin of an in-domain v among the knots src; each knot tensor's two values at its ends."""
    index = (v.unsqueeze(-1) >= src[..., 1:-1]).sum(dim=-1, keepdim=True)
    pair = torch.cat([index, index + 1], dim=-1)
    return [tuple(k.gather(-1, pair).unbind(-1)) for k in (src, *knots)]


def segment_logabsdet(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised bin map xi -> t (both in [0, 1]) and log dy/dx."""
    one_minus = 1.0 - xi
    mixed = xi * one_minus
    denominator = s * (xi.square() + one_minus.square()) + (d0 + d1) * mixed
    t = (s * xi.square() + d0 * mixed) / denominator
    numerator = d1 * xi.square() + 2.0 * s * mixed + d0 * one_minus.square()
    return t, 2.0 * torch.log(s) + torch.log(numerator) - 2.0 * torch.log(denominator)


def bin_root(t: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """The bin position xi in [0, 1] of a normalised height t: the quadratic's root, written
    without cancellation in either branch."""
    b = d0 - t * (d0 + d1 - 2.0 * s)
    r = torch.sqrt(((d0 * (1.0 - t) - d1 * t).square() + 4.0 * s.square() * t * (1.0 - t)).clamp(0))
    magnitude = b.abs()
    xi = torch.where(
        b >= 0, 2.0 * s * t / (magnitude + r), (r + magnitude) / (2.0 * (s + magnitude))
    )
    return xi.clamp(0.0, 1.0)


def rq_spline(
    x: Tensor,
    params: Tensor,
    bound: float,
    inverse: bool,
    min_bin_width: float,
    min_bin_height: float,
    min_derivative: float,
) -> tuple[Tensor, Tensor]:
    """The spline (or its inverse) elementwise: (y, log|dy/dx|), both shaped like x."""
    knots = rq_knots(params, bound, min_bin_width, min_bin_height, min_derivative)
    shape = (*x.shape, knots[0].shape[-1])
    kx, ky, kd = (k.expand(shape) for k in knots)
    src, dst = (ky, kx) if inverse else (kx, ky)
    lo, hi = src[..., 0], src[..., -1]
    inside = (x >= lo) & (x <= hi)
    v = torch.where(inside, x, lo)
    (src_left, src_right), (dst_left, dst_right), (d0, d1) = spline_bin(v, src, dst, kd)
    src_width, dst_width = src_right - src_left, dst_right - dst_left
    u = ((v - src_left) / src_width).clamp(0.0, 1.0)
    if inverse:
        s = src_width / dst_width
        xi = bin_root(u, s, d0, d1)
        _, logabsdet = segment_logabsdet(xi, s, d0, d1)
        out, logabsdet = torch.lerp(dst_left, dst_right, xi), -logabsdet
    else:
        s = dst_width / src_width
        t, logabsdet = segment_logabsdet(u, s, d0, d1)
        out = torch.lerp(dst_left, dst_right, t)
    return torch.where(inside, out, x), torch.where(inside, logabsdet, torch.zeros_like(x))


class Spline:
    """The spline transform: params are 3K - 1 tensors shaped like x, stacked on a last axis."""

    def __init__(
        self,
        bins: int,
        bound: float,
        min_bin_width: float,
        min_bin_height: float,
        min_derivative: float,
    ) -> None:
        self.n_params = 3 * bins - 1
        self.bound = bound
        self.minima = (min_bin_width, min_bin_height, min_derivative)

    def add_parameters(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        pass

    def _apply(self, v: Tensor, params: tuple[Tensor, ...], inverse: bool):
        return rq_spline(v, torch.stack(params, dim=-1), self.bound, inverse, *self.minima)

    def forward(self, layer: nn.Module, x: Tensor, params: tuple[Tensor, ...]):
        return self._apply(x, params, inverse=False)

    def inverse(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]) -> Tensor:
        return self._apply(y, params, inverse=True)[0]

    def inverse_and_logabsdet(self, layer: nn.Module, y: Tensor, params: tuple[Tensor, ...]):
        return self._apply(y, params, inverse=True)
'''
