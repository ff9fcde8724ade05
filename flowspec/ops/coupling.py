"""Shared shape rule and mixing rule of the coupling kinds (additive and affine).

A coupling splits its input with a binary mask ``b`` (1 = kept and conditioned on, 0 =
transformed) and transforms the ``b = 0`` part with parameters computed by a conditioner network
from the ``b = 1`` part (course notes eq. (1)-(8), (27)-(28)). ``net_input: half`` feeds the
network only the kept elements (vectors: gathered; images: whole channels, so the mask must be a
channel mask); ``masked`` feeds it ``b * x`` at full size, as the course notebook does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from flowspec.ops.base import Deps, InferContext, Inferred, Problem, numel
from flowspec.ops.masks import MASKS, MaskName, is_channel_mask, resolve_mask
from flowspec.spec.base import Shape, StrictModel
from flowspec.spec.nets import MLPSpec, NetSpec

NET_RANKS = {"mlp": 1, "glow_conv": 3, "resnet": 3}


class CouplingFields(StrictModel):
    """Keys common to every coupling kind."""

    mask: MaskName | tuple[Literal[0, 1], ...] = "alternating"
    net: NetSpec = Field(default_factory=MLPSpec)
    net_input: Literal["half", "masked"] = "half"


def infer_coupling(spec: CouplingFields, ctx: InferContext) -> Inferred:
    """Resolve the mask and check it, the conditioner and the input mode against the shape."""
    shape, problems = ctx.in_shape, []
    rank = len(shape)
    if isinstance(spec.mask, str) and rank not in MASKS[spec.mask].ranks:
        names = sorted(k for k, v in MASKS.items() if rank in v.ranks)
        kind = "vectors" if rank == 1 else "images"
        problems.append(
            Problem(
                "mask-rank",
                f"mask '{spec.mask}' does not apply to input of shape {shape}",
                f"masks for {kind}: {', '.join(names)}",
                ("mask",),
            )
        )
        return Inferred((shape,), {"mask": ()}, tuple(problems))
    mask = resolve_mask(spec.mask, shape, ctx.repeat_index)
    if len(mask) != numel(shape):
        problems.append(
            Problem(
                "mask-length",
                f"explicit mask has {len(mask)} entries but the "
                f"input has {numel(shape)} elements (shape {shape})",
                "give one 0/1 per element, in C order",
                ("mask",),
            )
        )
    elif all(mask) or not any(mask):
        side = "transforms nothing" if all(mask) else "conditions on nothing"
        problems.append(
            Problem(
                "mask-empty",
                f"mask {_describe(spec.mask)} on shape {shape} {side}",
                _empty_mask_hint(spec.mask, shape),
                ("mask",),
            )
        )
    net_rank = NET_RANKS[spec.net.type]
    if net_rank != rank:
        better = "mlp" if rank == 1 else "glow_conv or resnet"
        problems.append(
            Problem(
                "net-rank",
                f"conditioner '{spec.net.type}' cannot take input of shape {shape}",
                f"use net type {better}",
                ("net", "type"),
            )
        )
    if (
        rank == 3
        and spec.net_input == "half"
        and len(mask) == numel(shape)
        and not is_channel_mask(mask, shape)
    ):
        problems.append(
            Problem(
                "net-input",
                "net_input 'half' on images needs a channel mask",
                "use net_input: masked with checkerboard masks",
                ("net_input",),
            )
        )
    return Inferred((shape,), {"mask": mask}, tuple(problems))


def coupling_mix(params: Mapping[str, Any], in_shape: Shape, deps: Deps) -> tuple[Deps, ...]:
    """Transformed elements depend on themselves and on every kept element."""
    mask = params["mask"]
    if len(mask) != len(deps):
        return (list(deps),)
    cond = 0
    for bit, dep in zip(mask, deps):
        if bit:
            cond |= dep
    return ([dep if bit else dep | cond for bit, dep in zip(mask, deps)],)


def _describe(mask: str | tuple[int, ...]) -> str:
    return f"'{mask}'" if isinstance(mask, str) else str(list(mask))


def _empty_mask_hint(mask: str | tuple[int, ...], shape: Shape) -> str:
    if isinstance(mask, str) and "channel" in mask and shape[0] == 1:
        return "a channel mask needs at least 2 channels: squeeze first, or use a checkerboard mask"
    if isinstance(mask, str) and "checkerboard" in mask:
        return "a checkerboard needs an image larger than 1x1: use a channel mask"
    if numel(shape) == 1:
        return "a coupling needs at least 2 elements; use 'scale' or 'actnorm' for 1-D data"
    return "a mask needs both 1s (kept) and 0s (transformed)"
