"""The layer vocabulary: one :class:`OpDef` per layer kind, listed explicitly in ``ALL_OPS``.

Everything keyed by layer kind (the spec union, the graph's shape rules, the builders, the docs
table, the test parametrisation) is derived from this tuple. Adding a layer kind means a record
``flowspec/layers/<name>.py``, its torch side ``flowspec/nn/<name>.py`` (``build``) and one line
below. This package is torch-free.
"""

from __future__ import annotations

from flowspec.layers import (
    actnorm,
    autoregressive,
    batchnorm,
    coupling,
    dequantize,
    invconv,
    logit,
    patchify,
    permute,
    scale,
    split,
    squeeze,
    tarflow,
)
from flowspec.layers.base import OpDef

__all__ = ["ALL_OPS", "OPS", "OpDef"]

ALL_OPS: tuple[OpDef, ...] = (
    coupling.ADDITIVE,
    coupling.AFFINE,
    coupling.COUPLING,
    tarflow.OP,
    autoregressive.OP,
    permute.OP,
    actnorm.OP,
    scale.OP,
    batchnorm.OP,
    invconv.OP,
    squeeze.OP,
    patchify.OP,
    split.OP,
    dequantize.OP,
    logit.OP,
)

OPS: dict[str, OpDef] = {op.kind: op for op in ALL_OPS}
