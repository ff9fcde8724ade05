"""``split``: factor out the second half of the channels (features) as a latent.

Output port 0 is the kept half, which flows on; port 1 is the factored half, which becomes a
latent. With ``prior: learned`` (Glow) a zero-initialised conv (images) or linear map (vectors)
on the kept half gives a mean and log-std for the factored half; the factored half is then
standardised, z = (h - mean) * exp(-log_std), with log-determinant -sum(log_std), which is the
same model as a conditional Gaussian prior on h.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any, Literal

from flowspec.layers.base import Deps, InferContext, Inferred, OpDef, Problem, Shape, StrictModel
from flowspec.layers.bits import or_reduce, window_or
from flowspec.layers.cost import CostContext, OpCost, Saved, conv, linear

__all__ = ["OP", "PRIOR_RADIUS", "SplitSpec"]

PRIOR_RADIUS = 1  # the learned prior of an image split is one 3x3 convolution


class SplitSpec(StrictModel):
    type: Literal["split"]
    prior: Literal["standard", "learned"] = "learned"


def _infer(spec: SplitSpec, ctx: InferContext) -> Inferred:
    c, *rest = ctx.in_shape
    if c % 2:
        what = "channel" if rest else "feature"
        return Inferred(
            (ctx.in_shape,),
            {},
            (
                Problem(
                    "split-odd",
                    f"split needs an even {what} count, got {c} (shape {ctx.in_shape})",
                    "squeeze first (x4 channels) or drop this split",
                    (),
                ),
            ),
        )
    half = (c // 2, *rest)
    return Inferred((half, half))


def _mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """The factored half gains, with a learned prior, the kept elements its 3x3 conv sees
    (images) or all kept elements (vectors, a linear map), and the context if it takes it."""
    n = len(deps) // 2
    kept, out = deps[:n], deps[n:]
    if params.get("prior") != "learned":
        return kept, out
    if len(in_shape) != 3:
        cond = or_reduce(kept)
        return kept, out | (cond if context is None else cond | context)
    half, height, width = in_shape[0] // 2, in_shape[1], in_shape[2]
    pixels = or_reduce(kept.reshape(half, height * width, -1), axis=0)
    seen = window_or(pixels, height, width, PRIOR_RADIUS)
    seen = seen if context is None else seen | context
    return kept, (out.reshape(half, height * width, -1) | seen).reshape(out.shape)


def _infer_with_prior(spec: SplitSpec, ctx: InferContext) -> Inferred:
    inferred = _infer(spec, ctx)
    params: dict[str, Any] = {"prior": spec.prior}
    if ctx.context and spec.prior == "learned":
        params["context"] = ctx.context  # the learned prior's conv (linear map) takes it too
    return Inferred(inferred.out_shapes, params, inferred.problems)


def _cost(spec: SplitSpec, ctx: CostContext) -> OpCost:
    """Both halves are views of the input. A learned prior's conv (linear map) keeps the input
    it slices the kept half from, the clamp of the log-std the conv's output, and the
    standardisation ``h - mean`` and ``exp(-log_std)``."""
    if spec.prior != "learned":
        return OpCost(output_is_input=(0, 1))
    c, positions = ctx.in_shape[0], prod(ctx.in_shape[1:])
    half = c // 2
    context = ctx.params.get("context", 0)  # features as extra input channels of the prior
    if len(ctx.in_shape) == 3:
        tensors, flops = conv("prior", half + context, 2 * half, 3, positions)
    else:
        tensors, flops = linear("prior", half + context, 2 * half)
    n = half * positions
    # the conv's input (a new concatenation with the features, if any); the clamp of the
    # log-std keeps the conv's output (mean and log-std); the standardisation keeps h - mean
    # and exp(-log_std)
    source = Saved((half + context) * positions) if context else Saved(c * positions, "input")
    saved = (source, Saved(2 * n), Saved(n), Saved(n))
    return OpCost(tensors, flops, saved=saved, output_is_input=(0,))


OP = OpDef(
    kind="split",
    spec=SplitSpec,
    infer=_infer_with_prior,
    role="split",
    summary="factor out half the channels as a latent (multiscale), optional learned prior",
    codes=("split-odd",),
    mix=_mix,
    cost=_cost,
)
