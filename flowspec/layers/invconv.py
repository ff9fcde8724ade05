"""``invconv``: Glow's invertible 1x1 convolution, a learned C x C matrix W at every pixel.

Log-determinant H * W * log|det W|. ``lu: true`` parameterises W = P L (U + diag(sign * exp(log_s)))
with P fixed, L unit-lower, U strictly upper, so the log-determinant is H * W * sum(log_s) in O(C);
``lu: false`` keeps W plain and uses slogdet. Initialised from a random rotation. On vectors it
is a learned invertible D x D linear map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Shape, StrictModel

__all__ = ["OP", "InvConvSpec"]


class InvConvSpec(StrictModel):
    type: Literal["invconv"]
    lu: bool = True


def _infer(spec: InvConvSpec, ctx: InferContext) -> Inferred:
    return Inferred((ctx.in_shape,), {"seed": ctx.seed})


def _mix(params: Mapping[str, Any], in_shape: Shape, deps: Deps) -> tuple[Deps, ...]:
    """Every channel at a position depends on all channels at that position (O(D) ORs)."""
    channels = in_shape[0]
    per = len(deps) // channels
    merged = list(deps[:per])
    for c in range(1, channels):
        block = deps[c * per : (c + 1) * per]
        merged = [a | b for a, b in zip(merged, block)]
    return (merged * channels,)


OP = OpDef(
    kind="invconv",
    spec=InvConvSpec,
    infer=_infer,
    role="mixing",
    summary="invertible 1x1 convolution (Glow), plain or LU-parameterised",
    mix=_mix,
)
