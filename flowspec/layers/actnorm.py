"""``actnorm``: Glow's activation normalisation, z = x * exp(log_scale) + bias.

One scale and bias per feature (vectors), per channel (images, shared over H x W, so the
log-determinant is H * W * sum(log_scale)) or per token value (token sequences, shared over the
T tokens). Initialised from the first batch it sees so that its
output has zero mean and unit variance per feature/channel; whether that happened is part of the
weights file, so a loaded model is never initialised again.
"""

from __future__ import annotations

from typing import Literal

from flowspec.layers.base import OpDef, StrictModel, same_shape

__all__ = ["OP", "ActNormSpec"]


class ActNormSpec(StrictModel):
    type: Literal["actnorm"]
    data_init: bool = True


OP = OpDef(
    kind="actnorm",
    spec=ActNormSpec,
    infer=same_shape,
    role="elementwise",
    summary="per-feature/channel affine map with data-dependent initialisation (Glow)",
    ranks=(1, 2, 3),
)
