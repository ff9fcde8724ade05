"""``squeeze``: each 2x2 spatial block becomes 4 channels, (C, H, W) -> (4C, H/2, W/2).

Output channel ``4 * c + 2 * dy + dx`` at (i, j) holds input channel ``c`` at
``(2i + dy, 2j + dx)`` (the layout of the Glow code). A pure reshuffle: log-determinant 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Problem, Shape, StrictModel
from flowspec.layers.cost import CostContext, OpCost

__all__ = ["OP", "SqueezeSpec", "squeeze_source"]


class SqueezeSpec(StrictModel):
    type: Literal["squeeze"]


def _infer(spec: SqueezeSpec, ctx: InferContext) -> Inferred:
    c, h, w = ctx.in_shape
    if h % 2 or w % 2:
        return Inferred(
            (ctx.in_shape,),
            {},
            (
                Problem(
                    "squeeze-odd",
                    f"squeeze needs even height and width, got {h}x{w} (shape {ctx.in_shape})",
                    "change the input shape or drop this squeeze",
                    (),
                ),
            ),
        )
    return Inferred(((4 * c, h // 2, w // 2),))


def squeeze_source(out_index: int, in_shape: Shape) -> int:
    """The flat input index that squeeze moves to flat output index ``out_index``."""
    _c, h, w = in_shape
    h2, w2 = h // 2, w // 2
    oc, rest = divmod(out_index, h2 * w2)
    i, j = divmod(rest, w2)
    ch, sub = divmod(oc, 4)
    dy, dx = divmod(sub, 2)
    return ch * h * w + (2 * i + dy) * w + (2 * j + dx)


def _mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """The rows moved as the elements are (see :func:`squeeze_source`)."""
    c, h, w = in_shape
    blocks = deps.reshape(c, h // 2, 2, w // 2, 2, deps.shape[1])
    return (blocks.transpose(0, 2, 4, 1, 3, 5).reshape(deps.shape),)


def _cost(spec: SqueezeSpec, ctx: CostContext) -> OpCost:
    return OpCost()


OP = OpDef(
    kind="squeeze",
    spec=SqueezeSpec,
    infer=_infer,
    role="mixing",
    summary="2x2 spatial blocks to channels, (C, H, W) -> (4C, H/2, W/2)",
    codes=("squeeze-odd",),
    mix=_mix,
    ranks=(3,),
    cost=_cost,
)
