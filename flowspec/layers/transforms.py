"""The elementwise transforms of couplings (``transform: {type: ...}``): one table, torch-free.

A coupling transforms the elements its mask marks ``0`` by a monotone elementwise map whose
parameters come from the conditioner network; which map is a row of :data:`TRANSFORMS`. Each row
is a :class:`TransformDef`: the spec model and a summary. The torch side is
:mod:`flowspec.nn.transforms`, a table with the same keys. Adding a transform: a spec model and a
row here, a class and a row there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from flowspec.layers.base import PositiveInt, Problem, SpecRow, StrictModel
from flowspec.layers.cost import TensorInfo

__all__ = [
    "TRANSFORMS",
    "AdditiveSpec",
    "AffineSpec",
    "LogScale",
    "SplineSpec",
    "TransformCost",
    "TransformDef",
    "TransformSpec",
    "check_transform",
]

LogScale = Literal["tanh", "scaled_tanh", "sigmoid", "sigmoid2", "none"]


class AdditiveSpec(StrictModel):
    """NICE: ``y = x + t``; volume-preserving, log-determinant exactly zero."""

    type: Literal["additive"] = "additive"


class AffineSpec(StrictModel):
    """RealNVP: ``y = x * exp(s) + t``. ``log_scale`` bounds the network's raw log-scale output:
    ``tanh`` (course notebook), ``scaled_tanh`` (scale * tanh(raw) with a learned scale per
    element, RealNVP), ``sigmoid`` (log sigmoid(raw + 2), Glow), ``sigmoid2`` (log(2 sigmoid(raw)):
    Jet's scale in (0, 2), 1 at raw = 0) or ``none`` (unbounded)."""

    type: Literal["affine"] = "affine"
    log_scale: LogScale = "scaled_tanh"


Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class SplineSpec(StrictModel):
    """Monotone rational-quadratic spline (neural spline flows, Durkan et al. 2019): ``bins``
    bins on ``[-bound, bound]`` whose widths, heights and inner knot slopes come from the
    conditioner (``3 * bins - 1`` numbers per element), the identity outside, slope 1 at
    ``+-bound`` so the map is continuous with its derivative. Every bin keeps at least
    ``min_bin_width`` and ``min_bin_height`` of ``2 * bound`` and every knot a slope of at least
    ``min_derivative``; the inverse is the closed-form root of each bin's quadratic. Zero
    conditioner outputs give the identity."""

    type: Literal["spline"] = "spline"
    bins: PositiveInt = 8
    bound: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3.0
    min_bin_width: Fraction = 1e-3
    min_bin_height: Fraction = 1e-3
    min_derivative: Fraction = 1e-3


def _check_spline(spec: SplineSpec) -> list[Problem]:
    """The bin floors must leave room: ``bins * minimum < 1``."""
    return [
        Problem(
            "spline-minimum",
            f"{key} {getattr(spec, key)} times {spec.bins} bins is not below 1: the bins "
            f"cannot all be that {what}",
            f"use {key} below {1 / spec.bins:.3g} or fewer bins",
            (key,),
        )
        for key, what in (("min_bin_width", "wide"), ("min_bin_height", "high"))
        if getattr(spec, key) * spec.bins >= 1
    ]


@dataclass(frozen=True)
class TransformCost:
    """What a transform of ``m`` elements adds to its coupling: learned tensors, elements per
    example it saves besides its input, and whether it saves its input ``x``; and what its
    inverse saves (an IAF layer's forward runs the inverse; it never keeps its input)."""

    tensors: tuple[TensorInfo, ...] = ()
    saved: int = 0
    saves_input: bool = False
    saved_inverse: int = 0


def _additive_cost(spec: AdditiveSpec, shape: tuple[int, ...]) -> TransformCost:
    """``x + t`` keeps nothing."""
    return TransformCost()


# Saved elements per transformed element of each log-scale bound: tanh keeps its output;
# log-sigmoid its input and a buffer, and its floor (a clamp) its output; then exp(s) keeps
# its output.
LOG_SCALE_SAVES = {"tanh": 1, "scaled_tanh": 1, "sigmoid": 3, "sigmoid2": 3, "none": 0}


def _affine_cost(spec: AffineSpec, shape: tuple[int, ...]) -> TransformCost:
    """``x * exp(s) + t``: the bound, ``exp(s)`` and ``x`` are kept for backward; the inverse
    ``(y - t) * exp(-s)`` keeps the bound, ``exp(-s)`` and ``y - t``."""
    m = prod(shape)
    tensors = (TensorInfo("scale", (1, *shape)),) if spec.log_scale == "scaled_tanh" else ()
    saves = LOG_SCALE_SAVES[spec.log_scale]
    return TransformCost(tensors, (saves + 1) * m, True, (saves + 2) * m)


# Elements per transformed element a spline keeps for backward (flowspec.nn.spline, float32
# units), counted on that implementation: 6 per bin (the stacked raw parameters' softmax and
# softplus, the cumulative knots and their concatenations) and 28 besides (the gathered bin
# ends and slopes, the bin search's index, the segment's products and logs), plus a byte for
# the inside mask, rounded away; the inverse 43 besides (the quadratic's root too). It keeps
# no reference to its input.
SPLINE_SAVES = (6, 28)
SPLINE_INVERSE_SAVES = (6, 43)


def _spline_cost(spec: SplineSpec, shape: tuple[int, ...]) -> TransformCost:
    """See :data:`SPLINE_SAVES`."""
    m = prod(shape)
    forward, inverse = ((a * spec.bins + b) * m for a, b in (SPLINE_SAVES, SPLINE_INVERSE_SAVES))
    return TransformCost((), forward, False, inverse)


@dataclass(frozen=True)
class TransformDef(SpecRow):
    """One elementwise transform: its spec model, what it does, its cost rule
    ``(spec, transformed shape) -> TransformCost``, how many numbers per transformed element
    the conditioner outputs for it (``n_params(spec)``), and a check of its settings that a
    field alone cannot express (problems located relative to the ``transform`` key)."""

    summary: str
    cost: Callable[[Any, tuple[int, ...]], TransformCost]
    n_params: Callable[[Any], int] = lambda spec: 1
    check: Callable[[Any], list[Problem]] = lambda spec: []


TRANSFORMS: dict[str, TransformDef] = {
    d.type: d
    for d in (
        TransformDef(AdditiveSpec, "shift: y = x + t (NICE), log-det 0", _additive_cost),
        TransformDef(
            AffineSpec,
            "scale and shift: y = x exp(s) + t (RealNVP, Glow)",
            _affine_cost,
            lambda spec: 2,
        ),
        TransformDef(
            SplineSpec,
            "monotone rational-quadratic spline, identity tails (neural spline flows)",
            _spline_cost,
            lambda spec: 3 * spec.bins - 1,
            _check_spline,
        ),
    )
}
TransformSpec = Annotated[
    Union[tuple(d.spec for d in TRANSFORMS.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]


def check_transform(spec: Any) -> list[Problem]:
    """Problems with a transform's settings, located relative to its ``transform`` key."""
    return [
        Problem(p.code, p.message, p.hint, ("transform", *p.at))
        for p in TRANSFORMS[spec.type].check(spec)
    ]
