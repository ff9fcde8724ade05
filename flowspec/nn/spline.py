"""Monotone rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows").

An elementwise bijection of the real line: ``K`` rational-quadratic bins on ``[-B, B]`` and the
identity outside. The derivatives at the two outer knots are fixed to 1, so the map and its
derivative are continuous at ``+-B``. Per element it takes ``P = 3K - 1`` unconstrained numbers,
laid out as ``[K widths | K heights | K - 1 inner derivatives]``:

- widths and heights: ``minimum + (1 - K * minimum) * softmax(raw)``, scaled to ``2B``;
- inner derivatives: ``min_derivative + softplus(raw + c)`` with ``c`` chosen so that a zero raw
  parameter gives derivative 1, and all-zero parameters give the identity map.

Robust by construction: out-of-domain inputs are replaced by an in-domain value BEFORE the spline
math, every denominator is a sum of positive terms, and the inverse uses a cancellation-free root
of the bin's quadratic, so values and gradients stay finite in both branches of the final
``torch.where`` (all-tail batches, inputs on a knot or at ``+-B``, ``|x| = 1e6``, raw parameters
of ``+-1e4``). NaN inputs propagate to NaN outputs.

Entry points: ``rq_knots`` (raw parameters -> knots), ``rq_spline_from_knots`` (explicit knots)
and ``rq_spline`` (raw parameters of shape ``(*x.shape, 3K - 1)``). The ``spline`` row of the
transform table (:class:`flowspec.nn.transforms.Spline`) applies it in couplings and
autoregressive layers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "RQKnots",
    "check_settings",
    "rq_knots",
    "rq_spline",
    "rq_spline_from_knots",
    "spline_params",
]

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


class RQKnots(NamedTuple):
    """The knots of a rational-quadratic spline, each of shape ``(..., K + 1)``.

    ``x`` and ``y`` increase strictly along the last axis; ``d > 0`` are the derivatives at the
    knots. For a bijection with identity tails, ``y[..., 0] == x[..., 0]`` and
    ``y[..., K] == x[..., K]`` (``rq_knots`` guarantees it; explicit knots are the caller's duty).
    """

    x: Tensor
    y: Tensor
    d: Tensor


def spline_params(bins: int) -> int:
    """Unconstrained parameters per element for ``bins`` bins: ``3 * bins - 1``."""
    return 3 * bins - 1


def check_settings(
    bins: int, bound: float, min_width: float, min_height: float, min_d: float
) -> None:
    """Raise ValueError unless the settings describe a valid spline (the spec's ``spline``
    model and its graph check guarantee this for compiled flows)."""
    problems = [
        (bins < 1, f"bins must be a positive integer, got {bins}"),
        (not bound > 0, f"bound must be positive, got {bound}"),
        (not 0 < min_width * bins < 1, f"need 0 < min_bin_width < 1/{bins}, got {min_width}"),
        (not 0 < min_height * bins < 1, f"need 0 < min_bin_height < 1/{bins}, got {min_height}"),
        (not 0 < min_d < 1, f"need 0 < min_derivative < 1, got {min_d}"),
    ]
    for failed, message in problems:
        if failed:
            raise ValueError(message)


def _edges(raw: Tensor, bound: float, minimum: float) -> Tensor:
    """Softmax fractions with a floor -> knot positions ``(..., K + 1)``, ends exactly ``+-B``."""
    k = raw.shape[-1]
    fractions = minimum + (1.0 - minimum * k) * torch.softmax(raw, dim=-1)
    inner = 2.0 * bound * torch.cumsum(fractions, dim=-1)[..., :-1] - bound
    end = torch.full_like(raw[..., :1], bound)
    return torch.cat([-end, inner, end], dim=-1)


def rq_knots(
    params: Tensor,
    bound: float = 3.0,
    *,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> RQKnots:
    """Map raw parameters ``(..., 3K - 1)`` to the knots of the spline on ``[-bound, bound]``.

    Arguments:
        params: unconstrained ``[K widths | K heights | K - 1 inner derivatives]``.
        bound: half-width ``B`` of the spline's domain (and range).
        min_bin_width, min_bin_height: floors on a bin's share of ``2B`` (need ``K * min < 1``).
        min_derivative: floor on the inner derivatives, in ``(0, 1)``.

    Returns:
        ``RQKnots`` with tensors of shape ``(..., K + 1)``; outer derivatives are 1.

    Example:
        >>> knots = rq_knots(torch.zeros(5), bound=2.0)
        >>> knots.x.tolist(), [round(d, 6) for d in knots.d.tolist()]
        ([-2.0, 0.0, 2.0], [1.0, 1.0, 1.0])
    """
    if params.shape[-1] % 3 != 2:
        raise ValueError(
            f"spline parameters must number 3K - 1 per element, got {params.shape[-1]}"
        )
    bins = (params.shape[-1] + 1) // 3
    check_settings(bins, bound, min_bin_width, min_bin_height, min_derivative)
    raw_w, raw_h, raw_d = params.split([bins, bins, bins - 1], dim=-1)
    # softplus(offset) = 1 - min_derivative, so raw 0 gives derivative exactly 1.
    offset = math.log(math.expm1(1.0 - min_derivative))
    one = torch.ones_like(raw_w[..., :1])
    inner_d = min_derivative + F.softplus(raw_d + offset)
    return RQKnots(
        x=_edges(raw_w, bound, min_bin_width),
        y=_edges(raw_h, bound, min_bin_height),
        d=torch.cat([one, inner_d, one], dim=-1),
    )


def _bin(v: Tensor, src: Tensor, *knots: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The bin of an in-domain ``v`` among the knots ``src`` (searching by counting the inner
    knots ``<= v``: a knot starts its bin, ``+B`` ends the last); the two values of ``src`` and
    of each of ``knots`` at that bin's ends, each of the shape of ``v``."""
    index = (v.unsqueeze(-1) >= src[..., 1:-1]).sum(dim=-1, keepdim=True)
    pair = torch.cat([index, index + 1], dim=-1)
    return [tuple(k.gather(-1, pair).unbind(-1)) for k in (src, *knots)]


def _segment_logabsdet(xi: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised bin map ``xi -> t`` (both in [0, 1]) and ``log dy/dx``; sums of positive terms."""
    one_minus = 1.0 - xi
    mixed = xi * one_minus
    denominator = s * (xi.square() + one_minus.square()) + (d0 + d1) * mixed
    t = (s * xi.square() + d0 * mixed) / denominator
    numerator = d1 * xi.square() + 2.0 * s * mixed + d0 * one_minus.square()
    return t, 2.0 * torch.log(s) + torch.log(numerator) - 2.0 * torch.log(denominator)


def _safe_inside(v: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Mask of ``lo <= v <= hi`` and ``v`` with the outside (and NaN) replaced by ``lo``.

    ``torch.where`` and not ``clamp``: at ``v == hi`` the gradient must reach ``v`` in full.
    """
    inside = (v >= lo) & (v <= hi)
    return inside, torch.where(inside, v, lo)


def rq_spline_from_knots(x: Tensor, knots: RQKnots, inverse: bool = False) -> tuple[Tensor, Tensor]:
    """Apply the spline given by explicit knots (or its inverse) elementwise; identity tails.

    Arguments:
        x: input of any shape ``S`` (a latent value when ``inverse``).
        knots: ``RQKnots`` broadcastable to ``(*S, K + 1)``.
        inverse: apply the inverse map (closed-form root of the bin's quadratic).

    Returns:
        ``(y, logabsdet)``, both of shape ``S``; ``logabsdet = log|dy/dx|`` of the map applied
        (so the inverse's is minus the forward's at the corresponding point), 0 in the tails.

    Example:
        >>> knots = RQKnots(torch.tensor([-1.0, 0.5, 1.0]), torch.tensor([-1.0, 0.0, 1.0]),
        ...                 torch.tensor([1.0, 0.8, 1.0]))
        >>> y, _ = rq_spline_from_knots(torch.tensor([0.5, 2.0]), knots)
        >>> y.tolist()
        [0.0, 2.0]
    """
    shape = (*x.shape, knots.x.shape[-1])
    kx, ky, kd = (k.expand(shape) for k in knots)
    src, dst = (ky, kx) if inverse else (kx, ky)
    inside, v = _safe_inside(x, src[..., 0], src[..., -1])
    (src_left, src_right), (dst_left, dst_right), (d0, d1) = _bin(v, src, dst, kd)
    src_width, dst_width = src_right - src_left, dst_right - dst_left
    u = ((v - src_left) / src_width).clamp(0.0, 1.0)  # position in the bin, source side
    if inverse:
        s = src_width / dst_width  # the bin's slope h / w
        xi = _root(u, s, d0, d1)
        _, logabsdet = _segment_logabsdet(xi, s, d0, d1)
        out, logabsdet = torch.lerp(dst_left, dst_right, xi), -logabsdet
    else:
        s = dst_width / src_width
        t, logabsdet = _segment_logabsdet(u, s, d0, d1)
        out = torch.lerp(dst_left, dst_right, t)
    # lerp is exact at both ends of the bin, so +-B and the knots map exactly onto knots.
    return torch.where(inside, out, x), torch.where(inside, logabsdet, torch.zeros_like(x))


def _root(t: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """Solve ``a xi^2 + b xi + c = 0`` for the bin position ``xi`` in [0, 1] of a height ``t``.

    With ``a = s - b``, ``b = d0 - t (d0 + d1 - 2 s)``, ``c = -s t``, the discriminant is the sum
    of squares ``(d0 (1 - t) - d1 t)^2 + 4 s^2 t (1 - t) > 0``, computed without cancellation.
    The root is ``2 s t / (b + r)`` for ``b >= 0`` and ``(r - b) / (2 (s - b))`` for ``b < 0``;
    both forms are written with ``|b|`` so each branch is finite everywhere (no NaN gradients
    leak through the ``where``).
    """
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
    bound: float = 3.0,
    inverse: bool = False,
    *,
    min_bin_width: float = MIN_BIN_WIDTH,
    min_bin_height: float = MIN_BIN_HEIGHT,
    min_derivative: float = MIN_DERIVATIVE,
) -> tuple[Tensor, Tensor]:
    """Monotone RQ spline on ``[-bound, bound]`` with identity tails, from raw parameters.

    Arguments:
        x: input of any shape ``S``.
        params: raw parameters of shape ``(*S, 3K - 1)`` (leading axes may broadcast to ``S``).
        bound: half-width ``B`` of the spline region.
        inverse: apply the inverse map instead.
        min_bin_width, min_bin_height, min_derivative: see ``rq_knots``.

    Returns:
        ``(y, logabsdet)`` of shape ``S``, ``logabsdet = log|dy/dx|`` of the map applied.

    Example:
        >>> x = torch.tensor([-5.0, -1.0, 0.0, 2.5])
        >>> y, logabsdet = rq_spline(x, torch.zeros(4, 8), bound=3.0)  # K = 3, identity
        >>> torch.allclose(y, x, atol=1e-6), logabsdet.abs().max().item() < 1e-6
        (True, True)
    """
    try:
        fits = torch.broadcast_shapes(params.shape[:-1], x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"spline parameters of shape {tuple(params.shape)} do not fit an input of shape "
            f"{tuple(x.shape)}: expected (*x.shape, 3K - 1)"
        )
    knots = rq_knots(
        params,
        bound,
        min_bin_width=min_bin_width,
        min_bin_height=min_bin_height,
        min_derivative=min_derivative,
    )
    return rq_spline_from_knots(x, knots, inverse)
