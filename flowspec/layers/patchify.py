"""``patchify``: images (or vectors) to a sequence of tokens, one token per patch.

An image ``(C, H, W)`` becomes ``T = (H/p) * (W/p)`` tokens of ``D = C * p * p`` values; a vector
``(D,)`` becomes ``D/p`` tokens of ``p`` values (a 1-D sequence). Tokens are in row-major order
over the patch grid: token ``t = r * (W/p) + c`` is the patch whose top-left pixel is
``(r * p, c * p)``; inside a token, value ``d = ch * p*p + i * p + j`` is pixel
``(ch, r * p + i, c * p + j)``, the order of ``torch.nn.functional.unfold`` and of TarFlow's
``patchify``. The grid ``(H/p, W/p)`` (``(1, D/p)`` for vectors) is passed on to the ops after it,
which use it for spatial token masks. A pure reshuffle: log-determinant 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from flowspec.layers.base import (
    Deps,
    InferContext,
    Inferred,
    OpDef,
    PositiveInt,
    Problem,
    Shape,
    StrictModel,
)
from flowspec.layers.cost import CostContext, OpCost

__all__ = ["OP", "PatchifySpec", "patch_source"]


class PatchifySpec(StrictModel):
    """``patch``: the side of a square patch (images) or the length of a patch (vectors)."""

    type: Literal["patchify"]
    patch: PositiveInt = 2


def _infer(spec: PatchifySpec, ctx: InferContext) -> Inferred:
    p, shape = spec.patch, ctx.in_shape
    sides = shape[1:] if len(shape) == 3 else shape
    # A patch that does not tile is reported; the ops after it still see a token shape (rounded
    # down), so that one mistake gives one error.
    grid = (
        (max(1, sides[0] // p), max(1, sides[1] // p))
        if len(shape) == 3
        else (1, max(1, shape[0] // p))
    )
    tokens = (grid[0] * grid[1], shape[0] * p * p if len(shape) == 3 else p)
    if not any(side % p for side in sides):
        return Inferred((tokens,), {"grid": grid})
    what = "height and width" if len(shape) == 3 else "length"
    problem = Problem(
        "patch-size",
        f"patch {p} does not tile the input: its {what} {'x'.join(map(str, sides))} "
        f"(shape {shape}) must be multiples of {p}",
        f"use a patch size that divides {' and '.join(map(str, sorted(set(sides))))}",
        ("patch",),
    )
    return Inferred((tokens,), {"grid": grid}, (problem,))


def patch_source(out_index: int, in_shape: Shape, patch: int) -> int:
    """The flat input index that patchify moves to flat output index ``out_index``.

    Example:
        >>> [patch_source(k, (1, 4, 4), 2) for k in range(4, 8)]  # token 1: top-right patch
        [2, 3, 6, 7]
    """
    if len(in_shape) == 1:
        return out_index
    _, h, w = in_shape
    t, d = divmod(out_index, in_shape[0] * patch * patch)
    r, c = divmod(t, w // patch)
    ch, rest = divmod(d, patch * patch)
    i, j = divmod(rest, patch)
    return ch * h * w + (r * patch + i) * w + c * patch + j


def _mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Rows move with their values: the rows of an image reshaped into patch tokens."""
    if len(in_shape) == 1:
        return (deps,)
    p, (c, h, w) = params["patch"], in_shape
    rows = deps.reshape(c, h // p, p, w // p, p, -1).transpose(1, 3, 0, 2, 4, 5)
    return (np.ascontiguousarray(rows).reshape(deps.shape),)


def _cost(spec: PatchifySpec, ctx: CostContext) -> OpCost:
    """Moves values only and keeps nothing; a vector's tokens are a view of it."""
    return OpCost(output_is_input=(0,) if len(ctx.in_shape) == 1 else ())


def _infer_with_patch(spec: PatchifySpec, ctx: InferContext) -> Inferred:
    inferred = _infer(spec, ctx)
    return Inferred(
        inferred.out_shapes, {**inferred.params, "patch": spec.patch}, inferred.problems
    )


OP = OpDef(
    kind="patchify",
    spec=PatchifySpec,
    infer=_infer_with_patch,
    role="mixing",
    summary="images (C, H, W) or vectors (D,) to patch tokens (T, D'), TarFlow's and Jet's input",
    codes=("patch-size",),
    mix=_mix,
    cost=_cost,
)
