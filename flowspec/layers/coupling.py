"""Couplings: one structure, its elementwise transform chosen from a table.

A coupling splits its input with a binary mask ``b`` (1 = kept and conditioned on, 0 =
transformed) and transforms the ``b = 0`` part elementwise, with parameters computed by a
conditioner network from the ``b = 1`` part (course notes eq. (1)-(8), (27)-(28)).
``net_input: half`` feeds the network only the kept elements (vectors: gathered; images: whole
channels, so the mask must be a channel mask); ``masked`` feeds it ``b * x`` at full size, as the
course notebook does.

The layer kind ``coupling`` takes any row of :data:`flowspec.layers.transforms.TRANSFORMS` as its
``transform``; ``additive_coupling`` (NICE) and ``affine_coupling`` (RealNVP, Glow) are the same
structure with the transform fixed, kept as the names the papers use.
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
    Problem,
    Shape,
    StrictModel,
    numel,
)
from flowspec.layers.bits import or_reduce, window_or
from flowspec.layers.cost import CostContext, OpCost, Saved, prefixed
from flowspec.layers.masks import (
    MASKS,
    Mask,
    MaskName,
    is_channel_mask,
    resolve_mask,
    split_axis,
)
from flowspec.layers.nets import NETS, MLPSpec, NetSpec
from flowspec.layers.transforms import (
    TRANSFORMS,
    AdditiveSpec,
    AffineSpec,
    LogScale,
    TransformSpec,
    check_transform,
)

__all__ = [
    "ADDITIVE",
    "AFFINE",
    "COUPLING",
    "AdditiveCouplingSpec",
    "AffineCouplingSpec",
    "CouplingFields",
    "CouplingSpec",
    "coupling_cost",
    "coupling_mix",
    "infer_coupling",
]


class CouplingFields(StrictModel):
    """Keys common to every coupling kind."""

    mask: MaskName | tuple[Annotated[int, Field(ge=0, le=1)], ...] = "alternating"
    net: NetSpec = Field(default_factory=MLPSpec)
    net_input: Literal["half", "masked"] = "half"

    @property
    def transform_spec(self) -> Any:
        """The elementwise transform this coupling applies (a row of ``TRANSFORMS``)."""
        raise NotImplementedError


class CouplingSpec(CouplingFields):
    """A coupling with any elementwise transform (default: affine with ``scaled_tanh``)."""

    type: Literal["coupling"]
    transform: TransformSpec = Field(default_factory=AffineSpec)

    @property
    def transform_spec(self) -> Any:
        return self.transform


class AdditiveCouplingSpec(CouplingFields):
    """Additive (volume-preserving) coupling; its log-determinant is exactly zero."""

    type: Literal["additive_coupling"]

    @property
    def transform_spec(self) -> Any:
        return AdditiveSpec()


class AffineCouplingSpec(CouplingFields):
    """Affine coupling. ``log_scale`` bounds the network's raw log-scale output:
    ``tanh`` (course notebook), ``scaled_tanh`` (scale * tanh(raw) with a learned scale per
    element, RealNVP), ``sigmoid`` (log sigmoid(raw + 2), Glow), ``sigmoid2`` (log(2 sigmoid(raw)):
    Jet's scale in (0, 2), 1 at raw = 0) or ``none`` (unbounded)."""

    type: Literal["affine_coupling"]
    log_scale: LogScale = "scaled_tanh"

    @property
    def transform_spec(self) -> Any:
        return AffineSpec(log_scale=self.log_scale)


_RANK_WORDS = {1: "vectors", 2: "token sequences", 3: "images"}
_NETS_FOR_RANK = {1: "mlp", 2: "vit", 3: "glow_conv or resnet"}


def infer_coupling(spec: CouplingFields, ctx: InferContext) -> Inferred:
    """Resolve the mask and check it, the conditioner and the input mode against the shape."""
    shape, problems = ctx.in_shape, []
    rank = len(shape)
    if isinstance(spec.mask, str) and rank not in MASKS[spec.mask].ranks:
        names = sorted(k for k, v in MASKS.items() if rank in v.ranks)
        problems.append(
            Problem(
                "mask-rank",
                f"mask '{spec.mask}' does not apply to input of shape {shape}",
                f"masks for {_RANK_WORDS[rank]}: {', '.join(names)}",
                ("mask",),
            )
        )
        return Inferred((shape,), {"mask": ()}, tuple(problems))
    mask = resolve_mask(spec.mask, shape, ctx.repeat_index, ctx.grid, ctx.seed)
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
    elif mask.bits.all() or not mask.bits.any():
        side = "transforms nothing" if mask.bits.all() else "conditions on nothing"
        problems.append(
            Problem(
                "mask-empty",
                f"mask {_describe(spec.mask)} on shape {shape} {side}",
                _empty_mask_hint(spec.mask, shape),
                ("mask",),
            )
        )
    net = NETS[spec.net.type]
    if net.rank != rank:
        problems.append(
            Problem(
                "net-rank",
                f"conditioner '{spec.net.type}' cannot take input of shape {shape}",
                f"use net type {_NETS_FOR_RANK[rank]}",
                ("net", "type"),
            )
        )
    axis = split_axis(mask, shape) if len(mask) == numel(shape) else 1
    if rank > 1 and spec.net_input == "half" and axis is None:
        problems.append(
            Problem(
                "net-input",
                f"net_input 'half' on {_RANK_WORDS[rank]} needs a mask that keeps whole "
                + ("channels" if rank == 3 else "tokens or the same values of every token"),
                "use net_input: masked with checkerboard masks"
                if rank == 3
                else "use a channel or token mask, or net_input: masked",
                ("net_input",),
            )
        )
    if not problems and net.rank == rank:
        kept, moved = _part_shapes(mask, shape, axis if spec.net_input == "half" else None)
        problems += net.fits(spec.net, kept, moved)
    problems += check_transform(spec.transform_spec)
    radius = net.radius(spec.net) if rank == 3 else None
    params: dict[str, Any] = {"mask": mask, "radius": radius}
    if rank == 2:
        params["grid"] = ctx.grid or (1, shape[0])
    if ctx.context:
        params["context"] = ctx.context
    return Inferred((shape,), params, tuple(problems))


def _part_shapes(mask: tuple[int, ...], shape: Shape, axis: int | None) -> tuple[Shape, Shape]:
    """Shapes of what the conditioner reads and of what it parameterises: the kept and the
    transformed slices along ``axis``, or the whole shape for ``net_input: masked``."""
    if axis is None:
        return shape, shape
    stride = numel(shape[axis:])
    kept = sum(mask[i * stride] for i in range(shape[axis - 1]))
    before, after = shape[: axis - 1], shape[axis:]
    return (*before, kept, *after), (*before, shape[axis - 1] - kept, *after)


def coupling_mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Transformed elements depend on themselves and on the kept elements their conditioner
    sees: all of them for vectors, those within its receptive field (any channel) for images;
    and on the context when the conditioner takes it (every output of the net does)."""
    mask = params["mask"]
    if len(mask) != len(deps):
        return (deps,)
    kept = mask.bits if isinstance(mask, Mask) else np.asarray(mask, dtype=bool)
    if len(in_shape) != 3:
        out = deps.copy()
        out[~kept] |= _with(or_reduce(deps[kept]), context)
        return (out,)
    channels, height, width = in_shape
    rows = deps.reshape(channels, height * width, -1)
    planes = kept.reshape(channels, height * width)
    if is_channel_mask(mask, in_shape):  # whole channels kept: gather them, no masking
        keep = planes[:, 0]
        seen = window_or(or_reduce(rows[keep]), height, width, params.get("radius"))
        out = rows.copy()
        out[~keep] |= _with(seen, context)
        return (out.reshape(deps.shape),)
    ones = np.where(planes, ~np.uint64(0), np.uint64(0))[..., None]  # all bits where kept
    seen = window_or(or_reduce(rows & ones), height, width, params.get("radius"))
    return ((rows | (_with(seen, context) & ~ones)).reshape(deps.shape),)


def _with(rows: Deps, context: Deps | None) -> Deps:
    """``rows`` with the context's bit OR-ed in (unchanged without a context)."""
    return rows if context is None else rows | context


def coupling_cost(spec: CouplingFields, ctx: CostContext) -> OpCost:
    """The conditioner's and the transform's costs on the elements they see. The network's
    input is the op's input (``half``, kept channels first), a reordered copy (``half``,
    other masks) or ``b * x`` (``masked``); the transform keeps its ``x``, the same storage."""
    shape, mask = ctx.in_shape, ctx.params["mask"]
    d = numel(shape)
    transform = TRANSFORMS[spec.transform_spec.type]
    if spec.net_input == "half":  # gathered along the axis the mask cuts, as the module does
        axis = split_axis(mask, shape) or 1
        per, size = numel(shape[axis:]), shape[axis - 1]
        kept = [i for i in range(size) if mask[i * per]]
        moved = [i for i in range(size) if not mask[i * per]]
        source = "input" if kept + moved == list(range(size)) else "reordered"
        before, after = shape[: axis - 1], shape[axis:]
        net_in, net_out = (*before, len(kept), *after), (*before, len(moved), *after)
    else:
        source, net_in, net_out = "input", shape, shape
    n_out = transform.n_params(spec.transform_spec)
    context, netdef = ctx.params.get("context", 0), NETS[spec.net.type]
    if netdef.appends_context:  # features appended as inputs (channels) of the net
        net_in = (net_in[0] + context, *net_in[1:])
        net = netdef.cost(spec.net, net_in, net_out, n_out)
    else:  # the net maps the features itself and keeps them (the shared features storage)
        net = netdef.cost(spec.net, net_in, net_out, n_out, context)
    moved_cost = transform.cost(spec.transform_spec, net_out)
    net_source = Saved(d, "masked" if spec.net_input == "masked" else source)
    if context and netdef.appends_context:  # a new concatenation of its input and the features
        net_source = Saved(numel(net_in), "with_context")
    flops = net.flops
    if "kept_inputs" in ctx.passes and spec.net_input == "masked" and spec.net.type == "mlp":
        kept = sum(mask) + context  # the first layer reads the kept coordinates only
        flops = NETS["mlp"].cost(spec.net, (kept,), net_out, n_out).flops
        net_source = Saved(kept, "kept")
    saved = [net_source, Saved(net.hidden)]
    saved += [] if netdef.appends_context or not context else [Saved(context, "features")]
    saved += [Saved(moved_cost.saved)] + ([Saved(d, source)] if moved_cost.saves_input else [])
    return OpCost(
        prefixed("net", net.tensors) + moved_cost.tensors,
        flops=flops,
        saved=tuple(s for s in saved if s.elements),
    )


def _describe(mask: str | tuple[int, ...]) -> str:
    return f"'{mask}'" if isinstance(mask, str) else str(list(mask))


def _empty_mask_hint(mask: str | tuple[int, ...], shape: Shape) -> str:
    if len(shape) == 2 and isinstance(mask, str):
        if "channel" in mask:
            return "a channel mask needs at least 2 values per token: use a larger patch"
        return (
            "token masks need a patch grid of at least 2 rows (hstripes), 2 columns (vstripes) "
            "or 2 tokens (checkerboard): use a smaller patch"
        )
    if isinstance(mask, str) and "channel" in mask and shape[0] == 1:
        return "a channel mask needs at least 2 channels: squeeze first, or use a checkerboard mask"
    if isinstance(mask, str) and "checkerboard" in mask:
        return "a checkerboard needs an image larger than 1x1: use a channel mask"
    if numel(shape) == 1:
        return "a coupling needs at least 2 elements; use 'scale' or 'actnorm' for 1-D data"
    return "a mask needs both 1s (kept) and 0s (transformed)"


def _coupling_op(kind: str, spec: type[CouplingFields], summary: str) -> OpDef:
    return OpDef(
        kind=kind,
        spec=spec,
        infer=infer_coupling,
        role="coupling",
        summary=summary,
        mix=coupling_mix,
        module="coupling",
        codes=(
            "mask-rank",
            "mask-length",
            "mask-empty",
            "net-rank",
            "net-input",
            "net-tokens",
            "attention-heads",
            "spline-minimum",
        ),
        ranks=(1, 2, 3),
        cost=coupling_cost,
    )


COUPLING = _coupling_op(
    "coupling",
    CouplingSpec,
    "coupling with any elementwise transform (additive, affine, ...) of half the elements",
)
ADDITIVE = _coupling_op(
    "additive_coupling",
    AdditiveCouplingSpec,
    "NICE additive coupling: shift half the elements given the other half",
)
AFFINE = _coupling_op(
    "affine_coupling",
    AffineCouplingSpec,
    "RealNVP affine coupling: scale and shift half the elements given the other half",
)
