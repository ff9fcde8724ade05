"""Verifier passes over the IR. Each pass returns its diagnostics; :func:`verify` runs them all.

``build_graph`` can only produce graphs that pass, so these passes guard the builder and every
later transformation of the graph (they are tested on hand-broken graphs).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import networkx as nx

from flowspec.errors import Diagnostic
from flowspec.graph.ir import CONTEXT, INPUT, FlowGraph, data_in_edges
from flowspec.layers import OPS
from flowspec.layers.base import InferContext
from flowspec.spec.bases import BASES

__all__ = [
    "PASSES",
    "pass_conservation",
    "pass_context",
    "pass_invertible",
    "pass_ports",
    "pass_shapes",
    "pass_structure",
    "verify",
]


def _diag(code: str, message: str, node: str = "") -> Diagnostic:
    return Diagnostic(
        code,
        message,
        node,
        hint="this is a bug in flowspec's graph lowering; please report it with the spec",
    )


def pass_structure(flow: FlowGraph) -> list[Diagnostic]:
    """Acyclic, connected, one input, every latent a sink."""
    graph = flow.graph
    out = []
    if not nx.is_directed_acyclic_graph(graph):
        out.append(_diag("graph-cycle", "the graph has a cycle"))
    data = graph.subgraph(n for n in graph if n != CONTEXT)  # pass_context checks its edges
    if data.number_of_nodes() and not nx.is_weakly_connected(data):
        out.append(_diag("graph-disconnected", "the graph is not connected"))
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "latent" and graph.out_degree(node):
            out.append(_diag("graph-latent", f"latent '{node}' has consumers", node))
        if data.get("kind") in ("input", "context") and node not in (INPUT, CONTEXT):
            out.append(_diag("graph-input", f"extra input node '{node}'", node))
    return out


def pass_ports(flow: FlowGraph) -> list[Diagnostic]:
    """Every op reads one tensor, and each output port of each node is consumed exactly once
    (the context node aside: any number of conditioners read it, see :func:`pass_context`)."""
    graph = flow.graph
    out = []
    for node, data in graph.nodes(data=True):
        if node == CONTEXT:
            continue
        n_in = len(data_in_edges(graph, node))
        if data.get("kind") != "input" and n_in != 1:
            out.append(_diag("graph-ports", f"'{node}' has {n_in} inputs", node))
        op = data.get("op")
        n_out = len(op.out_shapes) if op is not None else (1 if data.get("kind") == "input" else 0)
        ports = sorted(
            d["src_port"] for _, _, d in graph.out_edges(node, data=True) if not d.get("context")
        )
        if ports != list(range(n_out)):
            out.append(
                _diag(
                    "graph-ports",
                    f"'{node}' output ports consumed as {ports}, "
                    f"expected each of {list(range(n_out))} once",
                    node,
                )
            )
    return out


def pass_invertible(flow: FlowGraph) -> list[Diagnostic]:
    """Every op is a registered (hence invertible) kind."""
    graph = flow.graph
    return [
        _diag("graph-op", f"'{node}' has unknown op kind '{data['kind']}'", node)
        for node, data in graph.nodes(data=True)
        if "op" in data and data["kind"] not in OPS
    ]


def pass_shapes(flow: FlowGraph) -> list[Diagnostic]:
    """Replay each op's shape rule on the shape of its incoming edge; compare with the edges."""
    graph = flow.graph
    out = []
    for node, data in graph.nodes(data=True):
        op = data.get("op")
        if op is None or op.kind not in OPS:
            continue
        ((_, _, edge),) = data_in_edges(graph, node) or [(None, None, {"shape": None})]
        features = graph.nodes[CONTEXT]["features"] if CONTEXT in graph else 0
        ctx = InferContext(edge["shape"], op.repeat_index, context=features)
        expected = OPS[op.kind].infer(op.spec, ctx).out_shapes if edge["shape"] else ()
        if edge["shape"] != op.in_shape or tuple(expected) != tuple(op.out_shapes):
            out.append(
                _diag(
                    "graph-shape",
                    f"'{node}' shapes {op.in_shape} -> {op.out_shapes} "
                    f"disagree with its rule ({edge['shape']} -> {expected})",
                    node,
                )
            )
        for _, _, e in graph.out_edges(node, data=True):
            if e["src_port"] < len(op.out_shapes) and e["shape"] != op.out_shapes[e["src_port"]]:
                out.append(
                    _diag(
                        "graph-shape",
                        f"edge from '{node}' port {e['src_port']} has "
                        f"shape {e['shape']}, expected {op.out_shapes[e['src_port']]}",
                        node,
                    )
                )
    return out


def pass_conservation(flow: FlowGraph) -> list[Diagnostic]:
    """The latents hold exactly as many elements as the input."""
    graph = flow.graph
    total = sum(prod(graph.nodes[z]["shape"]) for z in flow.latents)
    size = prod(graph.nodes[INPUT]["shape"])
    if total != size:
        return [_diag("graph-dimension", f"latents hold {total} elements, input has {size}")]
    return []


def pass_context(flow: FlowGraph) -> list[Diagnostic]:
    """The context node exists exactly when the spec has a context; its edges go to ops (not
    from them) whose params say they take it, one each; it has a user (an op or the base)."""
    graph, spec = flow.graph, flow.spec
    out = []
    if (CONTEXT in graph) != (spec.context is not None):
        out.append(_diag("graph-context", "the context node does not match the spec's context"))
        return out
    for u, v, data in graph.edges(data=True):
        if data.get("context") and u != CONTEXT:
            out.append(_diag("graph-context", f"context edge from '{u}', not the context", v))
        if u == CONTEXT and not data.get("context"):
            out.append(_diag("graph-context", f"the context feeds '{v}' as data", v))
    for node, data in graph.nodes(data=True):
        op = data.get("op")
        if op is None:
            continue
        edges = [e for e in graph.in_edges(node, data=True) if e[2].get("context")]
        if len(edges) != (1 if op.params.get("context") else 0):
            out.append(_diag("graph-context", f"'{node}' has {len(edges)} context inputs", node))
    unused = CONTEXT in graph and not graph.out_degree(CONTEXT)
    if unused and not BASES[spec.base.type].conditional:
        out.append(_diag("graph-context", "nothing uses the context node"))
    return out


PASSES: tuple[Callable[[FlowGraph], list[Diagnostic]], ...] = (
    pass_structure,
    pass_ports,
    pass_invertible,
    pass_shapes,
    pass_conservation,
    pass_context,
)


def verify(flow: FlowGraph) -> list[Diagnostic]:
    """Run every pass in :data:`PASSES` (structure first: later passes assume a DAG)."""
    problems = pass_structure(flow)
    if problems:
        return problems
    for verifier_pass in PASSES[1:]:
        problems += verifier_pass(flow)
    return problems
