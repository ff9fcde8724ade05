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

from flowspec.layers.base import SpecRow, StrictModel
from flowspec.layers.cost import TensorInfo

__all__ = [
    "TRANSFORMS",
    "AdditiveSpec",
    "AffineSpec",
    "LogScale",
    "TransformCost",
    "TransformDef",
    "TransformSpec",
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


@dataclass(frozen=True)
class TransformCost:
    """What a transform of ``m`` elements adds to its coupling: learned tensors, elements per
    example it saves besides its input, and whether it saves its input ``x``."""

    tensors: tuple[TensorInfo, ...] = ()
    saved: int = 0
    saves_input: bool = False


def _additive_cost(spec: AdditiveSpec, shape: tuple[int, ...]) -> TransformCost:
    """``x + t`` keeps nothing."""
    return TransformCost()


# Saved elements per transformed element of each log-scale bound: tanh keeps its output;
# log-sigmoid its input and a buffer, and its floor (a clamp) its output; then exp(s) keeps
# its output.
LOG_SCALE_SAVES = {"tanh": 1, "scaled_tanh": 1, "sigmoid": 3, "sigmoid2": 3, "none": 0}


def _affine_cost(spec: AffineSpec, shape: tuple[int, ...]) -> TransformCost:
    """``x * exp(s) + t``: the bound, ``exp(s)`` and ``x`` are kept for backward."""
    m = prod(shape)
    tensors = (TensorInfo("scale", (1, *shape)),) if spec.log_scale == "scaled_tanh" else ()
    return TransformCost(tensors, (LOG_SCALE_SAVES[spec.log_scale] + 1) * m, True)


@dataclass(frozen=True)
class TransformDef(SpecRow):
    """One elementwise transform: its spec model, what it does, and its cost rule
    ``(spec, transformed shape) -> TransformCost``."""

    summary: str
    cost: Callable[[Any, tuple[int, ...]], TransformCost]
    n_params: int = 1  # parameters per transformed element that the conditioner outputs


TRANSFORMS: dict[str, TransformDef] = {
    d.type: d
    for d in (
        TransformDef(AdditiveSpec, "shift: y = x + t (NICE), log-det 0", _additive_cost),
        TransformDef(
            AffineSpec, "scale and shift: y = x exp(s) + t (RealNVP, Glow)", _affine_cost, 2
        ),
    )
}
TransformSpec = Annotated[
    Union[tuple(d.spec for d in TRANSFORMS.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
