"""``invconv``: Glow's invertible 1x1 convolution, a learned C x C matrix W at every pixel.

Log-determinant H * W * log|det W|. ``lu: true`` parameterises W = P L (U + diag(sign * exp(log_s)))
with P fixed, L unit-lower, U strictly upper, so the log-determinant is H * W * sum(log_s) in O(C);
``lu: false`` keeps W plain and uses slogdet. Initialised from a random rotation. On vectors it
is a learned invertible D x D linear map; on token sequences ``(T, D)`` the same D x D map of
every token's values (log-determinant T * log|det W|).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any, Literal

import numpy as np

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Shape, StrictModel
from flowspec.layers.bits import or_reduce
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo

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
    if len(in_shape) == 2:  # tokens: the values of each token mix
        t, d = in_shape
        merged = or_reduce(deps.reshape(t, d, -1), axis=1)
        return (np.broadcast_to(merged[:, None], (t, d, merged.shape[1])).reshape(deps.shape),)
    merged = or_reduce(deps.reshape(in_shape[0], -1, deps.shape[1]), axis=0)
    return (np.broadcast_to(merged, (in_shape[0], *merged.shape)).reshape(deps.shape),)


def _cost(spec: InvConvSpec, ctx: CostContext) -> OpCost:
    """A 1x1 convolution (a product for vectors) keeping its input; LU builds ``W = P L U``
    with two C x C products per batch, and that build keeps, once per batch, C x C tensors
    (the masks and factors its products and masking keep, and W) and ``exp(log_s)`` with the
    signs (counted on flowspec.nn.invconv: 5 C^2 + 2 C)."""
    c, positions = ctx.in_shape[0], prod(ctx.in_shape[1:])
    if len(ctx.in_shape) == 2:  # token sequences: the token values are the channels
        positions, c = ctx.in_shape
    if spec.lu:
        tensors = (
            TensorInfo("p", (c, c), param=False),
            TensorInfo("sign", (c,), param=False),
            TensorInfo("lower", (c, c)),
            TensorInfo("upper", (c, c)),
            TensorInfo("log_s", (c,)),
        )
    else:
        tensors = (TensorInfo("weight", (c, c)),)
    return OpCost(
        tensors,
        flops=2 * c * c * positions,
        flops_batch=4 * c**3 if spec.lu else 0,
        saved=(Saved(c * positions, "input"),),
        saved_batch=5 * c * c + 2 * c if spec.lu else 0,
    )


OP = OpDef(
    kind="invconv",
    spec=InvConvSpec,
    infer=_infer,
    role="mixing",
    summary="invertible 1x1 convolution (Glow), plain or LU-parameterised",
    mix=_mix,
    ranks=(1, 2, 3),
    cost=_cost,
)
