"""``autoregressive``: masked autoregressive (MAF) and inverse autoregressive (IAF) layers.

Each element ``x_i`` is transformed elementwise (any row of the transform table) with parameters
that a MADE (a masked MLP, Germain et al. 2015) computes from the elements before it in an
order, so the Jacobian is triangular in that order. ``direction: maf`` maps data to latent in one
pass of the network (density evaluation) and inverts in D passes (sampling); ``iaf`` is the
reverse. The D-pass direction is exact: pass ``r`` fixes the element at position ``r``.

Everything the graph stage needs is computed here without torch: the resolved order, the MADE's
unit degrees and from them the exact dependency structure (a hidden layer narrower than the
order leaves some pairs unconnected), which the mixing rule propagates and the torch module
(:mod:`flowspec.nn.autoregressive`) builds its masks from.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from flowspec.layers.base import (
    Deps,
    InferContext,
    Inferred,
    OpDef,
    PositiveInt,
    Problem,
    Seed,
    Shape,
    StrictModel,
)
from flowspec.layers.cost import ACTIVATION_SAVES, CostContext, OpCost, Saved, linear, prefixed
from flowspec.layers.nets import Activation
from flowspec.layers.transforms import TRANSFORMS, AffineSpec, TransformSpec, check_transform

__all__ = [
    "OP",
    "AutoregressiveSpec",
    "MADESpec",
    "hidden_degrees",
    "reach_thresholds",
    "resolve_order",
]

Order = Literal["natural", "reversed", "alternating", "random"]


class MADESpec(StrictModel):
    """The MADE conditioner of an ``autoregressive`` layer: a masked MLP with these hidden
    widths (layers at least D - 1 wide, D with a context, keep every dependency the order
    allows). ``zero_init`` zeroes its last layer, so the layer starts as the identity."""

    type: Literal["made"] = "made"
    hidden: tuple[PositiveInt, ...] = (64, 64)
    activation: Activation = "relu"
    zero_init: bool = True


class AutoregressiveSpec(StrictModel):
    """Autoregressive layer on vectors: ``direction`` ``maf`` (one pass data -> latent, D passes
    back) or ``iaf`` (the reverse). ``order``: ``natural``, ``reversed``, ``alternating``
    (natural on even repetitions of the enclosing ``repeat``, reversed on odd ones), ``random``
    (from ``seed``, else from the flow's seed and the op's name) or an explicit permutation of
    the element indices, first conditioned-on first."""

    type: Literal["autoregressive"]
    direction: Literal["maf", "iaf"] = "maf"
    order: Order | tuple[int, ...] = "alternating"
    seed: Seed | None = None
    transform: TransformSpec = Field(default_factory=AffineSpec)
    net: MADESpec = Field(default_factory=MADESpec)


def resolve_order(spec: AutoregressiveSpec, ctx: InferContext) -> tuple[int, ...]:
    """The order as a permutation: entry ``r`` is the element placed ``r``-th.

    Example:
        >>> spec = AutoregressiveSpec(type="autoregressive", order="alternating")
        >>> resolve_order(spec, InferContext((3,), repeat_index=1))
        (2, 1, 0)
    """
    n = ctx.in_shape[0]
    if not isinstance(spec.order, str):
        return tuple(int(i) for i in spec.order)
    if spec.order == "random":
        order = list(range(n))
        random.Random(ctx.seed if spec.seed is None else spec.seed).shuffle(order)
        return tuple(order)
    flip = spec.order == "reversed" or (spec.order == "alternating" and ctx.repeat_index % 2)
    return tuple(range(n - 1, -1, -1)) if flip else tuple(range(n))


def input_degrees(order: Sequence[int]) -> list[int]:
    """``degrees[j]`` in ``1..D``: the position of element ``j`` in the order, plus one."""
    degrees = [0] * len(order)
    for position, element in enumerate(order):
        degrees[element] = position + 1
    return degrees


def hidden_degrees(hidden: Sequence[int], features: int, context: bool) -> list[list[int]]:
    """Degrees of the hidden units of each layer: cycling through ``1..D-1`` (``0..D-1`` with a
    context, whose degree-0 units see only the context), so a layer at least that wide holds
    every degree. A unit of degree ``k`` sees inputs of degree ``<= k``; the outputs of element
    ``i`` see units of degree ``< degrees[i]``.

    Example:
        >>> hidden_degrees([4, 2], 3, context=False)
        [[1, 2, 1, 2], [1, 2]]
    """
    low, high = (0 if context else 1), max(features - 1, 0 if context else 1)
    span = high - low + 1
    return [[low + unit % span for unit in range(width)] for width in hidden]


def reach_thresholds(
    order: Sequence[int], hidden: Sequence[int], context: bool
) -> tuple[list[float], float]:
    """For each input element ``j``, the smallest degree ``m_j`` a path through the MADE can
    carry it to: the outputs of element ``i`` depend on ``x_j`` exactly when ``m_j <
    degrees[i]`` (for generic weights). Also ``m`` of the context, which enters every unit of
    the first layer. Unreachable: infinity.

    A path goes through units of non-decreasing degree, so the greedy choice (the smallest
    degree at least as large in each layer) decides reachability in O(layers x width).
    """
    layers = [sorted(set(layer)) for layer in hidden_degrees(hidden, len(order), context)]

    def carry(start: float, layers: list[list[int]]) -> float:
        for present in layers:
            start = next((k for k in present if k >= start), float("inf"))
        return start

    inputs = [carry(d, layers) for d in input_degrees(order)]
    if not layers:
        return inputs, 0.0
    return inputs, carry(layers[0][0], layers[1:])


def autoregressive_mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Element ``i`` gains the elements (and the context) the MADE connects to it: directly for
    ``maf`` (one pass of the network: a cumulative OR over the inputs sorted by how far they
    reach, vectorised), through earlier outputs for ``iaf`` (its forward is the D-pass solve, so
    dependencies compose along the order: one OR per element, in the order)."""
    order, hidden = params["order"], params["hidden"]
    if len(order) != len(deps):
        return (deps,)
    thresholds, context_reach = reach_thresholds(order, hidden, bool(params.get("context")))
    degrees = np.asarray(input_degrees(order))
    by_reach = np.argsort(np.asarray(thresholds), kind="stable")
    reach = np.asarray(thresholds)[by_reach]
    sources = np.searchsorted(reach, degrees, side="left")  # how many inputs reach element i
    extra = None if context is None else np.where((context_reach < degrees)[:, None], context, 0)
    if params.get("direction") != "iaf":
        gained = np.bitwise_or.accumulate(deps[by_reach], axis=0) if len(deps) else deps
        out = deps.copy()
        has = sources > 0
        out[has] |= gained[sources[has] - 1]
        return (out if extra is None else out | extra,)
    out = deps if extra is None else deps | extra
    out = out.copy()
    seen, taken = np.zeros(deps.shape[1], dtype=deps.dtype), 0
    for element in order:  # increasing degree: every source of an element is final before it
        while taken < sources[element]:
            seen |= out[by_reach[taken]]
            taken += 1
        out[element] |= seen
    return (out,)


