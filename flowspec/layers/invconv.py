"""``invconv``: Glow's invertible 1x1 convolution, a learned C x C matrix W at every pixel.

Log-determinant H * W * log|det W|. ``lu: true`` parameterises W = P L (U + diag(sign * exp(log_s)))
with P fixed, L unit-lower, U strictly upper, so the log-determinant is H * W * sum(log_s) in O(C);
``lu: false`` keeps W plain and uses slogdet. Initialised from a random rotation. On vectors it
is a learned invertible D x D linear map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Shape, StrictModel
from flowspec.layers.bits import or_reduce

__all__ = ["OP", "InvConvSpec"]


class InvConvSpec(StrictModel):
    type: Literal["invconv"]
    lu: bool = True


def _infer(spec: InvConvSpec, ctx: InferContext) -> Inferred:
    return Inferred((ctx.in_shape,), {"seed": ctx.seed})


def _mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Every channel at a position depends on all channels at that position (O(D) ORs)."""
    merged = or_reduce(deps.reshape(in_shape[0], -1, deps.shape[1]), axis=0)
    return (np.broadcast_to(merged, (in_shape[0], *merged.shape)).reshape(deps.shape),)


OP = OpDef(
    kind="invconv",
    spec=InvConvSpec,
    infer=_infer,
    role="mixing",
    summary="invertible 1x1 convolution (Glow), plain or LU-parameterised",
    mix=_mix,
)
