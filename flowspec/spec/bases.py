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

from flowspec.layers.base import PositiveInt, SpecRow, StrictModel
from flowspec.layers.cost import ACTIVATION_SAVES, Saved, TensorInfo, linear
from flowspec.layers.nets import Activation

__all__ = [
    "BASES",
    "BaseDef",
    "BaseSpec",
    "ConditionalNormalSpec",
    "DiagNormalSpec",
    "MixtureSpec",
    "NormalSpec",
]


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


class ConditionalNormalSpec(StrictModel):
    """Diagonal normal whose mean and log-std per latent dimension are an MLP of the context
    features (hidden widths ``hidden``; last layer zero-initialised, so it starts as N(0, I)).
    Needs a ``context:`` section."""

    type: Literal["conditional_normal"]
    hidden: tuple[PositiveInt, ...] = (64,)
    activation: Activation = "relu"


# (tensors, what a training step saves, forward FLOPs per example)
BaseCost = tuple[tuple[TensorInfo, ...], tuple[Saved, ...], int]


def _normal_cost(spec: NormalSpec, dim: int, context: int) -> BaseCost:
    """``z * z`` keeps ``z`` itself."""
    return (), (Saved(dim, "z"),), 0


def _diag_cost(spec: DiagNormalSpec, dim: int, context: int) -> BaseCost:
    """``(z - loc) * exp(-log_scale)`` keeps ``z - loc``; squaring keeps the result."""
    return (TensorInfo("loc", (dim,)), TensorInfo("log_scale", (dim,))), (Saved(2 * dim),), 0


def _mixture_cost(spec: MixtureSpec, dim: int, context: int) -> BaseCost:
    """Per component as the diagonal normal, then ``logsumexp`` keeps its input and output."""
    k = spec.components
    tensors = (
        TensorInfo("logits", (k,)),
        TensorInfo("loc", (k, dim)),
        TensorInfo("log_scale", (k, dim)),
    )
    return tensors, (Saved(2 * k * dim + k + 1),), 0


def _conditional_normal_cost(spec: ConditionalNormalSpec, dim: int, context: int) -> BaseCost:
    """The MLP ``context (F) -> hidden -> 2 D`` (``net.0``, ``net.2``, ...; its first layer
    keeps the features, each activation what :data:`ACTIVATION_SAVES` says), then as the
    diagonal normal: ``z - loc`` and the scaled square."""
    sizes = [context, *spec.hidden, 2 * dim]
    tensors: list[TensorInfo] = []
    flops = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer, f = linear(f"net.{2 * i}", a, b)
        tensors, flops = tensors + list(layer), flops + f
    hidden = sum(ACTIVATION_SAVES[spec.activation] * h for h in spec.hidden)
    saved = (Saved(context, "features"), Saved(hidden), Saved(2 * dim), Saved(dim))
    return tuple(tensors), saved, flops


@dataclass(frozen=True)
class BaseDef(SpecRow):
    """One base distribution: its spec model, whether it takes the flow's context, and its
    cost rule ``(spec, latent size, context features) -> (tensors, what a training step
    saves, forward FLOPs per example)`` (see :mod:`flowspec.layers.cost`; the storage ``"z"``
    is the latent itself, and ``"features"`` the context's encoded features)."""

    cost: Callable[[Any, int, int], BaseCost]
    conditional: bool = False


BASES: dict[str, BaseDef] = {
    d.type: d
    for d in (
        BaseDef(NormalSpec, _normal_cost),
        BaseDef(DiagNormalSpec, _diag_cost),
        BaseDef(MixtureSpec, _mixture_cost),
        BaseDef(ConditionalNormalSpec, _conditional_normal_cost, conditional=True),
    )
}
BaseSpec = Annotated[
    Union[tuple(d.spec for d in BASES.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
