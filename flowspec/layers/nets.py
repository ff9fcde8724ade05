"""The conditioner networks of couplings (``net: {type: ...}``): one table, torch-free.

Each row of :data:`NETS` is a :class:`NetDef`: the spec model, the rank of input it takes (1:
vectors, 3: images) and its receptive field (how far, in pixels, an output can see; None =
dense), which the mixing analysis uses. The torch modules live in :mod:`flowspec.nn.nets`, in a
table with the same keys. Adding a conditioner: a spec model and a row here, a module and a row
there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from flowspec.layers.base import PositiveInt, SpecRow, StrictModel

__all__ = ["NETS", "Activation", "GlowConvSpec", "MLPSpec", "NetDef", "NetSpec", "ResNetSpec"]

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


@dataclass(frozen=True)
class NetDef(SpecRow):
    """One conditioner type: its spec model, the input rank it takes and its receptive field."""

    rank: int
    radius: Callable[[Any], int | None]


NETS: dict[str, NetDef] = {
    d.type: d
    for d in (
        NetDef(MLPSpec, 1, lambda net: None),
        # conv3x3, conv1x1, conv3x3: an output sees 2 pixels away
        NetDef(GlowConvSpec, 3, lambda net: 2),
        # conv3x3 in, two conv3x3 per residual block, conv3x3 out
        NetDef(ResNetSpec, 3, lambda net: 2 + 2 * net.blocks),
    )
}
NetSpec = Annotated[Union[tuple(d.spec for d in NETS.values())], Field(discriminator="type")]  # type: ignore[valid-type]
