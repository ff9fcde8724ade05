"""``batchnorm``: RealNVP's batch normalisation used as a flow layer.

z = gamma * (x - mu) / sqrt(var + eps) + beta per feature/channel, with batch statistics in
training and running averages in eval. Log-determinant per the notes' table:
sum(log |gamma|) - 1/2 sum(log(var + eps)), times H * W for images.
"""

from __future__ import annotations

from math import prod
from typing import Annotated, Literal

from pydantic import Field

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo

__all__ = ["OP", "BatchNormSpec"]


class BatchNormSpec(StrictModel):
    type: Literal["batchnorm"]
    momentum: Annotated[float, Field(gt=0, le=1)] = 0.05
    eps: Annotated[float, Field(gt=0)] = 1e-5


def _cost(spec: BatchNormSpec, ctx: CostContext) -> OpCost:
    """In training: the normalised input times ``exp(log_gamma)`` keeps it; with an input that
    needs a gradient, the variance keeps ``x`` and the centring keeps ``x - mean``."""
    shape = (1, ctx.in_shape[0], *([1] * (len(ctx.in_shape) - 1)))
    tensors = (
        TensorInfo("log_gamma", shape),
        TensorInfo("beta", shape),
        TensorInfo("running_mean", shape, param=False),
        TensorInfo("running_var", shape, param=False),
    )
    d = prod(ctx.in_shape)
    saved = (Saved(d, "input"), Saved(d, "centred"), Saved(d)) if ctx.grad_in else (Saved(d),)
    return OpCost(tensors, saved=saved)


OP = OpDef(
    kind="batchnorm",
    spec=BatchNormSpec,
    infer=same_shape,
    role="elementwise",
    summary="batch normalisation as a bijection (RealNVP): batch stats to train, running in eval",
    cost=_cost,
)
