"""The conditioner networks of couplings (``net: {type: ...}``): one table, torch-free.

Each row of :data:`NETS` is a :class:`NetDef`: the spec model, the rank of input it takes (1:
vectors, 2: token sequences, 3: images), its receptive field (how far, in pixels, an output can
see; None = dense), which the mixing analysis uses, and a check of the shapes it is asked to map
(kept part in, transformed part out). The torch modules live in :mod:`flowspec.nn.nets`, in a
table with the same keys. Adding a conditioner: a spec model and a row here, a module and a row
there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from flowspec.layers.base import PositiveInt, Problem, Shape, SpecRow, StrictModel
from flowspec.layers.cost import (
    ACTIVATION_SAVES,
    NetCost,
    TensorInfo,
    conv,
    linear,
    prefixed,
    transformer,
)

__all__ = [
    "NETS",
    "Activation",
    "GlowConvSpec",
    "MLPSpec",
    "NetDef",
    "NetSpec",
    "ResNetSpec",
    "ViTSpec",
    "heads_problem",
]

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


class ViTSpec(StrictModel):
    """Jet's conditioner for couplings on token sequences: a bidirectional ViT (learned
    positional embedding, ``depth`` pre-LayerNorm attention + MLP blocks of ``width`` channels
    and ``heads`` heads, a final LayerNorm, a zero-initialised output projection). With a
    token mask (``checkerboard``, ``vstripes``, ``hstripes``) and ``net_input: half`` it reads
    only the kept tokens and its j-th output token parameterises the j-th transformed token, as
    in Jet; with a channel mask it reads every token's kept values."""

    type: Literal["vit"] = "vit"
    width: PositiveInt = 64
    depth: PositiveInt = 2
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4


def heads_problem(width: int, heads: int, at: tuple[str | int, ...]) -> list[Problem]:
    """A located problem when attention ``width`` does not split into ``heads`` equal heads."""
    if width % heads == 0:
        return []
    return [
        Problem(
            "attention-heads",
            f"width {width} does not split into {heads} heads of equal width",
            f"use a width that is a multiple of {heads} (e.g. {heads * max(1, width // heads)})",
            at,
        )
    ]


def _no_problems(net: Any, kept: Shape, moved: Shape) -> list[Problem]:
    return []


def _vit_fits(net: ViTSpec, kept: Shape, moved: Shape) -> list[Problem]:
    problems = heads_problem(net.width, net.heads, ("net", "heads"))
    if kept[0] != moved[0]:
        problems.append(
            Problem(
                "net-tokens",
                f"the vit conditioner maps each kept token to one transformed token, but this "
                f"mask keeps {kept[0]} tokens and transforms {moved[0]}",
                "use a patch grid with an even number of tokens, a channel mask, or "
                "net_input: masked",
                ("mask",),
            )
        )
    return problems


def _mlp_layers(
    prefix: str, sizes: list[int], activation: str
) -> tuple[list[TensorInfo], int, int]:
    """``Linear`` layers at indices 0, 2, 4, ... of an ``nn.Sequential`` with activations
    between: tensors, FLOPs and saved elements per example (beyond the input)."""
    tensors: list[TensorInfo] = []
    flops = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer, f = linear(f"{prefix}.{2 * i}", a, b)
        tensors += layer
        flops += f
    saved = sum(ACTIVATION_SAVES[activation] * h for h in sizes[1:-1])
    return tensors, flops, saved


def _mlp_cost(spec: MLPSpec, in_shape: Shape, out_shape: Shape, n_out: int) -> NetCost:
    d_in, d_out = prod(in_shape), prod(out_shape)
    if spec.towers == "separate":
        parts = [
            _mlp_layers(f"towers.{k}", [d_in, *spec.hidden, d_out], spec.activation)
            for k in range(n_out)
        ]
    else:
        parts = [_mlp_layers("trunk", [d_in, *spec.hidden, n_out * d_out], spec.activation)]
    tensors = tuple(t for part in parts for t in part[0])
    return NetCost(tensors, sum(p[1] for p in parts), sum(p[2] for p in parts))


