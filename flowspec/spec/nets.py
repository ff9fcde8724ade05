"""Spec models of the conditioner networks used inside couplings (``net: {type: ...}``).

The torch modules they describe are built in :mod:`flowspec.nets`; this file stays torch-free so
that validating a spec never imports torch.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from flowspec.spec.base import PositiveInt, StrictModel

Activation = Literal["relu", "tanh", "elu", "leaky_relu", "gelu", "silu"]


class MLPSpec(StrictModel):
    """Fully connected conditioner for vector data.

    ``towers: separate`` builds one MLP for the shift and one for the log-scale (the course
    notebook); ``shared`` builds one trunk whose last layer outputs both.
    """

    type: Literal["mlp"] = "mlp"
    hidden: tuple[PositiveInt, ...] = (64, 64)
    activation: Activation = "relu"
    towers: Literal["shared", "separate"] = "shared"
    zero_init: bool = Field(
        True, description="zero the last layer so the coupling starts as identity"
    )


class GlowConvSpec(StrictModel):
    """Glow's conditioner: conv3x3 - ReLU - conv1x1 - ReLU - zero-initialised conv3x3."""

    type: Literal["glow_conv"] = "glow_conv"
    channels: PositiveInt = 512


class ResNetSpec(StrictModel):
    """RealNVP's residual conditioner: conv3x3 in, ``blocks`` residual blocks, conv3x3 out."""

    type: Literal["resnet"] = "resnet"
    channels: PositiveInt = 64
    blocks: PositiveInt = 4
    norm: Literal["batch", "none"] = "batch"
    zero_init: bool = True


NET_SPECS = (MLPSpec, GlowConvSpec, ResNetSpec)
NetSpec = Annotated[Union[MLPSpec, GlowConvSpec, ResNetSpec], Field(discriminator="type")]
