"""The op record: everything flowspec knows about one layer kind, in one place.

An :class:`OpDef` holds a kind's spec model, its shape rule (``infer``: pure Python, no torch),
how it moves dependencies between elements (``mix``, for the mixing analysis: numpy rows of bits,
see :mod:`flowspec.layers.bits`) and the name of the
module that builds it: ``flowspec/layers/<module>.py`` holds the record and
``flowspec/nn/<module>.py`` the torch side, whose ``build(spec, in_shape, params)`` is imported
only when a flow is compiled. Shapes are per example, without the batch dimension: ``(D,)`` for
vectors, ``(T, D)`` for token sequences (``T`` tokens of ``D`` values, made by ``patchify``),
``(C, H, W)`` for images. Element indices are C-order positions in that shape.

:class:`StrictModel` is the Pydantic base of every spec model (layers, conditioners, bases and the
file itself): frozen, unknown keys rejected.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Deps",
    "Grid",
    "InferContext",
    "Inferred",
    "OpDef",
    "PositiveInt",
    "Problem",
    "Role",
    "Seed",
    "Shape",
    "SpecRow",
    "StrictModel",
    "identity_mix",
    "numel",
    "same_shape",
    "type_tag",
]

Shape = tuple[int, ...]
PositiveInt = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]  # what torch and numpy generators accept
Role = Literal["coupling", "autoregressive", "elementwise", "mixing", "split", "preprocess"]
Grid = tuple[int, int]  # (rows, cols) of the patch grid behind a token sequence
# Per element, C order: a row of uint64 words whose bits mark the (tracked) input elements it
# depends on, shape (elements, words); see flowspec.layers.bits.
Deps = np.ndarray


class StrictModel(BaseModel):
    """Immutable model that rejects unknown keys (a typo is an error, never silently dropped)
    and never coerces a value's type: ``true`` or ``"5"`` is not a number, ``1.0`` is not an
    integer (an integer is a fine float), and floats are finite. Lists in raw data must be
    tuples by the time they are validated (``flowspec.spec.parse`` converts them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def type_tag(model: type[BaseModel]) -> str:
    """The value of a model's ``type: Literal[...]`` field, its tag in a discriminated union."""
    return str(typing.get_args(model.model_fields["type"].annotation)[0])


@dataclass(frozen=True)
class SpecRow:
    """A row of a variant table (conditioners, transforms, bases): its spec model, keyed by the
    model's ``type`` tag."""

    spec: type[StrictModel]

    @property
    def type(self) -> str:
        return type_tag(self.spec)


@dataclass(frozen=True)
class Problem:
    """A domain error found by a shape rule; ``at`` is a path relative to the op's spec path."""

    code: str
    message: str
    hint: str | None = None
    at: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class InferContext:
    """What a shape rule may know about where its op sits: its input shape, the index of the
    innermost ``repeat`` it is in, a seed derived from the flow's seed and the op's name, the
    width of the flow's context features (0: an unconditional flow), and for token sequences
    ``(T, D)`` the ``(rows, cols)`` patch grid the tokens came from (set by ``patchify``; None
    means one row of ``T`` tokens). An op whose conditioner takes the context records that width
    as ``params["context"]``; the graph then draws an edge from the context node to it."""

    in_shape: Shape
    repeat_index: int = 0
    seed: int = 0
    context: int = 0
    grid: Grid | None = None


@dataclass(frozen=True)
class Inferred:
    """The result of a shape rule: output shapes, resolved params (JSON-able), problems."""

    out_shapes: tuple[Shape, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def identity_mix(
    params: Mapping[str, Any], in_shape: Shape, deps: Deps, context: Deps | None = None
) -> tuple[Deps, ...]:
    """Mixing rule of an elementwise op: every output element depends on its own input.

    A mixing rule maps the rows of its input elements to those of its outputs; ``context`` is
    the row ``(1, words)`` of the flow's context when the op's conditioner takes it (else None),
    to be OR-ed into every output its conditioner computes."""
    return (deps,)


def numel(shape: Shape) -> int:
    """Number of elements of a per-example shape."""
    return prod(shape)


def same_shape(spec: Any, ctx: InferContext) -> Inferred:
    """Shape rule of an op that keeps its input shape and resolves nothing."""
    return Inferred(out_shapes=(ctx.in_shape,))


@dataclass(frozen=True)
class OpDef:
    """One layer kind.

    ``module`` names the pair of files ``flowspec/layers/<module>.py`` (this record) and
    ``flowspec/nn/<module>.py`` (its ``build(spec, in_shape, params)``); it defaults to ``kind``.
    ``codes`` lists the diagnostic codes its shape rule can report. A ``preprocess`` op
    belongs in the spec's ``preprocess`` list, at most once, in increasing ``order``
    (``dequantize`` 0, then ``logit`` 1). ``passes`` gives, for an op with params, how many
    sequential passes of its network each direction takes (forward, inverse); None for the
    one-pass ops.
    ``cost`` is its cost rule (:mod:`flowspec.layers.cost`: tensors, FLOPs, what training saves).
    """

    kind: str
    spec: type[StrictModel]
    infer: Callable[[Any, InferContext], Inferred]
    role: Role
    summary: str
    mix: Callable[[Mapping[str, Any], Shape, Deps, Deps | None], tuple[Deps, ...]] = identity_mix
    ranks: tuple[int, ...] = (1, 3)
    module: str = ""
    codes: tuple[str, ...] = ()
    order: int = 0
    passes: Callable[[Mapping[str, Any]], tuple[int, int]] | None = None
    cost: Callable[[Any, Any], Any] | None = None  # (spec, CostContext) -> OpCost

    @property
    def module_name(self) -> str:
        """The file name shared by the record and its torch builder."""
        return self.module or self.kind

    def builder(self) -> Callable[..., Any]:
        """``flowspec.nn.<module>.build`` (imports torch on first use)."""
        return importlib.import_module(f"flowspec.nn.{self.module_name}").build
