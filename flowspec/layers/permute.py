"""``permute``: a fixed permutation of the features (vectors), tokens (token sequences) or
channels (images): always of axis 1 of ``(N, *shape)``.

``order: reverse`` reverses them; ``order: random`` draws a permutation from a seed (the op's
``seed``, else one derived from the flow's ``seed`` and the op's name), so the same spec always
gives the same flow. The permutation is also stored in the weights file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Seed, Shape, StrictModel
from flowspec.layers.cost import CostContext, OpCost, TensorInfo

__all__ = ["OP", "PermuteSpec", "permutation_mix"]


class PermuteSpec(StrictModel):
    type: Literal["permute"]
    order: Literal["reverse", "random"] = "reverse"
    seed: Seed | None = None


def _infer(spec: PermuteSpec, ctx: InferContext) -> Inferred:
    n = ctx.in_shape[0]
    perm = list(range(n))[::-1]
    if spec.order == "random":
        perm = list(range(n))
        random.Random(ctx.seed if spec.seed is None else spec.seed).shuffle(perm)
    return Inferred((ctx.in_shape,), {"perm": tuple(perm)})


def permutation_mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Output slice i (feature, token or channel i) is input slice ``perm[i]``."""
    perm = np.asarray(params["perm"], dtype=np.int64)
    return (deps.reshape(in_shape[0], -1, deps.shape[1])[perm].reshape(deps.shape),)


def _cost(spec: PermuteSpec, ctx: CostContext) -> OpCost:
    """Both index vectors are saved in the weights file; an index gather saves nothing per
    example."""
    c = ctx.in_shape[0]
    return OpCost(
        (
            TensorInfo("perm", (c,), "int64", param=False),
            TensorInfo("inverse_perm", (c,), "int64", param=False),
        )
    )


OP = OpDef(
    kind="permute",
    spec=PermuteSpec,
    infer=_infer,
    role="mixing",
    summary="fixed permutation of features (vectors), tokens (token sequences) or channels",
    mix=permutation_mix,
    ranks=(1, 2, 3),
    cost=_cost,
)
