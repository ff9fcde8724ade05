"""``compile_graph``: the checked IR -> a :class:`~flowspec.nn.flow.Flow` module.

Each op's module comes from its layer kind's builder (``flowspec.nn.<module>.build``); the graph
is laid out once as a flat list of steps over numbered slots, so that at run time there is no
networkx and no lookup by name. :func:`flowspec.compile` composes this with the earlier stages.
"""

from __future__ import annotations

from flowspec.graph.ir import INPUT, FlowGraph
from flowspec.layers import OPS
from flowspec.nn.bases import build_base
from flowspec.nn.flow import Flow, Step

__all__ = ["compile_graph"]


def compile_graph(graph: FlowGraph) -> Flow:
    """Build each op's module and lay them out as a flat list of steps over slots.

    Slot 0 holds the input; every output port of every op gets the next slot; latents are the
    slots that feed latent nodes, in ``graph.latents`` order. Weights are drawn from torch's
    global generator (:func:`flowspec.compile` seeds it).
    """
    slot_of: dict[tuple[str, int], int] = {(INPUT, 0): 0}
    steps: list[Step] = []
    for op in graph.ops():
        dst = tuple(range(len(slot_of), len(slot_of) + len(op.out_shapes)))
        for port, slot in enumerate(dst):
            slot_of[(op.name, port)] = slot
        module = OPS[op.kind].builder()(op.spec, op.in_shape, op.params)
        src = slot_of[graph.source_of(op.name)]
        steps.append(Step(op.name, op.kind, op.path, module, src, dst))
    latent_slots = [slot_of[graph.source_of(latent)] for latent in graph.latents]
    latent_shapes = [shape for _, shape in graph.latent_shapes()]
    base = build_base(graph.spec.base, graph.latent_size(), graph.spec.seed)
    flow = Flow(graph.spec, steps, latent_slots, latent_shapes, len(slot_of), base)
    flow.graph = graph
    return flow
