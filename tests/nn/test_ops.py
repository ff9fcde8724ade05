"""Oracle tests for every layer kind in the catalogue (vectors and images), in float64.

Oracles: round trips both ways, the logdet against ``slogdet`` of the autograd Jacobian of the
forward map and minus that of the inverse map, each op's shape rule against the runtime shapes,
and gradients reaching every parameter. Each example flow gets perturbed weights first:
zero-initialised layers start as the identity, and a check on an identity would pass whatever
the code does.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import flowspec
from flowspec.layers import ALL_OPS
from flowspec.nn.flow import Step
from flowspec.nn.oracles import deterministic, example_inputs, jacobian_logdet
from tests.catalogue import OP_EXAMPLES, op_example_params
from tests.helpers import example_spec, one_thread_per_module, prepared_flow

ROUND_TRIP_TOL = 1e-9
LOGDET_TOL = 1e-9


one_thread = one_thread_per_module()


def test_every_op_kind_has_an_example() -> None:
    assert {op.kind for op in ALL_OPS} == set(OP_EXAMPLES)


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_round_trip(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = prepared_flow(shape, layers)
    with deterministic(flow), torch.no_grad():
        x = example_inputs(flow, 16, torch.Generator().manual_seed(3))
        z, _ = flow(x)
        assert z.shape == (16, math.prod(shape))
        assert (flow.inverse(z) - x).abs().max() < ROUND_TRIP_TOL
        z2 = 0.5 * torch.randn(16, math.prod(shape), dtype=torch.float64)
        assert (flow(flow.inverse(z2))[0] - z2).abs().max() < ROUND_TRIP_TOL


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_logdet_matches_autograd_jacobian(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = prepared_flow(shape, layers)
    with deterministic(flow):
        x = example_inputs(flow, 3, torch.Generator().manual_seed(4))
        _, logdet = flow(x)
        oracle = jacobian_logdet(flow, x)
    scale = 1 + oracle.abs().max()
    assert (logdet - oracle).abs().max() / scale < LOGDET_TOL, (logdet, oracle)
    volume_preserving = kind in ("additive_coupling", "squeeze", "permute", "patchify") or (
        kind in ("coupling", "autoregressive")
        and layers[-1].get("transform", {}).get("type") == "additive"
    )
    if not volume_preserving and not (kind == "split" and layers[0]["prior"] == "standard"):
        assert oracle.abs().max() > 1e-3, "the example should have a non-trivial logdet"


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_inverse_logdet_cancels_forward(kind: str, shape: list[int], layers: list[dict]) -> None:
    """log|det d f^-1/dz| at z = f(x), from autograd, plus the forward logdet at x, is zero."""
    flow = prepared_flow(shape, layers)
    with deterministic(flow):
        x = example_inputs(flow, 3, torch.Generator().manual_seed(5))
        z, logdet = flow(x)
        for zi, ld in zip(z.detach(), logdet):
            jac = torch.autograd.functional.jacobian(
                lambda v: flow.inverse(v[None]).reshape(-1), zi
            )
            error = abs(float(torch.linalg.slogdet(jac)[1] + ld.detach()))
            assert error / (1 + abs(float(ld.detach()))) < LOGDET_TOL


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_shape_rule_equals_runtime_shape(kind: str, shape: list[int], layers: list[dict]) -> None:
    """Observed through the interpreter's hook: each step's outputs have the shapes its shape
    rule gave, its logdet is per example, and the latents have the graph's shapes."""
    flow = prepared_flow(shape, layers)
    seen: dict[str, tuple[list[tuple[int, ...]], tuple[int, ...]]] = {}

    def observe(step: Step, outs: tuple[torch.Tensor, ...], logdet: Any) -> None:
        seen[step.name] = ([tuple(t.shape[1:]) for t in outs], tuple(logdet.shape))

    with deterministic(flow), torch.no_grad():
        flow.run_forward(example_inputs(flow, 2), observe=observe)
        latents = flow.encode(example_inputs(flow, 2))
    ops = list(flow.graph.ops())
    assert [op.name for op in ops] == list(seen) and ops
    for op in ops:
        assert seen[op.name] == ([tuple(s) for s in op.out_shapes], (2,)), op.name
    assert [tuple(t.shape[1:]) for t in latents] == [s for _, s in flow.graph.latent_shapes()]


def _with_parameters() -> list[Any]:
    return [
        p
        for p in op_example_params()
        if flowspec.compile(example_spec(p.values[1], p.values[2])).num_parameters()
    ]


@pytest.mark.parametrize(("kind", "shape", "layers"), _with_parameters())
def test_gradients_reach_every_parameter(kind: str, shape: list[int], layers: list[dict]) -> None:
    flow = prepared_flow(shape, layers)
    flow.train()
    flow.log_prob(example_inputs(flow, 8)).sum().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if kind == "invconv" and shape[0] == 1 and name.endswith(("lower", "upper")):
            continue  # a 1x1 matrix has empty strict triangles: L and U hold nothing
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
