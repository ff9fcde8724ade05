"""Conditioner networks of couplings, one table keyed like :data:`flowspec.layers.nets.NETS`.

``build_net(spec, in_shape, out_shape, n_out, context)`` returns a module mapping
``(N, *in_shape)`` and, for a conditional flow, the context features ``(N, context)`` to a tuple
of ``n_out`` tensors of shape ``(N, *out_shape)``:
one per parameter of the transformed elements (for an affine coupling: shift, then raw
log-scale). The last layer's outputs are laid out parameter-major, so output ``k`` of parameter
``p`` is channel/feature ``p * prod(out_shape) + k``; the tuple holds views of it, no copies.
``zero_init`` zeroes the last layer so a fresh coupling is the identity.

How the context enters: an MLP reads it concatenated to its input; the convolutional nets read it
as ``context`` extra input channels, each the same at every position (broadcast), so their first
convolution gives every position a learned function of the context (a per-channel bias, in
effect). Nets built with ``context=0`` take none and are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.layers.nets import GlowConvSpec, MLPSpec, ResNetSpec
from flowspec.nn.emit import Emitted, literal
from flowspec.nn.vit import ViTNet

__all__ = [
    "ACTIVATIONS",
    "ACTIVATIONS_SOURCE",
    "NETS",
    "GlowConvNet",
    "MLPNet",
    "ResNet",
    "build_net",
    "with_context",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def _zero(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def with_context(x: Tensor, context: Tensor | None) -> Tensor:
    """``x`` with the context features appended along dim 1: concatenated for vectors
    ``(N, D)``, as constant channels for images ``(N, C, H, W)``; ``x`` itself without one."""
    if context is None:
        return x
    if x.dim() == 4:
        context = context[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, context.to(x.dtype)], dim=1)


def _mlp(sizes: list[int], activation: str, zero_last: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    if zero_last:
        _zero(layers[-1])
    return nn.Sequential(*layers)


class MLPNet(nn.Module):
    """Vector conditioner: one shared trunk (last layer outputs all), or one tower per output."""

    def __init__(
        self,
        spec: MLPSpec,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        n_out: int,
        context: int = 0,
    ) -> None:
        super().__init__()
        d_in, d_out = prod(in_shape) + context, prod(out_shape)
        self.n_out, self.separate = n_out, spec.towers == "separate"
        self.out_shape = tuple(out_shape)
        self.sizes, self.activation = [d_in, *spec.hidden, d_out], spec.activation
        if self.separate:
            self.towers = nn.ModuleList(
                _mlp([d_in, *spec.hidden, d_out], spec.activation, spec.zero_init)
                for _ in range(n_out)
            )
        else:
            self.trunk = _mlp([d_in, *spec.hidden, n_out * d_out], spec.activation, spec.zero_init)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        x = with_context(x, context)
        if self.separate:
            parts = tuple(tower(x) for tower in self.towers)
        else:
            parts = self.trunk(x).chunk(self.n_out, dim=1)
        if len(self.out_shape) == 1:
            return parts
        return tuple(p.reshape(x.shape[0], *self.out_shape) for p in parts)

    def emit(self) -> Emitted:
        args = [literal(self.sizes), literal(self.activation), str(self.n_out), str(self.separate),
                literal(self.out_shape)]  # fmt: skip
        own = {"ACTIVATIONS": ACTIVATIONS_SOURCE, "MLPNet": MLP_SOURCE}
        return Emitted(f"MLPNet({', '.join(args)})", own)


class GlowConvNet(nn.Module):
    """Glow's conditioner: conv3x3 - ReLU - conv1x1 - ReLU - zero-initialised conv3x3."""

    def __init__(
        self,
        spec: GlowConvSpec,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        n_out: int,
        context: int = 0,
    ) -> None:
        super().__init__()
        ch, self.n_out = spec.channels, n_out
        self.out_shape = tuple(out_shape)
        self.sizes = (in_shape[0], ch, n_out * out_shape[0])
        self.layers = nn.Sequential(
            nn.Conv2d(in_shape[0] + context, ch, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(),
            _zero(nn.Conv2d(ch, n_out * out_shape[0], 3, padding=1)),
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        return self.layers(with_context(x, context)).chunk(self.n_out, dim=1)

    def emit(self) -> Emitted:
        expr = f"GlowConvNet({literal(self.sizes)}, {self.n_out})"
        return Emitted(expr, {"GlowConvNet": GLOW_CONV_SOURCE})


class ResidualBlock(nn.Module):
    """norm - ReLU - conv3x3 - norm - ReLU - conv3x3, plus the input."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        make_norm: Callable[[], nn.Module] = (
            (lambda: nn.BatchNorm2d(channels)) if norm == "batch" else nn.Identity
        )
        self.body = nn.Sequential(
            make_norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """RealNVP's conditioner: conv3x3 in, residual blocks, ReLU, conv3x3 out."""

    def __init__(
        self,
        spec: ResNetSpec,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        n_out: int,
        context: int = 0,
    ) -> None:
        super().__init__()
        ch, self.n_out = spec.channels, n_out
        self.out_shape = tuple(out_shape)
        self.sizes, self.blocks = (in_shape[0], ch, n_out * out_shape[0]), spec.blocks
        self.norm = spec.norm
        out = nn.Conv2d(ch, n_out * out_shape[0], 3, padding=1)
        self.layers = nn.Sequential(
            nn.Conv2d(in_shape[0] + context, ch, 3, padding=1),
            *(ResidualBlock(ch, spec.norm) for _ in range(spec.blocks)),
            nn.ReLU(),
            _zero(out) if spec.zero_init else out,
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        return self.layers(with_context(x, context)).chunk(self.n_out, dim=1)

    def emit(self) -> Emitted:
        expr = f"ResNet({literal(self.sizes)}, {self.blocks}, {literal(self.norm)}, {self.n_out})"
        return Emitted(expr, {"ResNet": RESNET_SOURCE})


NETS: dict[str, type[nn.Module]] = {
    "mlp": MLPNet,
    "glow_conv": GlowConvNet,
    "resnet": ResNet,
    "vit": ViTNet,
}


ACTIVATIONS_SOURCE = """
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
"""

MLP_SOURCE = '''
def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPNet(nn.Module):
    """Vector conditioner: one trunk whose last layer outputs every parameter (parameter-major),
    or one tower per parameter; returns n_out tensors shaped like the transformed part."""

    def __init__(self, sizes, activation: str, n_out: int, separate: bool, out_shape) -> None:
        super().__init__()
        self.n_out, self.separate, self.out_shape = n_out, separate, tuple(out_shape)
        if separate:
            self.towers = nn.ModuleList(mlp(sizes, activation) for _ in range(n_out))
        else:
            self.trunk = mlp([*sizes[:-1], n_out * sizes[-1]], activation)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        if self.separate:
            parts = tuple(tower(x) for tower in self.towers)
        else:
            parts = self.trunk(x).chunk(self.n_out, dim=1)
        if len(self.out_shape) == 1:
            return parts
        return tuple(p.reshape(x.shape[0], *self.out_shape) for p in parts)
'''

GLOW_CONV_SOURCE = '''
class GlowConvNet(nn.Module):
    """Glow's conditioner: conv3x3 - ReLU - conv1x1 - ReLU - conv3x3, outputs chunked by
    parameter along the channels."""

    def __init__(self, sizes: tuple[int, int, int], n_out: int) -> None:
        super().__init__()
        c_in, ch, c_out = sizes
        self.n_out = n_out
        self.layers = nn.Sequential(
            nn.Conv2d(c_in, ch, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
            nn.ReLU(),
            nn.Conv2d(ch, c_out, 3, padding=1),
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        return self.layers(x).chunk(self.n_out, dim=1)
'''

RESNET_SOURCE = '''
class ResidualBlock(nn.Module):
    """norm - ReLU - conv3x3 - norm - ReLU - conv3x3, plus the input."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()

        def make_norm() -> nn.Module:
            return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()

        self.body = nn.Sequential(
            make_norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Module):
    """RealNVP's conditioner: conv3x3 in, residual blocks, ReLU, conv3x3 out, outputs chunked
    by parameter along the channels."""

    def __init__(self, sizes: tuple[int, int, int], blocks: int, norm: str, n_out: int) -> None:
        super().__init__()
        c_in, ch, c_out = sizes
        self.n_out = n_out
        self.layers = nn.Sequential(
            nn.Conv2d(c_in, ch, 3, padding=1),
            *(ResidualBlock(ch, norm) for _ in range(blocks)),
            nn.ReLU(),
            nn.Conv2d(ch, c_out, 3, padding=1),
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, ...]:
        return self.layers(x).chunk(self.n_out, dim=1)
'''


def build_net(
    spec: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...], n_out: int, context: int = 0
) -> nn.Module:
    """The conditioner ``spec`` describes, for the given input and per-output shapes, reading
    ``context`` context features besides its input (0: none)."""
    return NETS[spec.type](spec, in_shape, out_shape, n_out, context)
