"""Conditional flows under the optimising compiler: invertible backprop's rebuild, the
optimisation passes and the cost rules all receive the context (float64 oracles: plain
autograd, the flow compiled without passes)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import flowspec
from flowspec.nn.oracles import example_context, example_inputs
from tests.helpers import ROOT, example_spec

MASKED_CONDITIONAL = example_spec(
    [4],
    [
        {"type": "affine_coupling", "mask": "alternating", "net_input": "masked",
         "net": {"type": "mlp", "hidden": [16], "towers": "separate"}},
        {"type": "autoregressive", "direction": "iaf", "transform": {"type": "spline"}},
        {"type": "coupling", "mask": "alternating", "net_input": "masked",
         "transform": {"type": "spline"}},
    ],
    context={"classes": 3, "embedding": 2},
    base={"type": "conditional_normal", "hidden": [8]},
)  # fmt: skip


CONDITIONAL_TOKENS = example_spec(
    [1, 4, 4],
    [
        {"type": "patchify", "patch": 2},
        {"type": "tarflow", "width": 8, "depth": 1, "heads": 2, "start": "learned"},
        {"type": "affine_coupling", "mask": "checkerboard", "log_scale": "sigmoid2",
         "net": {"type": "vit", "width": 8, "depth": 1, "heads": 2}},
        {"type": "tarflow", "width": 8, "depth": 2, "heads": 2, "order": "reverse"},
    ],
    context={"classes": 3, "embedding": 2},
)  # fmt: skip


def _perturbed(spec: Any, passes: Any = None) -> flowspec.Flow:
    flow = flowspec.compile(spec, passes=passes) if passes is not None else flowspec.compile(spec)
    flow = flow.double()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return flow


def _gradients(flow: flowspec.Flow, x: torch.Tensor, c: Any) -> list[torch.Tensor]:
    flow.zero_grad()
    torch.manual_seed(1)  # dequantisation noise, the same in every call
    (-flow.log_prob(x, c).mean()).backward()
    return [p.grad.clone() for p in flow.parameters()]


@pytest.mark.parametrize(
    "spec",
    [pytest.param(MASKED_CONDITIONAL, id="masked_mlp_iaf_spline"),
     pytest.param(CONDITIONAL_TOKENS, id="tarflow_jet_tokens"),
     pytest.param(ROOT / "specs" / "conditional_moons.yaml", id="conditional_moons"),
     pytest.param(ROOT / "specs" / "conditional_digits.yaml", id="conditional_digits")],
)  # fmt: skip
def test_invertible_backprop_of_a_conditional_flow_equals_autograd(spec: Any) -> None:
    flow = _perturbed(spec)
    generator = torch.Generator().manual_seed(0)
    x, c = example_inputs(flow, 8, generator), example_context(flow, 8, generator)
    with torch.no_grad():
        flow(x, c)  # data-dependent init
    plain = _gradients(flow, x, c)
    flow.memory = "invertible"
    invertible = _gradients(flow, x, c)
    for a, b in zip(plain, invertible):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_passes_pass_the_context_through() -> None:
    on = _perturbed(MASKED_CONDITIONAL, passes=("kept_inputs", "fuse_towers"))
    off = _perturbed(MASKED_CONDITIONAL, passes=())
    assert on.passes["kept_inputs"] and on.passes["fuse_towers"]  # they did apply
    generator = torch.Generator().manual_seed(0)
    x, c = example_inputs(on, 16, generator), example_context(on, 16, generator)
    gradients = [_gradients(f, x, c) for f in (on, off)]
    with torch.no_grad():
        assert torch.allclose(on.log_prob(x, c), off.log_prob(x, c), rtol=0, atol=1e-12)
        other = (c + 1) % 3  # and the context matters
        assert not torch.allclose(on.log_prob(x, other), on.log_prob(x, c))
    for a, b in zip(*gradients):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
