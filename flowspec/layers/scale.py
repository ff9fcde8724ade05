"""``scale``: NICE's final diagonal scaling, z = x * exp(s), one learned s per element."""

from __future__ import annotations

from math import prod
from typing import Literal

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo

__all__ = ["OP", "ScaleSpec"]


class ScaleSpec(StrictModel):
    type: Literal["scale"]


def _cost(spec: ScaleSpec, ctx: CostContext) -> OpCost:
    """``x * exp(log_scale)`` keeps ``x`` for the scale's gradient."""
    d = prod(ctx.in_shape)
    return OpCost((TensorInfo("log_scale", (1, *ctx.in_shape)),), saved=(Saved(d, "input"),))


OP = OpDef(
    kind="scale",
    spec=ScaleSpec,
    infer=same_shape,
    role="elementwise",
    summary="NICE diagonal scaling layer, log-determinant sum(s)",
    cost=_cost,
)
