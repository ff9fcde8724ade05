"""``compile_graph``: the checked IR -> a :class:`Flow` module (``compile`` composes the stages).

The module is ``compiler``, not ``compile``: importing a submodule named ``flowspec.compile``
would rebind the package attribute and shadow the public function ``flowspec.compile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from flowspec.distributions import build_base
from flowspec.flow import Flow, Step
from flowspec.graph.build import build_graph
from flowspec.graph.ir import FlowGraph, op_nodes
from flowspec.ops import OPS
from flowspec.spec.models import FlowSpec


def compile_graph(graph: FlowGraph) -> Flow:
    """Build each op's module and lay them out as a flat schedule of slots.

    Slot 0 holds the input; every output port of every op gets the next slot; latents are the
    slots that feed latent nodes, in ``graph.graph["latents"]`` order.
    """
    spec = graph.graph["spec"]
    slot_of: dict[tuple[str, int], int] = {("x", 0): 0}
    steps: list[Step] = []
    for node in op_nodes(graph):
        ((src, _, edge),) = graph.in_edges(node.name, data=True)
        dst = tuple(range(len(slot_of), len(slot_of) + len(node.out_shapes)))
        for port, slot in enumerate(dst):
            slot_of[(node.name, port)] = slot
        steps.append(
            Step(node.name, OPS[node.kind].build(node), slot_of[(src, edge["src_port"])], dst)
        )
    latent_slots, latent_shapes = [], []
    for latent in graph.graph["latents"]:
        ((src, _, edge),) = graph.in_edges(latent, data=True)
        latent_slots.append(slot_of[(src, edge["src_port"])])
        latent_shapes.append(graph.nodes[latent]["shape"])
    dim = sum(torch.Size(s).numel() for s in latent_shapes)
    base = build_base(spec.base, dim, spec.seed)
    flow = Flow(spec, steps, latent_slots, latent_shapes, len(slot_of), base)
    flow.graph = graph
    return flow


def compile(spec: FlowSpec | str | Path | dict[str, Any], seed: int | None = None) -> Flow:
    """Spec (path, YAML text, dict or FlowSpec) -> checked graph -> initialised :class:`Flow`.

    Arguments:
        spec: the flow to build.
        seed: seeds torch's generator before the weights are initialised (default: the
            spec's ``seed``), so the same spec and seed give the same initial weights.

    Example:
        >>> import flowspec, torch
        >>> flow = flowspec.compile("specs/realnvp_moons.yaml")
        >>> z, logdet = flow(torch.randn(8, 2))
        >>> tuple(z.shape), tuple(logdet.shape)
        ((8, 2), (8,))
    """
    graph = build_graph(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(graph.graph["spec"].seed if seed is None else seed)
        return compile_graph(graph)
