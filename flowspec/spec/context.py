"""The optional ``context:`` section: what a conditional flow is conditioned on. Torch-free.

Two forms, told apart by their keys:

* a vector per example, ``{shape: [K]}``: a float tensor ``(N, K)``; ``normalize: true``
  standardises it with the mean and standard deviation of the first training batch (kept in the
  weights file, like actnorm's data-dependent initialisation);
* a class label per example, ``{classes: N}``: an integer tensor ``(N,)`` of labels in
  ``0..N-1``, fed to the networks as a learned ``embedding`` of that width, or one-hot when no
  embedding is given.

Every conditioner of the flow (coupling networks, MADEs, learned split priors) and a conditional
base receive the resulting feature vector (``features`` wide).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag

from flowspec.layers.base import PositiveInt, StrictModel

__all__ = ["ClassContextSpec", "ContextSpec", "VectorContextSpec", "context_tag"]


class VectorContextSpec(StrictModel):
    """A real vector per example, shape ``[K]``: the flow takes a context of shape ``(N, K)``.
    ``normalize: true`` standardises it per feature with the mean and standard deviation of the
    first batch the flow sees (saved with the weights)."""

    shape: tuple[PositiveInt]
    normalize: bool = False

    @property
    def features(self) -> int:
        """Width of the feature vector the conditioners receive."""
        return self.shape[0]

    @property
    def per_example(self) -> tuple[int, ...]:
        """Shape of one example's context."""
        return tuple(self.shape)

    def describe(self) -> str:
        """What a flow with this context takes, for messages."""
        return f"a float tensor (N, {self.features})"


class ClassContextSpec(StrictModel):
    """A class label per example, ``0 .. classes-1``: the flow takes an integer context of shape
    ``(N,)``. The networks receive a learned ``embedding`` of that width, or a one-hot vector of
    ``classes`` entries when no embedding is given."""

    classes: Annotated[int, Field(ge=2)]
    embedding: PositiveInt | None = None

    @property
    def features(self) -> int:
        """Width of the feature vector the conditioners receive."""
        return self.embedding or self.classes

    @property
    def per_example(self) -> tuple[int, ...]:
        """Shape of one example's context (a scalar label)."""
        return ()

    def describe(self) -> str:
        """What a flow with this context takes, for messages."""
        return f"integer class labels (N,) in 0..{self.classes - 1}"


def context_tag(value: Any) -> str | None:
    """``classes`` for a class context, ``vector`` for a vector one, None when the mapping says
    neither (validation then asks for one of the two keys)."""
    if isinstance(value, dict):
        if "classes" in value:
            return "classes"
        if "shape" in value or "normalize" in value:
            return "vector"
        return "classes" if "embedding" in value else None
    return "classes" if isinstance(value, ClassContextSpec) else "vector"


ContextSpec = Annotated[
    Union[Annotated[VectorContextSpec, Tag("vector")], Annotated[ClassContextSpec, Tag("classes")]],
    Discriminator(context_tag),
]
