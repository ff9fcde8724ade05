"""What an op costs, torch-free: its tensors, its FLOPs and what training stores for it.

Each layer kind's record (:class:`~flowspec.layers.base.OpDef`) has a ``cost`` rule returning an
:class:`OpCost` for one op instance; conditioners (:mod:`flowspec.layers.nets`) and transforms
(:mod:`flowspec.layers.transforms`) have rules of their own that couplings combine.
:func:`flowspec.graph.cost.cost_report` sums them over a graph, per level and in total.

Conventions, chosen so that every number can be checked against torch
(``tests/graph/test_cost.py``):

- ``tensors``: every parameter and every persistent buffer, named relative to the op as in a
  weights file (``net.layers.0.weight``); their element counts are the parameter count exactly.
- ``flops``: forward FLOPs per example as ``torch.utils.flop_counter`` counts them: 2 per
  multiply-add of matrix products and convolutions, elementwise work not counted.
  ``flops_batch``: the same, once per batch (building a weight, e.g. Glow's LU product).
- ``saved``: what autograd keeps for backward, as distinct storages of elements per example. A
  storage named ``"input"`` is the op's input (shared with whoever else saves it, e.g. the op
  before it); any other name is local to the op, so two uses of one name are one storage.
  Per-batch constants (masks, per-channel statistics) are left out, except weights built and
  kept once per batch (a MADE's masked weight ``weight * mask`` and the mask its product
  keeps): ``saved_batch``, elements per batch (plain memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

__all__ = [
    "ACTIVATION_SAVES",
    "CostContext",
    "NetCost",
    "OpCost",
    "Saved",
    "TensorInfo",
    "conv",
    "linear",
    "prefixed",
    "transformer",
]


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of the weights file: ``dtype`` ``float`` is the flow's floating type."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float"
    param: bool = True

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Saved:
    """One storage autograd keeps: ``elements`` per example; ``storage`` names it (see the
    module docstring: ``"input"`` is the op's input)."""

    elements: int
    storage: str = "new"


@dataclass(frozen=True)
class OpCost:
    """The cost of one op; see the module docstring. ``output_is_input`` lists the output
    ports that are views of the input's storage (a split's halves), not new tensors."""

    tensors: tuple[TensorInfo, ...] = ()
    flops: int = 0
    flops_batch: int = 0
    saved: tuple[Saved, ...] = ()
    output_is_input: tuple[int, ...] = ()
    saved_batch: int = 0

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors if t.param)


@dataclass(frozen=True)
class CostContext:
    """What a cost rule may know: the op's shapes, its resolved params, whether its input
    requires grad (ops without parameters save nothing for an input that does not), and the
    optimisation passes (:mod:`flowspec.spec.passes`) that change how it computes."""

    in_shape: tuple[int, ...]
    out_shapes: tuple[tuple[int, ...], ...]
    params: Any = field(default_factory=dict)
    grad_in: bool = True
    passes: frozenset[str] = frozenset()  # the optimisation passes the flow is compiled with


@dataclass(frozen=True)
class NetCost:
    """A conditioner's tensors (names relative to it), FLOPs per example, and the elements per
    example it saves besides its input (which its first layer always saves)."""

    tensors: tuple[TensorInfo, ...]
    flops: int
    hidden: int


# Elements an activation makes autograd save per element of its input, beyond what the next
# layer saves anyway: ReLU and tanh keep their output (which the next layer keeps too); the
# others keep their input and the next layer keeps their output.
ACTIVATION_SAVES: dict[str, int] = {
    "relu": 1,
    "tanh": 1,
    "elu": 2,
    "leaky_relu": 2,
    "gelu": 2,
    "silu": 2,
}


