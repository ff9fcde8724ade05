"""The op registry: one :class:`OpDef` per layer kind, listed explicitly in ``ALL_OPS``.

Everything keyed by layer kind (the spec union, the graph's shape rules, the compiler's builders,
the docs table, the test parametrisation) is derived from this tuple. Adding a layer kind means
adding one file here, one builder under :mod:`flowspec.bijections`, and one line below.
"""

from __future__ import annotations

from flowspec.ops import (
    actnorm,
    additive_coupling,
    affine_coupling,
    batchnorm,
    invconv,
    permute,
    preprocess,
    scale,
    split,
    squeeze,
)
from flowspec.ops.base import OpDef

ALL_OPS: tuple[OpDef, ...] = (
    additive_coupling.OP,
    affine_coupling.OP,
    permute.OP,
    actnorm.OP,
    scale.OP,
    batchnorm.OP,
    invconv.OP,
    squeeze.OP,
    split.OP,
    preprocess.DEQUANTIZE,
    preprocess.LOGIT,
)

OPS: dict[str, OpDef] = {op.kind: op for op in ALL_OPS}

__all__ = ["ALL_OPS", "OPS", "OpDef"]
