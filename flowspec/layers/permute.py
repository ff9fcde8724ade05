"""``permute``: a fixed permutation of the features (vectors) or channels (images).

``order: reverse`` reverses them; ``order: random`` draws a permutation from a seed (the op's
``seed``, else one derived from the flow's ``seed`` and the op's name), so the same spec always
gives the same flow. The permutation is also stored in the weights file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Literal

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Shape, StrictModel

__all__ = ["OP", "PermuteSpec", "permutation_mix"]


class PermuteSpec(StrictModel):
    type: Literal["permute"]
    order: Literal["reverse", "random"] = "reverse"
    seed: int | None = None


def _infer(spec: PermuteSpec, ctx: InferContext) -> Inferred:
    n = ctx.in_shape[0]
    perm = list(range(n))[::-1]
    if spec.order == "random":
        perm = list(range(n))
        random.Random(ctx.seed if spec.seed is None else spec.seed).shuffle(perm)
    return Inferred((ctx.in_shape,), {"perm": tuple(perm)})


def permutation_mix(params: Mapping[str, Any], in_shape: Shape, deps: Deps) -> tuple[Deps, ...]:
    """Output slice i (feature or channel i) is input slice ``perm[i]``."""
    perm = params["perm"]
    per = len(deps) // in_shape[0]
    return ([deps[perm[i // per] * per + i % per] for i in range(len(deps))],)


OP = OpDef(
    kind="permute",
    spec=PermuteSpec,
    infer=_infer,
    role="mixing",
    summary="fixed permutation of features (vectors) or channels (images)",
    mix=permutation_mix,
)
