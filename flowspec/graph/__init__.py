"""Stage 2, torch-free: the IR (:class:`FlowGraph`), lowering a spec to it, checking, printing.

``build_graph(FlowSpec) -> FlowGraph`` replays each op's shape rule; ``check_graph(FlowGraph)``
runs the verifier passes and the mixing analysis; ``format_graph``, ``to_dot`` and ``to_mermaid``
print it.
"""

from flowspec.graph.build import build_graph, check_graph
from flowspec.graph.ir import FlowGraph, OpNode
from flowspec.graph.mixing import MixingReport
from flowspec.graph.render import format_graph, to_dot, to_mermaid

__all__ = [
    "FlowGraph",
    "MixingReport",
    "OpNode",
    "build_graph",
    "check_graph",
    "format_graph",
    "to_dot",
    "to_mermaid",
]
