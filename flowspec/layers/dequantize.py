"""``dequantize``: uniform dequantisation of integer data to [0, 1), exact log-determinant.

Integers 0..levels-1 map to y = (x + u) / levels with u ~ U[0, 1)^D added in every forward pass
(the uniform dequantisation of RealNVP and Glow); the log-determinant is -D log(levels), so
``log_prob`` is the density of x + u at the data's own scale and ``bits_per_dim`` matches the
papers. The inverse floors back to integers. It belongs in ``preprocess``, once and first: a
second dequantisation (or one after ``logit``) would not be undone by the inverse.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost

__all__ = ["OP", "DequantizeSpec"]


class DequantizeSpec(StrictModel):
    type: Literal["dequantize"]
    # at most 16-bit data: beyond, x + u no longer has the precision to floor back to x
    levels: Annotated[int, Field(ge=2, le=65536)] = 256


def _cost(spec: DequantizeSpec, ctx: CostContext) -> OpCost:
    return OpCost()


OP = OpDef(
    kind="dequantize",
    spec=DequantizeSpec,
    infer=same_shape,
    role="preprocess",
    summary="uniform dequantisation of integer data to [0, 1), log-det -D log(levels)",
    cost=_cost,
)