def _infer(spec: AutoregressiveSpec, ctx: InferContext) -> Inferred:
    n = ctx.in_shape[0]
    problems = check_transform(spec.transform)
    if not isinstance(spec.order, str) and sorted(spec.order) != list(range(n)):
        problems.append(
            Problem(
                "order-invalid",
                f"order {list(spec.order)} is not a permutation of the {n} element indices",
                f"list each of 0..{n - 1} once, or use natural, reversed, alternating or random",
                ("order",),
            )
        )
        return Inferred((ctx.in_shape,), {"order": tuple(range(n))}, tuple(problems))
    params: dict[str, Any] = {
        "order": resolve_order(spec, ctx),
        "hidden": tuple(spec.net.hidden),
        "direction": spec.direction,
    }
    if ctx.context:
        params["context"] = ctx.context
    return Inferred((ctx.in_shape,), params, tuple(problems))


def _passes(params: Mapping[str, Any]) -> tuple[int, int]:
    n = len(params["order"])
    return (1, n) if params.get("direction", "maf") == "maf" else (n, 1)


def autoregressive_cost(spec: AutoregressiveSpec, ctx: CostContext) -> OpCost:
    """The MADE (masked linear layers ``made.layers.0, .2, ...``; the context's unmasked map
    ``made.context`` into the first layer) and the transform, once per pass: one pass in the
    one-pass direction, D in the other (MAF's forward is one pass, IAF's is D). Each pass's
    first layer keeps its input (the op's input in a one-pass forward, the pass's partial
    solution otherwise), the context's map the features, and every masked layer its masked
    weight and the mask that product keeps (per batch, once per pass)."""
    d = ctx.in_shape[0]
    transform = TRANSFORMS[spec.transform.type]
    hidden = list(ctx.params["hidden"])
    sizes = [d, *hidden, transform.n_params(spec.transform) * d]
    tensors: list[Any] = []
    flops = masked = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer, f = linear(f"layers.{2 * i}", a, b)
        tensors += layer
        flops, masked = flops + f, masked + a * b
    context = ctx.params.get("context", 0)
    if context:
        weight, f = linear("context", context, sizes[1])
        tensors.append(weight[0])  # no bias
        flops += f
    passes = 1 if ctx.params.get("direction", "maf") == "maf" else d
    moved = transform.cost(spec.transform, (d,))
    activations = sum(ACTIVATION_SAVES[spec.net.activation] * h for h in hidden)
    first = [Saved(d, "input")] if passes == 1 else []
    if passes == 1:
        per_pass = [Saved(activations), Saved(moved.saved)]
        shared = [Saved(d, "input")] if moved.saves_input else []
    else:  # each pass: its input u, the MADE, the transform's inverse
        per_pass = [Saved(d), Saved(activations), Saved(moved.saved_inverse)]
        shared = []
    shared += [Saved(context, "features")] if context else []
    saved = first + shared + [Saved(s.elements) for _ in range(passes) for s in per_pass]
    return OpCost(
        prefixed("made", tuple(tensors)) + moved.tensors,
        flops=flops * passes,
        saved=tuple(s for s in saved if s.elements),
        saved_batch=2 * masked * passes,
    )


OP = OpDef(
    kind="autoregressive",
    spec=AutoregressiveSpec,
    infer=_infer,
    role="autoregressive",
    summary="masked autoregressive (MAF) or inverse autoregressive (IAF) transform, MADE net",
    mix=autoregressive_mix,
    ranks=(1,),
    codes=("order-invalid", "spline-minimum"),
    passes=_passes,
    cost=autoregressive_cost,
)
