"""``precision: bf16``: the networks compute in bfloat16, the flow's own arithmetic in float32.

The oracle is the same flow in float32 and float64 (dequantisation noise off): the bf16 flow's
log-determinant error is reported and bounded, every step's log-determinant is float32, and
every conditioner layer really ran in bfloat16."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import flowspec
from flowspec.data import load_splits
from flowspec.errors import TrainingError
from flowspec.nn.oracles import perturb_parameters
from flowspec.spec.training import TrainSpec
from flowspec.training import train
from flowspec.training.precision import check_precision, networks, networks_autocast


@pytest.fixture(scope="module")
def glow() -> tuple[flowspec.Flow, torch.Tensor]:
    """glow_digits after data-dependent init, moved off the identity, noise off."""
    torch.manual_seed(0)
    flow = flowspec.compile("specs/glow_digits.yaml")
    x = torch.as_tensor(load_splits("digits").train[:256])
    with torch.no_grad():
        flow(x)
    perturb_parameters(flow, scale=0.05, seed=1)
    for step in flow.steps:
        if step.kind == "dequantize":
            step.module.noise = step.module.round = False
    return flow, x


def test_bf16_logdet_error_against_float32_and_float64(glow: Any) -> None:
    flow, x = glow
    with torch.no_grad():
        _, ld32 = flow(x)
        lp32 = flow.log_prob(x)
        with networks_autocast(flow, "bf16"):
            z16, ld16 = flow(x)
            lp16 = flow.log_prob(x)
        flow.double()
        try:
            _, ld64 = flow(x)
        finally:
            flow.float()
    assert z16.dtype == ld16.dtype == lp16.dtype == torch.float32
    scale = float(ld64.abs().mean())
    err32 = float((ld32.double() - ld64).abs().max())
    err16 = float((ld16.double() - ld64).abs().max())
    print(  # the report (pytest -s): nats per 8x8 image
        f"\nlogdet |error| vs float64, mean |logdet| {scale:.2f} nats: float32 {err32:.2e}, "
        f"bf16 networks {err16:.2e} (bf16 vs float32 {float((ld16 - ld32).abs().max()):.2e}); "
        f"log_prob bf16 vs float32 {float((lp16 - lp32).abs().max()):.2e} "
        f"(mean {float((lp16 - lp32).abs().mean()):.2e})"
    )
    assert err32 < 1e-4 * scale  # float32 is the oracle-checked path
    assert 10 * err32 < err16 < 1e-3 * scale  # bf16 does change the networks, but little
    # z moves a little too, so log p moves more than the logdet: < 0.01 bits/dim here
    assert float((lp16 - lp32).abs().max()) < 5e-3 * float(lp32.abs().mean())


def test_networks_run_in_bf16_and_logdets_stay_float32(glow: Any) -> None:
    flow, x = glow
    kinds = {type(n).__name__ for n in networks(flow)}
    assert kinds == {"GlowConvNet", "Conv2d"}  # coupling conditioners, split priors
    assert len(networks(flow)) == 18 + 2
    layer_dtypes: list[torch.dtype] = []
    inner = [m for net in networks(flow) for m in net.modules() if m is not net]
    hooks = [  # layers inside the networks (a network's own output is cast back)
        m.register_forward_hook(lambda m, i, o: layer_dtypes.append(o.dtype))
        for m in inner
        if isinstance(m, nn.Conv2d)
    ]
    step_dtypes: list[torch.dtype] = []
    try:
        with torch.no_grad(), networks_autocast(flow, "bf16"):
            flow.run_forward(x[:8], observe=lambda step, outs, ld: step_dtypes.append(ld.dtype))
    finally:
        for h in hooks:
            h.remove()
    assert len(layer_dtypes) == 18 * 3 and set(layer_dtypes) == {torch.bfloat16}
    assert set(step_dtypes) == {torch.float32} and len(step_dtypes) == len(flow.steps)
    assert all("forward" not in vars(n) for n in networks(flow))  # restored after the block


def test_bf16_training_keeps_float32_weights() -> None:
    config = TrainSpec(steps=4, batch_size=64, precision="bf16", seed=1)
    result = train("specs/glow_digits.yaml", config=config, figures=False)
    assert result.status == "completed" and result.best_val_nll is not None
    assert {p.dtype for p in result.flow.parameters()} == {torch.float32}
    assert all(torch.isfinite(p).all() for p in result.flow.parameters())


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "an old GPU")
    with pytest.raises(TrainingError) as exc:
        check_precision("bf16", torch.device("cuda"))
    assert exc.value.codes == ["precision-unsupported"] and "an old GPU" in str(exc.value)
    check_precision("float32", torch.device("cuda"))
    check_precision("bf16", torch.device("cpu"))
