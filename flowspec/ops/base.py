"""The op record: everything flowspec knows about one layer kind, in one place.

An :class:`OpDef` holds a kind's spec model, its shape rule (``infer``: pure Python, no torch),
how it moves dependencies between elements (``mix``, for the mixing analysis) and where its torch
builder lives (imported only when a flow is compiled). Shapes are per example, without the batch
dimension: ``(D,)`` for vectors, ``(C, H, W)`` for images. Element indices are C-order positions
in that shape.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any, Literal

from flowspec.spec.base import Shape, StrictModel

if TYPE_CHECKING:
    from flowspec.graph.ir import OpNode

Role = Literal["coupling", "elementwise", "mixing", "split", "preprocess"]
Deps = list[int]  # per element: a bitset of the input elements it depends on


@dataclass(frozen=True)
class Problem:
    """A domain error found by a shape rule; ``at`` is a path relative to the op's spec path."""

    code: str
    message: str
    hint: str | None = None
    at: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class InferContext:
    """What a shape rule may know about where its op sits."""

    in_shape: Shape
    name: str
    repeat_index: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Inferred:
    """The result of a shape rule: output shapes, resolved params (JSON-able), problems."""

    out_shapes: tuple[Shape, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def identity_mix(params: Mapping[str, Any], in_shape: Shape, deps: Deps) -> tuple[Deps, ...]:
    """Mixing rule of an elementwise op: every output element depends on its own input."""
    return (list(deps),)


@dataclass(frozen=True)
class OpDef:
    """One layer kind. ``builder`` is ``"module:function"`` taking an :class:`OpNode`."""

    kind: str
    spec: type[StrictModel]
    infer: Callable[[Any, InferContext], Inferred]
    builder: str
    role: Role
    summary: str
    mix: Callable[[Mapping[str, Any], Shape, Deps], tuple[Deps, ...]] = identity_mix
    ranks: tuple[int, ...] = (1, 3)

    def build(self, node: OpNode) -> Any:
        """Build the op's torch ``Bijection`` (imports torch on first use)."""
        module_name, func_name = self.builder.split(":")
        return getattr(importlib.import_module(module_name), func_name)(node)


def numel(shape: Shape) -> int:
    return prod(shape)


def same_shape(spec: Any, ctx: InferContext) -> Inferred:
    """Shape rule of an op that keeps its input shape and resolves nothing."""
    return Inferred(out_shapes=(ctx.in_shape,))
