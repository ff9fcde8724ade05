"""Printing the IR: a text table (``format_graph``), Graphviz DOT and Mermaid."""

from __future__ import annotations

from math import prod
from typing import Any

from flowspec.graph.ir import CONTEXT, FlowGraph
from flowspec.layers import OPS
from flowspec.spec.bases import BASES

__all__ = ["format_graph", "to_dot", "to_mermaid"]


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
        if net.type == "vit":
            size = f" width {net.width} depth {net.depth} heads {net.heads}"
        parts.append(f"net {net.type}{list(size) if isinstance(size, tuple) else size}")
    if op.kind == "tarflow":
        spec = op.spec
        parts.append(f"width {spec.width} depth {spec.depth} heads {spec.heads}")
        parts.append("reverse" if op.params["reverse"] else "forward")
        parts.append(f"start {spec.start}" + (f", clip {spec.clip}" if spec.clip else ""))
        if spec.final_norm:
            parts.append("final_norm")
    if op.kind == "patchify":
        parts.append(f"patch {op.spec.patch}, grid {'x'.join(map(str, op.params['grid']))}")
    fields = type(op.spec).model_fields
    if "log_scale" in fields:
        parts.append(f"log_scale {op.spec.log_scale}")
    elif "transform" in fields:
        transform = op.spec.transform
        floors = {k for k in type(transform).model_fields if k.startswith("min_")}
        options = {
            **transform.model_dump(exclude={"type", *floors}),
            **transform.model_dump(include=floors, exclude_defaults=True),
        }
        given = ", ".join(f"{k}={v}" for k, v in options.items())
        parts.append(f"transform {op.spec.transform.type}" + (f"({given})" if given else ""))
    perm = op.params.get("perm")
    if perm is not None:
        parts.append(f"perm {list(perm)}" if len(perm) <= 12 else f"perm {op.spec.order}")
    if op.params.get("prior"):
        parts.append(f"prior {op.params['prior']}")
    passes = OPS[op.kind].passes
    if passes is not None and "order" in op.params:
        order = op.params["order"]
        parts.append(f"order {list(order) if len(order) <= 12 else op.spec.order}")
        forward, inverse = passes(op.params)
        parts.append(f"passes: forward {forward}, inverse {inverse}")
    if op.params.get("context"):
        parts.append("context")
    return ", ".join(parts)


def _context_text(spec: Any) -> str:
    context = spec.context
    if context is None:
        return ""
    if hasattr(context, "classes"):
        how = f"embedding {context.embedding}" if context.embedding else "one-hot encoded"
        return f", context: {context.classes} classes ({how})"
    return f", context: vector {list(context.shape)}" + (" normalised" if context.normalize else "")


def _conditional_base(spec: Any) -> bool:
    return BASES[spec.base.type].conditional


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def format_graph(graph: FlowGraph) -> str:
    """A readable table of the IR: one op a line, with shapes, then latents, mixing, warnings."""
    spec = graph.spec
    ops = list(graph.ops())
    lines = [
        f"flow '{spec.name}': input {_shape(graph.input_shape)}, "
        f"{len(ops)} ops, base {spec.base.type}{_context_text(spec)}"
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
    for name, shape in graph.latent_shapes():
        size = prod(shape)
        lines.append(f"  {name}  {_shape(shape)}  z[{offset}:{offset + size}]")
        offset += size
    mixing = graph.mixing
    if mixing is not None:
        lines.append(f"mixing: {mixing.summary()}")
        if mixing.input_size <= 8:
            context = mixing.context_deps
            lines.append("  latent <- inputs" + (" | context" if context is not None else ""))
            for i, row in enumerate(mixing.matrix()):
                cells = "".join("x" if v else "." for v in row)
                if context is not None:
                    cells += " | " + ("c" if context[i] else ".")
                lines.append(f"  z[{i}] <- {cells}")
    if graph.conditional:
        users = graph.context_users()
        lines.append(
            f"context 'c' {_shape(graph.graph.nodes[CONTEXT]['shape'])} feeds "
            f"{len(users)} op(s)"
            + (f" and the base ({spec.base.type})" if _conditional_base(spec) else "")
        )
    for warning in graph.warnings:
        lines.append(warning.format())
    return "\n".join(lines)


def _label(flow: FlowGraph, node: str) -> str:
    data = flow.graph.nodes[node]
    if "op" in data:
        op = data["op"]
        return f"{op.name}\\n{op.kind}\\n{_shape(op.in_shape)}"
    if data.get("kind") == "context":
        return f"{node} (context)\\n{_shape(data['shape'])}"
    return f"{node}\\n{_shape(data['shape'])}"


def to_dot(flow: FlowGraph) -> str:
    """Graphviz DOT text of the IR (render with ``dot -Tpng``)."""
    graph = flow.graph
    lines = [f'digraph "{flow.name}" {{', "  rankdir=TB; node [shape=box, fontsize=10];"]
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    for node, data in graph.nodes(data=True):
        shape = "ellipse" if data.get("kind") in ("input", "latent", "context") else "box"
        lines.append(f'  {ids[node]} [label="{_label(flow, node)}", shape={shape}];')
    for u, v, data in graph.edges(data=True):
        style = ", style=dashed" if data.get("context") else ""
        lines.append(f'  {ids[u]} -> {ids[v]} [label="{_shape(data["shape"])}"{style}];')
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(flow: FlowGraph) -> str:
    """Mermaid flowchart text of the IR (renders in GitHub markdown)."""
    graph = flow.graph
    lines = ["flowchart TD"]
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    for node in graph.nodes:
        label = _label(flow, node).replace("\\n", "<br/>")
        lines.append(f'  {ids[node]}["{label}"]')
    for u, v, data in graph.edges(data=True):
        arrow = "-.->" if data.get("context") else "-->"
        lines.append(f'  {ids[u]} {arrow}|"{_shape(data["shape"])}"| {ids[v]}')
    return "\n".join(lines)
