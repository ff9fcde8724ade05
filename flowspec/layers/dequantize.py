"""``dequantize``: integer data to [0, 1), with uniform dequantisation or Gaussian noise.

Integers 0..levels-1 map to y = (x + u) / levels with u ~ U[0, 1)^D drawn in every forward pass
(the uniform dequantisation of RealNVP and Glow); the log-determinant is -D log(levels), so
``log_prob`` is the density of x + u at the data's own scale and ``bits_per_dim`` matches the
papers: in expectation over u an upper bound on the code length of the integers. It belongs in
``preprocess``, once and first: a second dequantisation (or one after ``logit``) would not be
undone by the inverse.

``noise: {type: gaussian, sigma: s}`` is TarFlow's Gaussian noise augmentation for models meant
for sampling: in training mode y = (x + 1/2) / levels + s * e with e ~ N(0, I) (s on the [0, 1]
scale of y; TarFlow's 0.05 on data in [-1, 1] is s = 0.025 here). The training loss is then the
NLL of the noisy data, which bounds nothing about the integers. In eval mode the layer
dequantises uniformly, so every reported score (validation during training, ``flowspec eval``,
``bits_per_dim`` of a model in eval mode) stays the uniform-dequantisation bound, comparable with
any other model. Likelihood runs keep the default, uniform noise in training too. The inverse
floors back to integers either way. Gaussian noise can leave [0, 1], so follow it with layers
defined on the whole real line (TarFlow scales to [-1, 1]; a ``logit`` would see values outside
its domain).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from flowspec.layers.base import OpDef, StrictModel, same_shape
from flowspec.layers.cost import CostContext, OpCost

__all__ = ["OP", "DequantizeSpec", "GaussianNoiseSpec", "UniformNoiseSpec"]


class UniformNoiseSpec(StrictModel):
    """u ~ U[0, 1) per element, in training and in evaluation (RealNVP, Glow)."""

    type: Literal["uniform"] = "uniform"


class GaussianNoiseSpec(StrictModel):
    """Training: (x + 1/2) / levels + sigma * N(0, 1) per element (TarFlow); evaluation: uniform."""

    type: Literal["gaussian"] = "gaussian"
    sigma: Annotated[float, Field(gt=0)] = 0.025


class DequantizeSpec(StrictModel):
    """``levels`` integer values per element; ``noise`` is ``{type: uniform}`` (default) or
    ``{type: gaussian, sigma: 0.025}`` (training-time Gaussian noise augmentation, uniform in
    evaluation; ``sigma`` on the [0, 1] output scale)."""

    type: Literal["dequantize"]
    # at most 16-bit data: beyond, x + u no longer has the precision to floor back to x
    levels: Annotated[int, Field(ge=2, le=65536)] = 256
    noise: Annotated[Union[UniformNoiseSpec, GaussianNoiseSpec], Field(discriminator="type")] = (
        Field(default_factory=UniformNoiseSpec)
    )


def _cost(spec: DequantizeSpec, ctx: CostContext) -> OpCost:
    return OpCost()


OP = OpDef(
    kind="dequantize",
    spec=DequantizeSpec,
    infer=same_shape,
    role="preprocess",
    summary="uniform dequantisation of integer data to [0, 1) (or Gaussian noise in training), "
    "log-det -D log(levels)",
    cost=_cost,
)