def linear(name: str, n_in: int, n_out: int) -> tuple[tuple[TensorInfo, ...], int]:
    """A ``Linear(n_in, n_out)``: its weight and bias, and 2 FLOPs per multiply-add."""
    tensors = (TensorInfo(f"{name}.weight", (n_out, n_in)), TensorInfo(f"{name}.bias", (n_out,)))
    return tensors, 2 * n_in * n_out


def conv(
    name: str, c_in: int, c_out: int, kernel: int, positions: int
) -> tuple[tuple[TensorInfo, ...], int]:
    """A same-padded ``Conv2d(c_in, c_out, kernel)`` over ``positions`` pixels."""
    tensors = (
        TensorInfo(f"{name}.weight", (c_out, c_in, kernel, kernel)),
        TensorInfo(f"{name}.bias", (c_out,)),
    )
    return tensors, 2 * c_in * c_out * kernel * kernel * positions


def prefixed(prefix: str, tensors: tuple[TensorInfo, ...]) -> tuple[TensorInfo, ...]:
    """``tensors`` renamed under ``prefix`` (``net`` -> ``net.layers.0.weight``).

    Example:
        >>> prefixed("net", (TensorInfo("w", (2, 3)),))[0].name
        'net.w'
    """
    return tuple(TensorInfo(f"{prefix}.{t.name}", t.shape, t.dtype, t.param) for t in tensors)


def transformer(
    tokens: int,
    in_width: int,
    out_values: int,
    *,
    width: int,
    depth: int,
    heads: int,
    mlp_ratio: int,
    final_norm: bool,
    context: int = 0,
) -> NetCost:
    """A :class:`~flowspec.nn.attention.TokenTransformer` on ``tokens`` tokens of ``in_width``
    values with ``out_values`` outputs per token (``params * out_width``), tensor names relative
    to it. FLOPs: the linear maps per token, and per layer the two attention products,
    ``4 T^2 width``, counted in full under a causal mask too, as torch's counter does for its
    attention kernels. Saved per layer (the scaled-dot-product kernel keeps q, k, v in the
    storage of the qkv map's output, its output, whose heads the next map reads merged without a
    copy, and one log-sum-exp per head and token): each LayerNorm's input, mean and rstd, the
    input of each linear map (the LayerNorms' outputs, the MLP's hidden layer after GELU), and
    GELU's input: ``8 T W + 2 R T W + (4 + heads) T``; then the final LayerNorm's
    (``T W + 2 T``, if any) and the output projection's input ``T W``. The input projection
    keeps the input, which is not counted here (the caller's ``Saved``)."""
    t, w = tokens, width
    tensors, flops = linear("proj_in", in_width, w)
    tensors += (TensorInfo("pos", (t, w)),)
    flops *= t
    if context:
        layer, f = linear("proj_context", context, w)
        tensors, flops = tensors + layer, flops + f
    for i in range(depth):
        block = f"blocks.{i}"
        tensors += _layer_norm(f"{block}.norm_attn", w)
        for name, n_in, n_out in (
            ("attn.qkv", w, 3 * w),
            ("attn.out", w, w),
            ("norm_mlp", 0, 0),
            ("mlp.0", w, mlp_ratio * w),
            ("mlp.2", mlp_ratio * w, w),
        ):
            if name == "norm_mlp":
                tensors += _layer_norm(f"{block}.norm_mlp", w)
                continue
            layer, f = linear(f"{block}.{name}", n_in, n_out)
            tensors, flops = tensors + layer, flops + f * t
        flops += 4 * t * t * w
    hidden = depth * ((8 + 2 * mlp_ratio) * t * w + (4 + heads) * t) + t * w
    if final_norm:
        tensors += _layer_norm("norm_out", w)
        hidden += t * w + 2 * t
    layer, f = linear("proj_out", w, out_values)
    return NetCost(tensors + layer, flops + f * t, hidden)


def _layer_norm(name: str, width: int) -> tuple[TensorInfo, ...]:
    return (TensorInfo(f"{name}.weight", (width,)), TensorInfo(f"{name}.bias", (width,)))
