"""Preprocessing ops with exact log-determinants: ``dequantize`` and ``logit``.

``dequantize`` maps integers 0..levels-1 to [0, 1): y = (x + u) / levels with u ~ U[0, 1)^D
added in every forward pass (the uniform dequantisation of RealNVP and Glow); its
log-determinant is -D log(levels), so ``log_prob`` is the density of x + u at the data's own
scale and ``bits_per_dim`` matches the papers. Its inverse floors back to integers.

``logit`` maps [0, 1] to R: p = alpha + (1 - 2 alpha) y, z = log p - log(1 - p) (RealNVP,
alpha = 0.05); log-determinant sum(log(1 - 2 alpha) - log p - log(1 - p)).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flowspec.ops.base import OpDef, same_shape
from flowspec.spec.base import StrictModel


class DequantizeSpec(StrictModel):
    type: Literal["dequantize"]
    levels: Annotated[int, Field(ge=2)] = 256


class LogitSpec(StrictModel):
    type: Literal["logit"]
    alpha: Annotated[float, Field(ge=0, lt=0.5)] = 0.05


DEQUANTIZE = OpDef(
    kind="dequantize",
    spec=DequantizeSpec,
    infer=same_shape,
    builder="flowspec.bijections.preprocess:build_dequantize",
    role="preprocess",
    summary="uniform dequantisation of integer data to [0, 1), log-det -D log(levels)",
)

LOGIT = OpDef(
    kind="logit",
    spec=LogitSpec,
    infer=same_shape,
    builder="flowspec.bijections.preprocess:build_logit",
    role="preprocess",
    summary="logit transform with RealNVP's alpha, [0, 1] -> R",
)
