"""``batchnorm``: RealNVP's batch normalisation used as a flow layer.

z = gamma * (x - mu) / sqrt(var + eps) + beta per feature/channel, with batch statistics in
training and running averages in eval. Log-determinant per the notes' table:
sum(log |gamma|) - 1/2 sum(log(var + eps)), times H * W for images.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flowspec.layers.base import OpDef, StrictModel, same_shape

__all__ = ["OP", "BatchNormSpec"]


class BatchNormSpec(StrictModel):
    type: Literal["batchnorm"]
    momentum: Annotated[float, Field(gt=0, le=1)] = 0.05
    eps: Annotated[float, Field(gt=0)] = 1e-5


OP = OpDef(
    kind="batchnorm",
    spec=BatchNormSpec,
    infer=same_shape,
    role="elementwise",
    summary="batch normalisation as a bijection (RealNVP): batch stats to train, running in eval",
)
