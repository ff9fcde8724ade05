"""torch.compile traces every shipped flow with zero graph breaks (forward and inverse).

A Python-level check of a tensor flag (actnorm's "initialised?") would break the graph; flowspec
keeps such state in plain Python attributes that dynamo guards on instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import flowspec
from flowspec.nn.oracles import example_context, example_inputs
from tests.helpers import HUGE_SPECS, LARGE_SPECS, SPEC_FILES

# Tracing 8 TarFlow blocks unrolled over 16 tokens takes 10 s on a small machine: with the slow
# tests; tarflow_moons and tests/nn/test_tarflow.py trace the same block in CI.
SLOW = LARGE_SPECS | {"tarflow_digits"}


def _params() -> list:
    return [
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
        for p in SPEC_FILES
        if p.stem not in HUGE_SPECS  # too large to run here; the digits specs trace their kinds
    ]


@pytest.mark.parametrize("path", _params())
def test_no_graph_breaks(path: Path) -> None:
    flow = flowspec.compile(path)
    x, c = example_inputs(flow, 4).float(), example_context(flow, 4)
    c = c.float() if c is not None and c.is_floating_point() else c
    with torch.no_grad():
        flow(x, c)  # data-dependent initialisation happens on the first batch, eagerly
    torch._dynamo.reset()
    forward = torch._dynamo.explain(flow)(x, c)
    inverse = torch._dynamo.explain(flow.inverse)(torch.randn(4, flow.dim), c)
    assert forward.graph_break_count == 0, forward.break_reasons
    assert inverse.graph_break_count == 0, inverse.break_reasons
    assert forward.graph_count == 1


def test_compiled_flow_matches_eager() -> None:
    flow = flowspec.compile("specs/realnvp_moons.yaml")
    x = torch.randn(32, 2)
    with torch.no_grad():
        flow(x)
    compiled = torch.compile(flow, backend="aot_eager", fullgraph=True)
    z, logdet = compiled(x)
    z_ref, logdet_ref = flow(x)
    assert torch.allclose(z, z_ref, atol=1e-6) and torch.allclose(logdet, logdet_ref, atol=1e-6)
    logdet.sum().backward()
    assert all(p.grad is not None for p in flow.parameters())


NEW_KINDS = {
    "iaf-spline-vector-context": {
        "flowspec": 1,
        "input": {"shape": [3]},
        "context": {"shape": [2], "normalize": True},
        "base": {"type": "conditional_normal"},
        "layers": [
            {"type": "actnorm"},
            {"type": "autoregressive", "direction": "iaf", "order": "random",
             "transform": {"type": "spline", "bins": 4}, "net": {"hidden": [8]}},
            {"type": "autoregressive", "transform": {"type": "spline"}, "net": {"hidden": [8]}},
            {"type": "coupling", "mask": "first_half", "net_input": "masked",
             "transform": {"type": "spline"}},
        ],
    },
    "spline-image-one-hot-context": {
        "flowspec": 1,
        "input": {"shape": [2, 4, 4]},
        "context": {"classes": 3},
        "layers": [
            {"type": "coupling", "mask": "checkerboard", "net_input": "masked",
             "transform": {"type": "spline"}, "net": {"type": "resnet", "channels": 4,
                                                      "blocks": 1}},
            {"type": "split"},
        ],
    },
}  # fmt: skip


@pytest.mark.parametrize("name", NEW_KINDS)
def test_new_kinds_with_contexts_have_no_graph_breaks(name: str) -> None:
    """IAF's D-pass solve, splines, normalised and one-hot contexts, both directions."""
    flow = flowspec.compile(NEW_KINDS[name])
    x, c = example_inputs(flow, 4).float(), example_context(flow, 4)
    c = c.float() if c.is_floating_point() else c
    with torch.no_grad():
        flow(x, c)  # the context's normalisation is set on the first batch, eagerly
    torch._dynamo.reset()
    forward = torch._dynamo.explain(flow.log_prob)(x, c)
    inverse = torch._dynamo.explain(flow.inverse)(torch.randn(4, flow.dim), c)
    assert forward.graph_break_count == 0, forward.break_reasons
    assert inverse.graph_break_count == 0, inverse.break_reasons
