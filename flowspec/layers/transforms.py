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
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from flowspec.layers.base import PositiveInt, Problem, SpecRow, StrictModel

__all__ = [
    "TRANSFORMS",
    "AdditiveSpec",
    "AffineSpec",
    "LogScale",
    "SplineSpec",
    "TransformDef",
    "TransformSpec",
    "check_transform",
]

LogScale = Literal["tanh", "scaled_tanh", "sigmoid", "none"]


class AdditiveSpec(StrictModel):
    """NICE: ``y = x + t``; volume-preserving, log-determinant exactly zero."""

    type: Literal["additive"] = "additive"


class AffineSpec(StrictModel):
    """RealNVP: ``y = x * exp(s) + t``. ``log_scale`` bounds the network's raw log-scale output:
    ``tanh`` (course notebook), ``scaled_tanh`` (scale * tanh(raw) with a learned scale per
    element, RealNVP), ``sigmoid`` (log sigmoid(raw + 2), Glow) or ``none`` (unbounded)."""

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
class TransformDef(SpecRow):
    """One elementwise transform: its spec model, what it does, and a check of its settings
    that a field alone cannot express (problems located relative to the ``transform`` key)."""

    summary: str
    check: Callable[[Any], list[Problem]] = lambda spec: []


TRANSFORMS: dict[str, TransformDef] = {
    d.type: d
    for d in (
        TransformDef(AdditiveSpec, "shift: y = x + t (NICE), log-det 0"),
        TransformDef(AffineSpec, "scale and shift: y = x exp(s) + t (RealNVP, Glow)"),
        TransformDef(
            SplineSpec,
            "monotone rational-quadratic spline, identity tails (neural spline flows)",
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
