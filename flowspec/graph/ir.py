"""The IR: a typed :class:`FlowGraph` over a networkx graph of ops.

The networkx ``MultiDiGraph`` (``FlowGraph.graph``) has:

* node ``"x"`` (``kind="input"``), the data; for a conditional flow node ``"c"``
  (``kind="context"``, ``shape`` one example's context: ``(K,)`` or ``()`` for a class label),
  with an edge (``context=True``) to every op whose conditioner takes the context; one node per
  op instance named by its instance path
  (``layers.0.3.1`` = item 1 of the body of the repeat block ``layers.0``, repetition 3) with an
  :class:`OpNode` under the attribute ``op``; one node per latent, ``"z"`` (the final one) or
  ``"z:<split name>"`` (``kind="latent"``);
* on each edge, ``src_port`` (split has outputs 0 = kept and 1 = factored out) and the
  per-example ``shape`` flowing along it.

The :class:`FlowGraph` around it holds what concerns the whole flow: the spec it was lowered
from, the latent order, and (once checked) the mixing report and the warnings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Any

import networkx as nx

from flowspec.errors import Diagnostic, Location
from flowspec.layers.base import Shape
from flowspec.spec.models import FlowSpec
from flowspec.spec.source import PathKey

if TYPE_CHECKING:
    from flowspec.graph.mixing import MixingReport

__all__ = [
    "CONTEXT",
    "FINAL_LATENT",
    "INPUT",
    "FlowGraph",
    "OpNode",
    "data_in_edges",
    "latent_name",
]

INPUT = "x"
CONTEXT = "c"
FINAL_LATENT = "z"


@dataclass(frozen=True)
class OpNode:
    """One op instance: its spec, where it came from, its shapes and its resolved params."""

    name: str
    kind: str
    spec: Any
    spec_path: PathKey
    in_shape: Shape
    out_shapes: tuple[Shape, ...]
    params: Mapping[str, Any]
    repeat_index: int = 0

    @property
    def path(self) -> str:
        """The spec path as written in diagnostics, e.g. ``levels.0.steps.0.body.2``."""
        return ".".join(map(str, self.spec_path))


def latent_name(split_name: str) -> str:
    """The latent node a split named ``split_name`` factors out."""
    return f"{FINAL_LATENT}:{split_name}"


def data_in_edges(graph: nx.MultiDiGraph, node: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The edges carrying data into ``node`` (not the context edge of a conditioner)."""
    return [e for e in graph.in_edges(node, data=True) if not e[2].get("context")]


@dataclass(frozen=True, eq=False)
class FlowGraph:
    """A flow's IR: the networkx graph of ops and what concerns the whole flow.

    ``latents`` lists the latent nodes in the order they are concatenated into the flat ``z``;
    ``mixing`` and ``warnings`` are filled in by :func:`flowspec.graph.check_graph`.
    """

    graph: nx.MultiDiGraph
    spec: FlowSpec
    latents: tuple[str, ...]
    mixing: MixingReport | None = None
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> Shape:
        return tuple(self.graph.nodes[INPUT]["shape"])

    def ops(self) -> Iterator[OpNode]:
        """The op nodes in execution order (data -> latent)."""
        for node in nx.topological_sort(self.graph):
            op = self.graph.nodes[node].get("op")
            if op is not None:
                yield op

    def op(self, name: str) -> OpNode:
        """The op node called ``name``."""
        return self.graph.nodes[name]["op"]

    def source_of(self, node: str) -> tuple[str, int]:
        """``(node, port)`` feeding ``node``'s single data input."""
        ((src, _, edge),) = data_in_edges(self.graph, node)
        return src, edge["src_port"]

    @property
    def conditional(self) -> bool:
        """Whether the flow takes a context (its spec has a ``context:`` section)."""
        return CONTEXT in self.graph

    def context_users(self) -> list[str]:
        """The ops whose conditioner takes the context, in execution order."""
        if not self.conditional:
            return []
        users = {v for _, v in self.graph.out_edges(CONTEXT)}
        return [op.name for op in self.ops() if op.name in users]

    def latent_shapes(self) -> list[tuple[str, Shape]]:
        """``(latent node, shape)`` in the order they are concatenated into the flat z."""
        return [(name, tuple(self.graph.nodes[name]["shape"])) for name in self.latents]

    def latent_size(self) -> int:
        return sum(prod(shape) for _, shape in self.latent_shapes())

    def locate(self, path: PathKey) -> Location | None:
        """Where ``path`` is written in the spec's file (None for specs built in Python)."""
        source = self.spec.source
        return source.locate(path) if source is not None else None

    def lint(self) -> list[Diagnostic]:
        """Run the verifier passes; the problems they find (none for a graph built by
        :func:`flowspec.graph.build_graph`)."""
        from flowspec.graph.verify import verify

        return verify(self)

    def __str__(self) -> str:
        from flowspec.graph.render import format_graph

        return format_graph(self)