def _glow_cost(spec: GlowConvSpec, in_shape: Shape, out_shape: Shape, n_out: int) -> NetCost:
    """conv3x3 - ReLU - conv1x1 - ReLU - conv3x3: each ReLU keeps its output."""
    ch, positions = spec.channels, prod(in_shape[1:])
    a, fa = conv("layers.0", in_shape[0], ch, 3, positions)
    b, fb = conv("layers.2", ch, ch, 1, positions)
    c, fc = conv("layers.4", ch, n_out * out_shape[0], 3, positions)
    return NetCost(a + b + c, fa + fb + fc, 2 * ch * positions)


def _resnet_cost(spec: ResNetSpec, in_shape: Shape, out_shape: Shape, n_out: int) -> NetCost:
    """conv in, residual blocks (norm - ReLU - conv3x3, twice), ReLU, conv out. Per block a
    batch norm keeps its input and a ReLU its output, twice; the last ReLU its output."""
    ch, positions = spec.channels, prod(in_shape[1:])
    tensors, flops = conv("layers.0", in_shape[0], ch, 3, positions)
    for block in range(1, spec.blocks + 1):
        for norm, conv_index in ((0, 2), (3, 5)):
            if spec.norm == "batch":
                tensors += prefixed(f"layers.{block}.body.{norm}", _batch_norm(ch))
            layer, f = conv(f"layers.{block}.body.{conv_index}", ch, ch, 3, positions)
            tensors, flops = tensors + layer, flops + f
    layer, f = conv(f"layers.{spec.blocks + 2}", ch, n_out * out_shape[0], 3, positions)
    per_block = 4 if spec.norm == "batch" else 2
    return NetCost(tensors + layer, flops + f, (per_block * spec.blocks + 1) * ch * positions)


def _vit_cost(
    spec: ViTSpec, in_shape: Shape, out_shape: Shape, n_out: int, context: int = 0
) -> NetCost:
    """The bidirectional transformer (with its encoder LayerNorm) under ``net``; with a
    context, its linear map of the features to the model width (added to every token)."""
    sizes = {"width": spec.width, "depth": spec.depth, "heads": spec.heads}
    net = transformer(
        in_shape[0], in_shape[1], n_out * out_shape[1], **sizes, mlp_ratio=spec.mlp_ratio,
        final_norm=True, context=context,
    )  # fmt: skip
    return NetCost(prefixed("net", net.tensors), net.flops, net.hidden)


def _batch_norm(channels: int) -> tuple[TensorInfo, ...]:
    return (
        TensorInfo("weight", (channels,)),
        TensorInfo("bias", (channels,)),
        TensorInfo("running_mean", (channels,), param=False),
        TensorInfo("running_var", (channels,), param=False),
        TensorInfo("num_batches_tracked", (), "int64", param=False),
    )


@dataclass(frozen=True)
class NetDef(SpecRow):
    """One conditioner type: its spec model, the input rank it takes, its receptive field, its
    cost rule ``(spec, in_shape, out_shape, n_out) -> NetCost``, ``fits(net, kept_shape,
    moved_shape)``: the problems of mapping those shapes (located relative to the coupling's
    spec path), and how it reads a conditional flow's context: ``appends_context`` (the MLP
    and the convolutional nets) takes the features as more inputs or channels, counted in the
    ``in_shape`` its cost rule gets; otherwise (``vit``: a linear map added to every token)
    the rule is called with the features' width as a fifth argument."""

    rank: int
    radius: Callable[[Any], int | None]
    cost: Callable[..., NetCost]
    fits: Callable[[Any, Shape, Shape], list[Problem]] = _no_problems
    appends_context: bool = True


NETS: dict[str, NetDef] = {
    d.type: d
    for d in (
        NetDef(MLPSpec, 1, lambda net: None, _mlp_cost),
        # conv3x3, conv1x1, conv3x3: an output sees 2 pixels away
        NetDef(GlowConvSpec, 3, lambda net: 2, _glow_cost),
        # conv3x3 in, two conv3x3 per residual block, conv3x3 out
        NetDef(ResNetSpec, 3, lambda net: 2 + 2 * net.blocks, _resnet_cost),
        # attention over every token it reads
        NetDef(ViTSpec, 2, lambda net: None, _vit_cost, _vit_fits, appends_context=False),
    )
}
NetSpec = Annotated[Union[tuple(d.spec for d in NETS.values())], Field(discriminator="type")]  # type: ignore[valid-type]
