"""``compile_graph``: the checked IR -> a :class:`~flowspec.nn.flow.Flow` module.

Each op's module comes from its layer kind's builder (``flowspec.nn.<module>.build``); the graph
is laid out once as a flat list of steps over numbered slots, so that at run time there is no
networkx and no lookup by name. :func:`flowspec.compile` composes this with the earlier stages.

The flow's parameters are counted against the ``parameters`` limit as it is built; an op whose
conditioner could be large (wide and deep) is first built on the ``meta`` device, which
allocates nothing, so an oversized spec is refused before its memory is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel

from flowspec.errors import Diagnostic, SpecError
from flowspec.graph.ir import INPUT, FlowGraph, OpNode
from flowspec.layers import OPS
from flowspec.nn.bases import build_base
from flowspec.nn.context import ContextEncoder
from flowspec.nn.flow import Flow, Step
from flowspec.nn.passes import apply_passes
from flowspec.spec.budget import FIELD_LIMITS
from flowspec.spec.limits import limit, raise_hint
from flowspec.spec.passes import DEFAULT_PASSES

__all__ = ["compile_graph", "spec_passes"]

PROBE_ABOVE = 50_000_000  # a rough bound on an op's parameters above which it is probed first


def compile_graph(graph: FlowGraph, passes: Sequence[str] | None = None) -> Flow:
    """Build each op's module and lay them out as a flat list of steps over slots.

    Slot 0 holds the input; every output port of every op gets the next slot; latents are the
    slots that feed latent nodes, in ``graph.latents`` order. Weights are drawn from torch's
    global generator (:func:`flowspec.compile` seeds it). The flow's ``memory`` mode is the
    spec's ``train: {memory:}`` (default ``plain``). ``passes`` names the optimisation passes
    to apply (:mod:`flowspec.nn.passes`; ``()`` for none; default the spec's
    ``train: {passes:}``, else :data:`~flowspec.spec.passes.DEFAULT_PASSES`); ``flow.passes``
    records where each one applied.
    """
    slot_of: dict[tuple[str, int], int] = {(INPUT, 0): 0}
    steps: list[Step] = []
    budget = _Budget(graph)
    for op in graph.ops():
        dst = tuple(range(len(slot_of), len(slot_of) + len(op.out_shapes)))
        for port, slot in enumerate(dst):
            slot_of[(op.name, port)] = slot
        build = OPS[op.kind].builder()
        if _rough_size(op.spec) > PROBE_ABOVE:
            with torch.device("meta"):
                budget.charge(build(op.spec, op.in_shape, op.params), op, probe=True)
        module = budget.charge(build(op.spec, op.in_shape, op.params), op)
        src = slot_of[graph.source_of(op.name)]
        steps.append(Step(op.name, op.kind, op.path, module, src, dst))
    latent_slots = [slot_of[graph.source_of(latent)] for latent in graph.latents]
    latent_shapes = [shape for _, shape in graph.latent_shapes()]
    context = graph.spec.context
    features = context.features if context is not None else 0
    budget.add(_base_size(graph.spec.base, graph.latent_size(), features), ("base",))
    encoder = ContextEncoder(context) if context is not None else None
    if encoder is not None:
        budget.add(sum(p.numel() for p in encoder.parameters()), ("context",))
    base = build_base(graph.spec.base, graph.latent_size(), graph.spec.seed, features)
    flow = Flow(graph.spec, steps, latent_slots, latent_shapes, len(slot_of), base, encoder)
    flow.graph = graph
    flow.passes = apply_passes(flow.steps, spec_passes(graph.spec) if passes is None else passes)
    if graph.spec.train is not None:
        flow.memory = graph.spec.train.memory
    return flow


class _Budget:
    """The running parameter count of a flow being built, against the ``parameters`` limit."""

    def __init__(self, graph: FlowGraph) -> None:
        self.graph, self.total = graph, 0

    def add(self, count: int, path: Any, probe: bool = False) -> None:
        if self.total + count > limit("parameters"):
            where = ".".join(map(str, path))
            raise SpecError(
                Diagnostic(
                    "limit-exceeded",
                    f"the flow would have more than {self.total + count:,} parameters, "
                    f"{count:,} of them here (limit parameters: {limit('parameters'):,})",
                    where,
                    self.graph.locate(tuple(path)),
                    raise_hint("parameters"),
                )
            )
        if not probe:
            self.total += count

    def charge(self, module: torch.nn.Module, op: OpNode, probe: bool = False) -> Any:
        self.add(sum(p.numel() for p in module.parameters()), op.spec_path, probe)
        return module


def _base_size(spec: Any, dim: int, features: int) -> int:
    """The base's parameter count, before building it: loc and log-scale per component, or the
    MLP of a conditional base (context features -> hidden -> mean and log-scale)."""
    if spec.type == "conditional_normal":
        sizes = [features, *spec.hidden, 2 * dim]
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2 * getattr(spec, "components", 1) * dim


def _rough_size(spec: BaseModel) -> int:
    """A rough bound on an op's conditioner size from its widths and depths (cheap, torch-free):
    the widest layer squared, times 9 (a 3x3 kernel), times the number of layers."""
    widths, depth = [1], 2
    stack: list[Any] = [spec]
    while stack:
        model = stack.pop()
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                stack.append(value)
            elif name in FIELD_LIMITS and isinstance(value, int | tuple):
                values = value if isinstance(value, tuple) else (value,)
                if name == "blocks":
                    depth += 2 * int(value)
                else:
                    widths += [int(v) for v in values]
                    depth += len(values)
    return 9 * max(widths) ** 2 * depth


def spec_passes(spec: Any) -> tuple[str, ...]:
    """The optimisation passes ``spec`` asks for (its ``train: {passes:}``, else the default)."""
    chosen = spec.train.passes if spec.train is not None else None
    return DEFAULT_PASSES if chosen is None else tuple(chosen)
