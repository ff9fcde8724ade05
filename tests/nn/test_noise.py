"""Gaussian noise augmentation in ``dequantize``: its noise in training, uniform dequantisation in
evaluation (so every reported bits/dim stays the uniform bound), the same exact logdet."""

from __future__ import annotations

import math

import pytest
import torch

import flowspec
from flowspec.errors import SpecError
from tests.helpers import example_spec

LEVELS, SIGMA = 17, 0.025


def _flow(noise: dict | None = None) -> flowspec.Flow:
    layer = {"type": "dequantize", "levels": LEVELS, **({"noise": noise} if noise else {})}
    return flowspec.compile(example_spec([1, 4, 4], [layer])).double()


def test_training_mode_adds_gaussian_noise_around_the_bin_centre() -> None:
    flow = _flow({"type": "gaussian", "sigma": SIGMA}).train()
    x = torch.randint(0, LEVELS, (4000, 1, 4, 4))
    torch.manual_seed(0)
    z, logdet = flow(x)
    noise = z.reshape(x.shape) - (x + 0.5) / LEVELS  # y - bin centre, on the [0, 1] scale
    assert abs(noise.mean().item()) < 2e-4 and abs(noise.std().item() / SIGMA - 1) < 0.01
    assert (noise.abs() > 0.5 / LEVELS).any()  # unbounded, unlike uniform dequantisation
    assert torch.allclose(logdet, torch.full_like(logdet, -16 * math.log(LEVELS)))


@pytest.mark.parametrize("noise", [None, {"type": "uniform"}, {"type": "gaussian"}])
def test_evaluation_dequantises_uniformly(noise: dict | None) -> None:
    flow = _flow(noise).eval()
    x = torch.randint(0, LEVELS, (4000, 1, 4, 4))
    z, logdet = flow(x)
    u = z.reshape(x.shape) * LEVELS - x  # uniform in [0, 1)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01
    assert torch.allclose(logdet, torch.full_like(logdet, -16 * math.log(LEVELS)))


def test_the_inverse_floors_noisy_values_back_to_their_integers() -> None:
    flow = _flow({"type": "gaussian", "sigma": 0.005}).train()
    x = torch.randint(0, LEVELS, (500, 1, 4, 4))
    z, _ = flow(x)
    assert torch.equal(flow.inverse(z), x.double())  # sigma: 0.085 levels, 1/2 is 5.9 sigma


def test_bad_noise_specs_are_located() -> None:
    text = """flowspec: 1
input: {shape: [1, 4, 4]}
preprocess:
  - type: dequantize
    noise: {type: gaussian, sigma: -0.1}
layers: [{type: permute}]
"""
    with pytest.raises(SpecError) as info:
        flowspec.load_spec(text)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.path, diag.location.line) == (
        "bad-value",
        "preprocess.0.noise.sigma",
        5,
    )
    with pytest.raises(SpecError) as info:
        flowspec.load_spec(text.replace("gaussian, sigma: -0.1", "gauss"))
    assert info.value.codes == ["unknown-type"]
    assert "gaussian" in info.value.diagnostics[0].hint
