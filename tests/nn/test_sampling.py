"""Sampling from a trained flow never overflows at temperature <= 1: 10,000 samples from every
shipped spec after a short training run are all finite, and so are samples from a briefly
trained Glow whose weights were then nudged (without the bounds on the sigmoid scale and the
learned prior, nearly all of those overflow)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import flowspec
from flowspec.data import Splits
from flowspec.nn.oracles import example_context, perturb_parameters
from flowspec.nn.split import PRIOR_LOG_STD_BOUND
from flowspec.nn.transforms import SIGMOID_LOG_SCALE_MIN
from tests.helpers import HUGE_SPECS, LARGE_SPECS, SPEC_FILES, narrowed

SAMPLES = 10_000


def _random_images(spec: Any, n: int) -> Splits:
    levels = spec.preprocess[0].levels if spec.preprocess else 256
    gen = np.random.default_rng(0)
    shape = (n, *spec.input.shape)
    parts = [gen.integers(0, levels, shape) for _ in range(3)]
    return Splits(*parts, name="random", discrete_levels=levels)


def _trained(path: Path, steps: int) -> flowspec.Flow:
    import yaml

    raw = yaml.safe_load(path.read_text())
    spec = flowspec.load_spec(narrowed(raw) if path.stem in LARGE_SPECS else path)
    data: Any = None
    if spec.data is None:
        data = "moons" if len(spec.input.shape) == 1 else _random_images(spec, 64)
    config = flowspec.TrainSpec(steps=steps, batch_size=32, lr=1e-3, threads=1)
    torch.manual_seed(0)
    return flowspec.train(spec, data=data, config=config).flow.eval()


def _nonfinite(flow: flowspec.Flow, n: int, temperature: float) -> int:
    torch.manual_seed(1)
    bad = 0
    with torch.no_grad():
        for size in [4096] * (n // 4096) + [n % 4096]:
            context = example_context(flow, size, torch.Generator().manual_seed(size))
            x = flow.sample(size, temperature=temperature, context=context)
            bad += int((~torch.isfinite(x.reshape(size, -1))).any(dim=1).sum())
    return bad


def _case(path: Path) -> Any:
    if path.stem in LARGE_SPECS:  # narrowed copies; the full sample count in the slow run
        # (sampling 64x64 images is 2 x 1024 sequential steps per TarFlow stack: fewer here)
        n = 100 if path.stem in HUGE_SPECS else 500
        return [
            pytest.param(path, n, id=f"{path.stem}-narrow"),
            pytest.param(path, SAMPLES, id=f"{path.stem}-narrow-10k", marks=pytest.mark.slow),
        ]
    return [pytest.param(path, SAMPLES, id=path.stem)]


@pytest.mark.parametrize(("path", "n"), [case for p in SPEC_FILES for case in _case(p)])
def test_samples_of_every_shipped_spec_are_finite_after_training(path: Path, n: int) -> None:
    flow = _trained(path, steps=10)
    assert _nonfinite(flow, n, 1.0) == 0


@pytest.fixture(scope="module")
def glow() -> dict[str, torch.Tensor]:
    flow = _trained(Path("specs/glow_digits.yaml"), steps=30)
    return {k: v.clone() for k, v in flow.state_dict().items()}


def _nudged(state: dict[str, torch.Tensor], nudge: float) -> flowspec.Flow:
    flow = flowspec.compile("specs/glow_digits.yaml")
    flow.load_state_dict(state)
    return perturb_parameters(flow, scale=nudge, seed=0).eval()


@pytest.mark.parametrize("nudge", [0.05, 0.1])
def test_a_nudged_trained_glow_still_samples_finite_values(
    glow: dict[str, torch.Tensor], nudge: float
) -> None:
    assert _nonfinite(_nudged(glow, nudge), SAMPLES, 1.0) == 0


def test_without_the_bounds_the_nudged_glow_overflows(
    glow: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: with the unbounded formulas almost every sample overflows."""
    import flowspec.nn.split
    import flowspec.nn.transforms

    monkeypatch.setattr(flowspec.nn.transforms, "SIGMOID_LOG_SCALE_MIN", -math.inf)
    monkeypatch.setattr(flowspec.nn.split, "PRIOR_LOG_STD_BOUND", math.inf)
    assert _nonfinite(_nudged(glow, 0.1), SAMPLES, 1.0) > SAMPLES // 2


def test_the_bounds_act_only_beyond_them() -> None:
    """Inside the bounds the sigmoid log-scale and the prior are the unbounded formulas, bit for
    bit (the fingerprints of flowspec 0.1 hold); outside they are clamped, in both directions,
    so the flow stays an exact bijection."""
    from flowspec.nn.transforms import LOG_SCALES

    raw = torch.linspace(-30, 30, 601)
    bounded = LOG_SCALES["sigmoid"](None, raw)
    plain = torch.nn.functional.logsigmoid(raw + 2.0)
    inside = plain >= SIGMOID_LOG_SCALE_MIN
    assert torch.equal(bounded[inside], plain[inside])
    assert torch.equal(bounded[~inside], torch.full_like(bounded[~inside], SIGMOID_LOG_SCALE_MIN))
    split = flowspec.compile(
        flowspec.load_spec("flowspec: 1\ninput: {shape: [4]}\nlayers: [{type: split}]")
    ).double()
    with torch.no_grad():
        split.layers["0"].prior.bias.copy_(torch.tensor([0.0, 0.0, 50.0, -3.0]))
        x = torch.randn(5, 4, dtype=torch.float64)
        z, logdet = split(x)
        assert torch.allclose(split.inverse(z), x, atol=1e-12)
        assert torch.allclose(
            logdet, torch.full((5,), 3.0 - PRIOR_LOG_STD_BOUND, dtype=torch.float64)
        )
