"""The elementwise transforms of couplings (``transform: {type: ...}``): one table, torch-free.

A coupling transforms the elements its mask marks ``0`` by a monotone elementwise map whose
parameters come from the conditioner network; which map is a row of :data:`TRANSFORMS`. Each row
is a :class:`TransformDef`: the spec model and a summary. The torch side is
:mod:`flowspec.nn.transforms`, a table with the same keys. Adding a transform: a spec model and a
row here, a class and a row there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import Field

from flowspec.layers.base import SpecRow, StrictModel

__all__ = ["TRANSFORMS", "AdditiveSpec", "AffineSpec", "LogScale", "TransformDef", "TransformSpec"]

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
class TransformDef(SpecRow):
    """One elementwise transform: its spec model and what it does."""

    summary: str


TRANSFORMS: dict[str, TransformDef] = {
    d.type: d
    for d in (
        TransformDef(AdditiveSpec, "shift: y = x + t (NICE), log-det 0"),
        TransformDef(AffineSpec, "scale and shift: y = x exp(s) + t (RealNVP, Glow)"),
    )
}
TransformSpec = Annotated[
    Union[tuple(d.spec for d in TRANSFORMS.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
