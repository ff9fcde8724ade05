"""``additive_coupling``: NICE's coupling, z_t = x_t + t(x_c) (notes eq. (1)-(2), (25)-(26))."""

from __future__ import annotations

from typing import Literal

from flowspec.ops.base import OpDef
from flowspec.ops.coupling import CouplingFields, coupling_mix, infer_coupling


class AdditiveCouplingSpec(CouplingFields):
    """Additive (volume-preserving) coupling; its log-determinant is exactly zero."""

    type: Literal["additive_coupling"]


OP = OpDef(
    kind="additive_coupling",
    spec=AdditiveCouplingSpec,
    infer=infer_coupling,
    builder="flowspec.bijections.coupling:build_additive",
    role="coupling",
    summary="NICE additive coupling: shift half the elements given the other half",
    mix=coupling_mix,
)
