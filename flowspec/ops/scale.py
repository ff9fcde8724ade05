"""``scale``: NICE's final diagonal scaling, z = x * exp(s), one learned s per element."""

from __future__ import annotations

from typing import Literal

from flowspec.ops.base import OpDef, same_shape
from flowspec.spec.base import StrictModel


class ScaleSpec(StrictModel):
    type: Literal["scale"]


OP = OpDef(
    kind="scale",
    spec=ScaleSpec,
    infer=same_shape,
    builder="flowspec.bijections.elementwise:build_scale",
    role="elementwise",
    summary="NICE diagonal scaling layer, log-determinant sum(s)",
)
