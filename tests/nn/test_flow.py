"""The interpreter: one loop each way, observed through its hook; failures name the step."""

from __future__ import annotations

import pytest
import torch

import flowspec
from flowspec.nn.flow import Step, StepError

SPEC = {
    "flowspec": 1,
    "input": {"shape": [4]},
    "layers": [
        {"type": "actnorm"},
        {"type": "split", "prior": "learned"},
        {"type": "affine_coupling", "mask": "first_half", "net": {"type": "mlp", "hidden": [8]}},
    ],
}


def test_observe_sees_every_step_in_order_both_ways() -> None:
    flow = flowspec.compile(SPEC)
    x = torch.randn(5, 4)
    seen: list[tuple[str, int, bool]] = []

    def observe(step: Step, outs: tuple[torch.Tensor, ...], logdet: torch.Tensor | None) -> None:
        seen.append((step.name, len(outs), logdet is None))

    z, logdet = flow.run_forward(x, observe=observe)
    assert seen == [("layers.0", 1, False), ("layers.1", 2, False), ("layers.2", 1, False)]
    assert torch.equal(z, flow(x)[0]) and torch.equal(logdet, flow(x)[1])
    seen.clear()
    x_back = flow.decode(list(z.split(flow.latent_sizes, 1)), observe=observe)
    assert [s[0] for s in seen] == ["layers.2", "layers.1", "layers.0"]
    assert torch.allclose(x_back, x, atol=1e-5)
    assert [s.kind for s in flow.steps] == ["actnorm", "split", "affine_coupling"]
    assert flow.steps[2].path == "layers.2" and flow.steps[1].dst == (2, 3)


def test_a_failing_step_is_named_with_its_spec_path_and_shapes() -> None:
    flow = flowspec.compile(SPEC)
    flow.layers["2"].net.trunk[0] = torch.nn.Linear(3, 8)  # a conditioner that cannot fit
    with pytest.raises(StepError) as info:
        flow(torch.randn(5, 4))
    message = str(info.value)
    assert message.startswith(
        "step 'layers.2' (affine_coupling, spec path layers.2) failed in forward"
    )
    assert "on input of shape (5, 2)" in message  # the kept half, after the split
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(StepError, match=r"step 'layers.2' \(affine_coupling.*inverse"):
        flow.inverse(torch.randn(5, 4))


def test_inputs_of_the_wrong_shape_are_refused_before_any_step() -> None:
    flow = flowspec.compile(SPEC)
    with pytest.raises(ValueError, match=r"per-example shape \(3,\); the flow's input is \(4,\)"):
        flow(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"z of shape \(5, 5\); the flow's latent is \(N, 4\)"):
        flow.inverse(torch.randn(5, 5))


def test_first_nonfinite_names_the_first_bad_step() -> None:
    flow = flowspec.compile(SPEC)
    with torch.no_grad():
        flow(torch.randn(16, 4))  # actnorm init
        flow.layers["2"].net.trunk[-1].bias.fill_(float("nan"))
    assert flow.first_nonfinite(torch.randn(4, 4)) == "layers.2"
    assert flowspec.compile(SPEC).first_nonfinite(torch.randn(4, 4)) is None
