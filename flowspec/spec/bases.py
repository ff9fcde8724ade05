"""Base distributions (``base: {type: ...}``): one table, torch-free.

Each row of :data:`BASES` is a :class:`BaseDef`: the spec model and a summary. The torch modules
are :mod:`flowspec.nn.bases`, a table with the same keys. Adding a base: a spec model and a row
here, a module and a row there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from flowspec.layers.base import SpecRow, StrictModel
from flowspec.layers.cost import Saved, TensorInfo

__all__ = ["BASES", "BaseDef", "BaseSpec", "DiagNormalSpec", "MixtureSpec", "NormalSpec"]


class NormalSpec(StrictModel):
    """Standard normal N(0, I)."""

    type: Literal["normal"] = "normal"


class DiagNormalSpec(StrictModel):
    """Diagonal normal with a learned mean and log-std per latent dimension (init N(0, I))."""

    type: Literal["diag_normal"]


class MixtureSpec(StrictModel):
    """Mixture of K diagonal Gaussians with learned weights, means and log-stds.

    Means are initialised at ``spread`` times a fixed seeded standard normal draw.
    """

    type: Literal["mixture"]
    components: Annotated[int, Field(ge=1)] = 2
    spread: Annotated[float, Field(ge=0)] = 1.0


BaseCost = tuple[tuple[TensorInfo, ...], tuple[Saved, ...]]


def _normal_cost(spec: NormalSpec, dim: int) -> BaseCost:
    """``z * z`` keeps ``z`` itself."""
    return (), (Saved(dim, "z"),)


def _diag_cost(spec: DiagNormalSpec, dim: int) -> BaseCost:
    """``(z - loc) * exp(-log_scale)`` keeps ``z - loc``; squaring keeps the result."""
    return (TensorInfo("loc", (dim,)), TensorInfo("log_scale", (dim,))), (Saved(2 * dim),)


def _mixture_cost(spec: MixtureSpec, dim: int) -> BaseCost:
    """Per component as the diagonal normal, then ``logsumexp`` keeps its input and output."""
    k = spec.components
    tensors = (
        TensorInfo("logits", (k,)),
        TensorInfo("loc", (k, dim)),
        TensorInfo("log_scale", (k, dim)),
    )
    return tensors, (Saved(2 * k * dim + k + 1),)


@dataclass(frozen=True)
class BaseDef(SpecRow):
    """One base distribution: its spec model and its cost rule ``(spec, latent size) ->
    (tensors, what a training step saves)`` (see :mod:`flowspec.layers.cost`; the storage
    ``"z"`` is the latent itself)."""

    cost: Callable[[Any, int], BaseCost]


BASES: dict[str, BaseDef] = {
    d.type: d
    for d in (
        BaseDef(NormalSpec, _normal_cost),
        BaseDef(DiagNormalSpec, _diag_cost),
        BaseDef(MixtureSpec, _mixture_cost),
    )
}
BaseSpec = Annotated[
    Union[tuple(d.spec for d in BASES.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
