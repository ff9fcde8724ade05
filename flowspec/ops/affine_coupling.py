"""``affine_coupling``: RealNVP's coupling, z_t = x_t * exp(s(x_c)) + t(x_c) (notes eq. (3)-(8))."""

from __future__ import annotations

from typing import Literal

from flowspec.ops.base import OpDef
from flowspec.ops.coupling import CouplingFields, coupling_mix, infer_coupling


class AffineCouplingSpec(CouplingFields):
    """Affine coupling. ``log_scale`` bounds the network's raw log-scale output:
    ``tanh`` (course notebook), ``scaled_tanh`` (scale * tanh(raw) with a learned scale per
    element, RealNVP), ``sigmoid`` (log sigmoid(raw + 2), Glow) or ``none`` (unbounded)."""

    type: Literal["affine_coupling"]
    log_scale: Literal["tanh", "scaled_tanh", "sigmoid", "none"] = "scaled_tanh"


OP = OpDef(
    kind="affine_coupling",
    spec=AffineCouplingSpec,
    infer=infer_coupling,
    builder="flowspec.bijections.coupling:build_affine",
    role="coupling",
    summary="RealNVP affine coupling: scale and shift half the elements given the other half",
    mix=coupling_mix,
)
