"""The nodes of the IR and how to read the graph.

The IR is a plain ``networkx.MultiDiGraph``:

* node ``"x"`` (``kind="input"``) is the data; each op is a node named by its instance path
  (``layers.0.3.1`` = item 1 of the body of the repeat block ``layers.0``, repetition 3) with an
  :class:`OpNode` under the attribute ``op``; each latent is a node ``"z"`` (the final one) or
  ``"z:<split name>"`` (``kind="latent"``).
* each edge carries ``src_port`` (split has outputs 0 = kept and 1 = factored out) and the
  per-example ``shape`` flowing along it.
* ``graph.graph`` holds ``spec``, ``input_shape``, ``latents`` (latent node ids in the order
  they are concatenated into the flat z), ``warnings`` and ``mixing``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from flowspec.source import PathKey
from flowspec.spec.base import Shape

FlowGraph = nx.MultiDiGraph
INPUT = "x"
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
    def module_path(self) -> tuple[str, ...]:
        """The parameter-name prefix of this op's module, e.g. ``("layers", "0", "3", "1")``."""
        return tuple(self.name.split("."))


def latent_name(split_name: str) -> str:
    return f"{FINAL_LATENT}:{split_name}"


def op_nodes(graph: FlowGraph) -> Iterator[OpNode]:
    """The op nodes in execution order (data -> latent)."""
    for node in nx.topological_sort(graph):
        op = graph.nodes[node].get("op")
        if op is not None:
            yield op


def latent_shapes(graph: FlowGraph) -> list[tuple[str, Shape]]:
    """``(latent node, shape)`` in the order they are concatenated into the flat z."""
    return [(name, graph.nodes[name]["shape"]) for name in graph.graph["latents"]]
