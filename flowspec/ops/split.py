"""``split``: factor out the second half of the channels (features) as a latent.

Output port 0 is the kept half, which flows on; port 1 is the factored half, which becomes a
latent. With ``prior: learned`` (Glow) a zero-initialised conv (images) or linear map (vectors)
on the kept half gives a mean and log-std for the factored half; the factored half is then
standardised, z = (h - mean) * exp(-log_std), with log-determinant -sum(log_std), which is the
same model as a conditional Gaussian prior on h.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flowspec.ops.base import Deps, InferContext, Inferred, OpDef, Problem
from flowspec.spec.base import Shape, StrictModel


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


def _mix(params: Mapping[str, Any], in_shape: Shape, deps: Deps) -> tuple[Deps, ...]:
    n = len(deps) // 2
    kept, out = list(deps[:n]), list(deps[n:])
    if params.get("prior") == "learned":
        cond = 0
        for dep in kept:
            cond |= dep
        out = [dep | cond for dep in out]
    return kept, out


def _infer_with_prior(spec: SplitSpec, ctx: InferContext) -> Inferred:
    inferred = _infer(spec, ctx)
    return Inferred(inferred.out_shapes, {"prior": spec.prior}, inferred.problems)


OP = OpDef(
    kind="split",
    spec=SplitSpec,
    infer=_infer_with_prior,
    builder="flowspec.bijections.split:build_split",
    role="split",
    summary="factor out half the channels as a latent (multiscale), optional learned prior",
    mix=_mix,
)
