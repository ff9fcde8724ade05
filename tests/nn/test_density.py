"""Densities integrate to one (quadrature), and base distributions match torch.distributions."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

import flowspec
from flowspec.nn.oracles import perturb_parameters
from tests.catalogue import MLP
from tests.helpers import example_spec


def _grid_2d(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), float(axis[1] - axis[0]) ** 2


def test_1d_flow_density_integrates_to_one() -> None:
    """logit -> actnorm -> scale on (0, 1) with a bimodal base: nonlinear in x.

    alpha = 0 makes the logit a bijection of (0, 1) onto R; with alpha > 0 the image is a
    bounded interval and the density on (0, 1) integrates to the base mass of that interval.
    """
    spec = example_spec(
        [1],
        [{"type": "logit", "alpha": 0.0}, {"type": "actnorm"}, {"type": "scale"}],
        base={"type": "mixture", "components": 2},
    )
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.5, seed=0)
    with torch.no_grad():  # overall slope > 1 in logit space: the density vanishes at 0 and 1
        flow.layers["1"].log_scale.fill_(1.0)
    flow.eval()
    x = torch.linspace(0, 1, 200_001, dtype=torch.float64)[1:-1, None]
    with torch.no_grad():
        density = flow.log_prob(x).exp()
    integral = torch.trapezoid(density, x[:, 0])
    assert abs(float(integral) - 1.0) < 1e-4


@pytest.mark.parametrize("kind", ["affine_coupling", "additive_coupling"])
@pytest.mark.parametrize("base", [{"type": "normal"}, {"type": "mixture", "components": 3}])
def test_2d_flow_density_integrates_to_one(kind: str, base: dict) -> None:
    layers = [
        {"repeat": 4, "body": [{"type": kind, "mask": "alternating", "net": MLP}]},
        {"type": "actnorm"},
    ]
    flow = flowspec.compile(example_spec([2], layers, base=base)).double()
    with torch.no_grad():
        flow(torch.randn(256, 2, dtype=torch.float64) * 0.7 + 0.3)
    perturb_parameters(flow, scale=0.3, seed=1)
    points, cell = _grid_2d(-12, 12, 801)
    with torch.no_grad():
        density = torch.cat([flow.log_prob(chunk).exp() for chunk in points.split(100_000)])
    assert abs(float(density.sum()) * cell - 1.0) < 2e-3


def test_log_prob_is_change_of_variables() -> None:
    """Notes eq. (7): log p(x) = log p_Z(f(x)) + log|det J_f(x)|, base N(0, I)."""
    flow = perturb_parameters(flowspec.compile("specs/realnvp_moons.yaml").double(), 0.2, 2)
    x = torch.randn(16, 2, dtype=torch.float64)
    with torch.no_grad():
        z, logdet = flow(x)
        expected = D.Normal(0.0, 1.0).log_prob(z).sum(1) + logdet
        assert torch.allclose(flow.log_prob(x), expected, atol=1e-12)
        assert torch.allclose(flow.bits_per_dim(x), -expected / (2 * torch.log(torch.tensor(2.0))))


def test_base_distributions_match_torch_distributions() -> None:
    z = torch.randn(32, 3, dtype=torch.float64)
    for base in ({"type": "normal"}, {"type": "diag_normal"}, {"type": "mixture", "components": 4}):
        flow = flowspec.compile(example_spec([3], [{"type": "scale"}], base=base)).double()
        perturb_parameters(flow, 0.5, seed=3)
        b = flow.base
        if base["type"] == "normal":
            oracle = D.Independent(D.Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1)
        elif base["type"] == "diag_normal":
            oracle = D.Independent(D.Normal(b.loc, b.log_scale.exp()), 1)
        else:
            comp = D.Independent(D.Normal(b.loc, b.log_scale.exp()), 1)
            oracle = D.MixtureSameFamily(D.Categorical(logits=b.logits), comp)
        with torch.no_grad():
            assert torch.allclose(b.log_prob(z), oracle.log_prob(z), atol=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_sample_temperature_scales_the_base(temperature: float) -> None:
    flow = flowspec.compile(example_spec([2], [{"type": "scale"}]))
    torch.manual_seed(0)
    with torch.no_grad():
        x = flow.sample(20_000, temperature=temperature)
    assert x.shape == (20_000, 2)
    assert torch.allclose(x.std(0), torch.full((2,), temperature), atol=0.03)
