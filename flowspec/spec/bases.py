"""Base distributions (``base: {type: ...}``): one table, torch-free.

Each row of :data:`BASES` is a :class:`BaseDef`: the spec model and a summary. The torch modules
are :mod:`flowspec.nn.bases`, a table with the same keys. Adding a base: a spec model and a row
here, a module and a row there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import Field

from flowspec.layers.base import PositiveInt, SpecRow, StrictModel
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


@dataclass(frozen=True)
class BaseDef(SpecRow):
    """One base distribution: its spec model, and whether it takes the flow's context."""

    conditional: bool = False


BASES: dict[str, BaseDef] = {
    d.type: d
    for d in (
        BaseDef(NormalSpec),
        BaseDef(DiagNormalSpec),
        BaseDef(MixtureSpec),
        BaseDef(ConditionalNormalSpec, conditional=True),
    )
}
BaseSpec = Annotated[
    Union[tuple(d.spec for d in BASES.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]
