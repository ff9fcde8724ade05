"""Oracle checks for every layer kind in ALL_OPS, in float64.

Each example flow gets random (perturbed) weights first: zero-initialised layers start as the
identity, and a check on an identity would pass whatever the code does.
"""

from __future__ import annotations

import math

import pytest
import torch

import flowspec
from flowspec.flow import Flow
from flowspec.graph.ir import op_nodes
from flowspec.numerics import deterministic, example_inputs, jacobian_logdet, perturb_parameters
from flowspec.ops import ALL_OPS
from tests.conftest import OP_EXAMPLES, example_spec, op_example_params

ROUND_TRIP_TOL = 1e-9
LOGDET_TOL = 1e-9


def _flow(shape: list[int], layers: list[dict]) -> Flow:
    flow = flowspec.compile(example_spec(shape, layers)).double()
    with torch.no_grad():  # a first batch initialises actnorm and batchnorm statistics
        flow.train()
        flow(example_inputs(flow, 64, torch.Generator().manual_seed(1)))
    return perturb_parameters(flow, scale=0.3, seed=2)


def test_every_op_kind_has_an_example() -> None:
    assert {op.kind for op in ALL_OPS} == set(OP_EXAMPLES)


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_round_trip(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = _flow(shape, layers)
    with deterministic(flow), torch.no_grad():
        x = example_inputs(flow, 16, torch.Generator().manual_seed(3))
        z, _ = flow(x)
        assert z.shape == (16, math.prod(shape))
        assert (flow.inverse(z) - x).abs().max() < ROUND_TRIP_TOL
        z2 = 0.5 * torch.randn(16, math.prod(shape), dtype=torch.float64)
        assert (flow(flow.inverse(z2))[0] - z2).abs().max() < ROUND_TRIP_TOL


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_logdet_matches_autograd_jacobian(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = _flow(shape, layers)
    with deterministic(flow):
        x = example_inputs(flow, 3, torch.Generator().manual_seed(4))
        _, logdet = flow(x)
        oracle = jacobian_logdet(flow, x)
    assert torch.allclose(logdet, oracle, atol=LOGDET_TOL, rtol=1e-9), (logdet, oracle)
    volume_preserving = kind == "additive_coupling" or flow.num_parameters() == 0
    if not volume_preserving or kind in ("dequantize", "logit"):
        assert oracle.abs().max() > 1e-3, "the example should have a non-trivial logdet"


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_inverse_logdet_cancels_forward(kind: str, shape: list[int], layers: list[dict]) -> None:
    """log|det d f^-1/dz| at z = f(x), from autograd, plus the forward logdet at x, is zero."""
    flow = _flow(shape, layers)
    with deterministic(flow):
        x = example_inputs(flow, 3, torch.Generator().manual_seed(5))
        z, logdet = flow(x)
        for zi, ld in zip(z.detach(), logdet):
            jac = torch.autograd.functional.jacobian(
                lambda v: flow.inverse(v[None]).reshape(-1), zi
            )
            assert abs(float(torch.linalg.slogdet(jac)[1] + ld.detach())) < LOGDET_TOL


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_shape_rule_equals_runtime_shape(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = _flow(shape, layers)
    nodes = {node.name: node for node in op_nodes(flow.graph)}
    x = example_inputs(flow, 2)
    seen = 0
    with deterministic(flow), torch.no_grad():
        slots: list = [None] * flow._n_slots
        slots[0] = x
        for name, (module, src, dst) in zip(flow.step_names, flow._schedule):
            y, ld = module(slots[src])
            outs = (y,) if len(dst) == 1 else tuple(y)
            assert [tuple(t.shape[1:]) for t in outs] == list(nodes[name].out_shapes)
            assert ld.shape == (2,)
            for slot, value in zip(dst, outs):
                slots[slot] = value
            seen += 1
    assert seen == len(nodes) > 0


def _with_parameters() -> list:
    return [
        p
        for p in op_example_params()
        if flowspec.compile(example_spec(p.values[1], p.values[2])).num_parameters()
    ]


@pytest.mark.parametrize(("kind", "shape", "layers"), _with_parameters())
def test_gradients_reach_every_parameter(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = _flow(shape, layers)
    flow.train()
    flow.log_prob(example_inputs(flow, 8)).sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
