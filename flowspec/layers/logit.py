"""``logit``: RealNVP's map of [0, 1] to the real line, exact log-determinant.

p = alpha + (1 - 2 alpha) y, z = log p - log(1 - p) (RealNVP, alpha = 0.05); log-determinant
sum(log(1 - 2 alpha) - log p - log(1 - p)). It belongs in ``preprocess``, after ``dequantize``
(or alone, on data that lies in [0, 1]).
"""

from __future__ import annotations

from math import prod
from typing import Annotated, Literal

from pydantic import Field

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost, Saved

__all__ = ["OP", "LogitSpec"]


class LogitSpec(StrictModel):
    type: Literal["logit"]
    alpha: Annotated[float, Field(ge=0, lt=0.5)] = 0.05


def _cost(spec: LogitSpec, ctx: CostContext) -> OpCost:
    """``log p`` and ``log(1 - p)`` keep ``p`` and ``-p`` when the input needs a gradient."""
    d = prod(ctx.in_shape)
    return OpCost(saved=(Saved(d, "p"), Saved(d, "minus_p")) if ctx.grad_in else ())


OP = OpDef(
    kind="logit",
    spec=LogitSpec,
    infer=same_shape,
    role="preprocess",
    summary="logit transform with RealNVP's alpha, [0, 1] -> R",
    order=1,
    cost=_cost,
)
