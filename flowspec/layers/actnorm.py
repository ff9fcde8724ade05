"""``actnorm``: Glow's activation normalisation, z = x * exp(log_scale) + bias.

One scale and bias per feature (vectors) or per channel (images, shared over H x W, so the
log-determinant is H * W * sum(log_scale)). Initialised from the first batch it sees so that its
output has zero mean and unit variance per feature/channel; whether that happened is part of the
weights file, so a loaded model is never initialised again.
"""

from __future__ import annotations

from math import prod
from typing import Literal

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo

__all__ = ["OP", "ActNormSpec"]


class ActNormSpec(StrictModel):
    type: Literal["actnorm"]
    data_init: bool = True


def _cost(spec: ActNormSpec, ctx: CostContext) -> OpCost:
    """``x * exp(log_scale)`` keeps ``x`` for the scale's gradient."""
    shape = (1, ctx.in_shape[0], *([1] * (len(ctx.in_shape) - 1)))
    tensors = (
        TensorInfo("log_scale", shape),
        TensorInfo("bias", shape),
        TensorInfo("initialized", (), "bool", param=False),
    )
    return OpCost(tensors, saved=(Saved(prod(ctx.in_shape), "input"),))


OP = OpDef(
    kind="actnorm",
    spec=ActNormSpec,
    infer=same_shape,
    role="elementwise",
    summary="per-feature/channel affine map with data-dependent initialisation (Glow)",
    cost=_cost,
)
