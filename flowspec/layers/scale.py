"""``scale``: NICE's final diagonal scaling, z = x * exp(s), one learned s per element."""

from __future__ import annotations

from typing import Literal

from flowspec.layers.base import OpDef, StrictModel, same_shape

__all__ = ["OP", "ScaleSpec"]


class ScaleSpec(StrictModel):
    type: Literal["scale"]


OP = OpDef(
    kind="scale",
    spec=ScaleSpec,
    infer=same_shape,
    role="elementwise",
    summary="NICE diagonal scaling layer, log-determinant sum(s)",
)
