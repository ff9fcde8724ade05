"""Printing the IR: a text table (``format_graph``), Graphviz DOT and Mermaid."""

from __future__ import annotations

from typing import Any

from flowspec.graph.ir import INPUT, FlowGraph, latent_shapes, op_nodes
from flowspec.ops import OPS


def _detail(op: Any) -> str:
    parts = []
    mask = op.params.get("mask")
    if mask and len(mask) <= 16:
        parts.append("mask " + "".join(map(str, mask)))
    elif mask:
        parts.append(f"mask {op.spec.mask if isinstance(op.spec.mask, str) else 'explicit'}")
    net = getattr(op.spec, "net", None)
    if net is not None:
        size = getattr(net, "hidden", None) or getattr(net, "channels", "")
        parts.append(f"net {net.type}{list(size) if isinstance(size, tuple) else size}")
    if "log_scale" in type(op.spec).model_fields:
        parts.append(f"log_scale {op.spec.log_scale}")
    perm = op.params.get("perm")
    if perm is not None:
        parts.append(f"perm {list(perm)}" if len(perm) <= 12 else f"perm {op.spec.order}")
    if op.params.get("prior"):
        parts.append(f"prior {op.params['prior']}")
    return ", ".join(parts)


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def format_graph(graph: FlowGraph) -> str:
    """A readable table of the IR: one op a line, with shapes, then latents, mixing, warnings."""
    spec = graph.graph["spec"]
    ops = list(op_nodes(graph))
    lines = [
        f"flow '{spec.name}': input {_shape(graph.nodes[INPUT]['shape'])}, "
        f"{len(ops)} ops, base {spec.base.type}"
    ]
    rows = [("#", "op", "kind", "in -> out", "details")]
    for i, op in enumerate(ops):
        outs = " + ".join(_shape(s) for s in op.out_shapes)
        rows.append((str(i), op.name, op.kind, f"{_shape(op.in_shape)} -> {outs}", _detail(op)))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for row in rows:
        lines.append(
            "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4]
        )
    lines.append("latents (concatenated into z in this order):")
    offset = 0
    for name, shape in latent_shapes(graph):
        size = 1
        for s in shape:
            size *= s
        lines.append(f"  {name}  {_shape(shape)}  z[{offset}:{offset + size}]")
        offset += size
    mixing = graph.graph.get("mixing")
    if mixing is not None:
        lines.append(f"mixing: {mixing.summary()}")
        if mixing.input_size <= 8:
            lines.append("  latent <- inputs")
            for i, row in enumerate(mixing.matrix()):
                lines.append(f"  z[{i}] <- " + "".join("x" if v else "." for v in row))
    for warning in graph.graph.get("warnings", ()):
        lines.append(warning.format())
    return "\n".join(lines)


def _label(graph: FlowGraph, node: str) -> str:
    data = graph.nodes[node]
    if "op" in data:
        op = data["op"]
        return f"{op.name}\\n{op.kind}\\n{_shape(op.in_shape)}"
    return f"{node}\\n{_shape(data['shape'])}"


def to_dot(graph: FlowGraph) -> str:
    """Graphviz DOT text of the IR (render with ``dot -Tpng``)."""
    lines = [f'digraph "{graph.graph["name"]}" {{', "  rankdir=TB; node [shape=box, fontsize=10];"]
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    for node, data in graph.nodes(data=True):
        shape = "ellipse" if data.get("kind") in ("input", "latent") else "box"
        lines.append(f'  {ids[node]} [label="{_label(graph, node)}", shape={shape}];')
    for u, v, data in graph.edges(data=True):
        lines.append(f'  {ids[u]} -> {ids[v]} [label="{_shape(data["shape"])}"];')
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(graph: FlowGraph) -> str:
    """Mermaid flowchart text of the IR (renders in GitHub markdown)."""
    lines = ["flowchart TD"]
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    for node in graph.nodes:
        label = _label(graph, node).replace("\\n", "<br/>")
        lines.append(f'  {ids[node]}["{label}"]')
    for u, v, data in graph.edges(data=True):
        lines.append(f'  {ids[u]} -->|"{_shape(data["shape"])}"| {ids[v]}')
    return "\n".join(lines)


def summarize_ops() -> list[tuple[str, str, str]]:
    """(kind, role, summary) of every registered op, for docs and ``--help``."""
    return [(op.kind, op.role, op.summary) for op in OPS.values()]
