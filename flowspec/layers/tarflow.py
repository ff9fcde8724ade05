"""``tarflow``: TarFlow's autoregressive affine block over a token sequence (Zhai et al. 2025).

On tokens ``x`` of shape ``(T, D)`` a causal transformer computes, for each token ``i``, a shift
``b_i`` and a log-scale ``a_i`` from the tokens before it only; the block maps
``z_i = (x_i - b_i) * exp(-a_i)`` (log-determinant ``-sum(a)``). Its Jacobian is block
lower-triangular over tokens with diagonal blocks ``diag(exp(-a_i))``.

``start: shift`` is TarFlow's one-token output shift: the transformer reads tokens ``0..T-2``
and its output at position ``i - 1`` parameterises token ``i``, so token 0 passes unchanged.
``start: learned`` is STARFlow's start-of-sequence token: the transformer reads a learned start
token followed by tokens ``0..T-2``, so token 0 gets a learned affine map too. ``order: reverse``
runs the autoregression from the last token to the first; ``alternating`` is ``forward`` on even
repetitions of the enclosing ``repeat`` and ``reverse`` on odd ones (TarFlow alternates its
blocks' direction). ``log_scale: softplus`` is STARFlow's ``exp(a) = softplus(raw + log(e - 1))``
(1 at ``raw = 0``); ``clip: c`` is STARFlow's ``soft_clip``, ``c * tanh(out / c)`` on both outputs;
``final_norm: true`` puts a LayerNorm before the output projection (STARFlow's
``use_final_norm``), which keeps the outputs bounded however large the inputs: without it the
output grows with the input, and sampling far from the data can overflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from flowspec.layers.base import (
    Deps,
    InferContext,
    Inferred,
    OpDef,
    PositiveInt,
    Problem,
    Shape,
    StrictModel,
)
from flowspec.layers.bits import or_reduce
from flowspec.layers.cost import CostContext, OpCost, Saved, TensorInfo, prefixed, transformer
from flowspec.layers.nets import heads_problem

__all__ = ["OP", "TarFlowSpec", "triangular_mix"]


class TarFlowSpec(StrictModel):
    """A TarFlow block: ``depth`` causal pre-LayerNorm attention + MLP layers of ``width``
    channels and ``heads`` heads over the tokens, an input projection and learned positional
    embedding before them, a zero-initialised output projection after them (a fresh block is
    the identity). ``log_scale: none`` is TarFlow's ``exp(-a)``; ``softplus`` and ``clip`` are
    STARFlow's options."""

    type: Literal["tarflow"]
    width: PositiveInt = 64
    depth: PositiveInt = 2
    heads: PositiveInt = 4
    mlp_ratio: PositiveInt = 4
    log_scale: Literal["none", "softplus"] = "none"
    clip: Annotated[float, Field(gt=0)] | None = None
    order: Literal["forward", "reverse", "alternating"] = "forward"
    start: Literal["shift", "learned"] = "shift"
    final_norm: bool = False


def _infer(spec: TarFlowSpec, ctx: InferContext) -> Inferred:
    problems = heads_problem(spec.width, spec.heads, ("heads",))
    if ctx.in_shape[0] == 1 and spec.start == "shift":
        problems.append(
            Problem(
                "tarflow-tokens",
                "a tarflow block with start: shift leaves token 0 unchanged, and this sequence "
                f"has only 1 token (shape {ctx.in_shape}), so it would transform nothing",
                "use a smaller patch size, or start: learned",
                (),
            )
        )
    reverse = spec.order == "reverse" or (spec.order == "alternating" and ctx.repeat_index % 2)
    params: dict[str, Any] = {"reverse": bool(reverse), "start": spec.start}
    if ctx.context:  # the transformer adds a linear map of the features to every token
        params["context"] = ctx.context
    return Inferred((ctx.in_shape,), params, tuple(problems))


def triangular_mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Token ``i`` of the output depends on its own input elements (elementwise) and on every
    element of the tokens before it (after it, for a reversed block); and on the context, if
    the block takes it, for every token the transformer parameterises: all but the first
    (the last, reversed) with ``start: shift``, which passes unchanged; all with ``learned``.

    Example:
        >>> rows = np.array([[1], [2], [4]], dtype=np.uint64)  # 3 tokens of 1 value
        >>> triangular_mix({"reverse": False}, (3, 1), rows)[0].ravel().tolist()
        [1, 3, 7]
    """
    t, d = in_shape
    rows = deps.reshape(t, d, -1)
    tokens = or_reduce(rows, axis=1)  # (t, words): every value of each token
    if params["reverse"]:
        tokens = tokens[::-1]
    before = np.zeros_like(tokens)
    before[1:] = np.bitwise_or.accumulate(tokens, axis=0)[:-1]  # tokens strictly before
    if context is not None:
        first = 0 if params.get("start", "shift") == "learned" else 1
        before[first:] |= context
    if params["reverse"]:
        before = before[::-1]
    return ((rows | before[:, None, :]).reshape(deps.shape),)


def _cost(spec: TarFlowSpec, ctx: CostContext) -> OpCost:
    """The causal transformer on the ``L`` tokens it reads (``T - 1``, or ``T`` with a learned
    start token), outputting a shift and a log-scale per value. Besides the transformer's own
    (:func:`flowspec.layers.cost.transformer`) training keeps the sequence it reads (the input,
    or a new tensor when the block is reversed or prepends its start token), the context
    features its context map reads (a conditional flow's shared ``features`` storage), the soft
    clip's tanh output, the softplus scale's intermediates, ``exp(-a)`` and ``x - b``."""
    t, d = ctx.in_shape
    learned = spec.start == "learned"
    length = t if learned else t - 1
    context = ctx.params.get("context", 0)
    sizes = {"width": spec.width, "depth": spec.depth, "heads": spec.heads}
    net = transformer(
        length, d, 2 * d, **sizes, mlp_ratio=spec.mlp_ratio, final_norm=spec.final_norm,
        context=context,
    )  # fmt: skip
    tensors = ((TensorInfo("start", (1, 1, d)),) if learned else ()) + prefixed("net", net.tensors)
    reads_input = not learned and not ctx.params["reverse"]
    moved = length * d
    saved = [Saved(t * d, "input" if reads_input else "sequence"), Saved(net.hidden)]
    saved += [Saved(context, "features")] if context else []
    saved += [Saved(2 * moved)] if spec.clip is not None else []
    saved += [Saved(2 * moved + moved // 2)] if spec.log_scale == "softplus" else []
    saved += [Saved(moved), Saved(moved)]  # exp(-a) and x - b
    return OpCost(tensors, net.flops, saved=tuple(saved))


OP = OpDef(
    kind="tarflow",
    spec=TarFlowSpec,
    infer=_infer,
    role="autoregressive",
    summary="TarFlow block: causal-transformer affine autoregression over tokens",
    mix=triangular_mix,
    ranks=(2,),
    codes=("attention-heads", "tarflow-tokens"),
    cost=_cost,
)
