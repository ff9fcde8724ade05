"""Rational-quadratic spline: identity at zero, exact inverse, finite everywhere, true log-dets;
and the ``spline`` row of the transform table that couplings and autoregressive layers use."""

from __future__ import annotations

import pytest
import torch

from flowspec.nn.spline import RQKnots, rq_knots, rq_spline, rq_spline_from_knots, spline_params
from flowspec.nn.transforms import Spline

BOUND = 3.0
BINS = 6
P = spline_params(BINS)
DTYPES = [torch.float32, torch.float64]
# Round-trip tolerance in x for moderate parameters, by dtype.
ROUND_TRIP = {torch.float32: 2e-5, torch.float64: 1e-12}
LOGDET = {torch.float32: 1e-3, torch.float64: 1e-11}


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def awkward_inputs(params: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per element of a (M, P) parameter batch: knots, +-B, near and far tails, random values."""
    knots = rq_knots(params, BOUND)
    m = params.shape[0]
    g = generator(1)
    columns = [
        knots.x,  # every knot, ends included
        torch.full((m, 2), BOUND, dtype=dtype) * torch.tensor([-1.0, 1.0], dtype=dtype),
        torch.tensor([-1e6, 1e6, -BOUND - 1e-3, BOUND + 1e-3], dtype=dtype).expand(m, 4),
        (torch.rand(m, 8, generator=g, dtype=dtype) * 2 - 1) * BOUND,
        torch.randn(m, 4, generator=g, dtype=dtype) * 3 * BOUND,
    ]
    return torch.cat(columns, dim=1)


def expand(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Parameters (M, P) -> (M, C, P) for inputs (M, C)."""
    return params[:, None, :].expand(*x.shape, params.shape[-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_parameters_give_the_identity(dtype: torch.dtype) -> None:
    x = torch.linspace(-2 * BOUND, 2 * BOUND, 241, dtype=dtype)
    x = torch.cat([x, torch.tensor([-BOUND, BOUND, 0.0, 1e6], dtype=dtype)])
    params = torch.zeros(*x.shape, P, dtype=dtype)
    knots = rq_knots(params, BOUND)
    equal = torch.linspace(-BOUND, BOUND, BINS + 1, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(knots.x, equal.expand_as(knots.x), atol=tol, rtol=0)
    torch.testing.assert_close(knots.d, torch.ones_like(knots.d), atol=tol, rtol=0)
    for inverse in (False, True):
        y, logabsdet = rq_spline(x, params, BOUND, inverse)
        torch.testing.assert_close(y, x, atol=tol, rtol=0)
        assert logabsdet.abs().max() <= tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_on_knots_bounds_and_tails(dtype: torch.dtype) -> None:
    params = torch.randn(64, P, generator=generator(), dtype=dtype)
    x = awkward_inputs(params, dtype)
    p = expand(params, x)
    y, forward_lad = rq_spline(x, p, BOUND)
    back, inverse_lad = rq_spline(y, p, BOUND, inverse=True)
    # float32 cannot resolve x where the map is flat: there the error counts in units of y
    units = forward_lad.exp().clamp(max=1) if dtype == torch.float32 else 1
    assert ((back - x).abs() * units).max() <= ROUND_TRIP[dtype]
    torch.testing.assert_close(inverse_lad, -forward_lad, atol=LOGDET[dtype], rtol=0)
    # and the other way round, starting from latent values
    again, _ = rq_spline(rq_spline(x, p, BOUND, inverse=True)[0], p, BOUND)
    torch.testing.assert_close(again, x, atol=ROUND_TRIP[dtype], rtol=0)
    tails = x.abs() > BOUND
    assert torch.equal(y[tails], x[tails]) and torch.equal(back[tails], x[tails])


def test_round_trip_is_backward_stable_for_wild_parameters() -> None:
    """With steep and flat bins the inverse is ill-conditioned; its error in y stays at rounding."""
    params = 4 * torch.randn(20000, P, generator=generator(2), dtype=torch.float64)
    x = (torch.rand(20000, generator=generator(3), dtype=torch.float64) * 2 - 1) * BOUND
    y, logabsdet = rq_spline(x, params, BOUND)
    back, _ = rq_spline(y, params, BOUND, inverse=True)
    assert ((back - x).abs() * logabsdet.exp()).max() < 1e-13
    assert logabsdet.min() < -10  # the case is genuinely ill-conditioned somewhere


def test_all_tail_batches() -> None:
    x = torch.tensor([[-1e6, -4.0, BOUND + 1e-9, 7.5]], dtype=torch.float64).requires_grad_()
    params = torch.randn(1, 4, P, generator=generator(), dtype=torch.float64).requires_grad_()
    for inverse in (False, True):
        y, logabsdet = rq_spline(x, params, BOUND, inverse)
        assert torch.equal(y, x.detach()) and torch.equal(logabsdet, torch.zeros_like(x))
        grad_x, grad_p = torch.autograd.grad((y + logabsdet).sum(), [x, params])
        assert torch.equal(grad_x, torch.ones_like(x)) and torch.equal(
            grad_p, torch.zeros_like(params)
        )


def extreme_parameters(dtype: torch.dtype) -> torch.Tensor:
    signs = torch.randint(0, 2, (8, P), generator=generator(4)).to(dtype) * 2 - 1
    rows = [torch.full((1, P), 1e4), torch.full((1, P), -1e4), 1e4 * signs]
    alternating = 1e4 * (-1.0) ** torch.arange(P, dtype=dtype)
    return torch.cat([*(r.to(dtype) for r in rows), alternating[None]], dim=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inverse", [False, True])
def test_extreme_parameters_give_finite_values_and_gradients(
    dtype: torch.dtype, inverse: bool
) -> None:
    params = extreme_parameters(dtype)
    x = awkward_inputs(params, dtype).requires_grad_()
    p = expand(params, x).detach().requires_grad_()
    y, logabsdet = rq_spline(x, p, BOUND, inverse)
    assert torch.isfinite(y).all() and torch.isfinite(logabsdet).all()
    grad_x, grad_p = torch.autograd.grad((y.square() + logabsdet).sum(), [x, p])
    assert torch.isfinite(grad_x).all() and torch.isfinite(grad_p).all()
    # still a bijection: mapping back lands on the input in the output's units
    back, _ = rq_spline(y.detach(), p.detach(), BOUND, not inverse)
    scale = 1e-5 if dtype == torch.float32 else 1e-9
    assert ((back - x.detach()).abs() * torch.exp(logabsdet.detach())).max() < scale * BOUND


def test_logabsdet_matches_autograd_and_the_map_increases() -> None:
    params = torch.randn(8, 1, P, generator=generator(5), dtype=torch.float64)
    x = torch.linspace(-1.5 * BOUND, 1.5 * BOUND, 2001, dtype=torch.float64).expand(8, -1)
    for inverse in (False, True):
        v = x.clone().requires_grad_()
        y, logabsdet = rq_spline(v, params.expand(8, 2001, P), BOUND, inverse)
        (slope,) = torch.autograd.grad(y.sum(), v)
        torch.testing.assert_close(torch.log(slope), logabsdet, atol=1e-12, rtol=1e-12)
        assert (y[:, 1:] > y[:, :-1]).all()


def test_gradcheck_against_finite_differences() -> None:
    params = torch.randn(3, 5, P, generator=generator(6), dtype=torch.float64).requires_grad_()
    x = torch.tensor([[-3.5, -2.2, 0.1, 1.7, 2.9]] * 3, dtype=torch.float64).requires_grad_()
    for inverse in (False, True):
        assert torch.autograd.gradcheck(
            lambda a, b, i=inverse: rq_spline(a, b, BOUND, i), (x, params)
        )


def test_inverse_logabsdet_is_minus_forward_at_the_image() -> None:
    params = torch.randn(500, P, generator=generator(7), dtype=torch.float64)
    x = torch.randn(500, generator=generator(8), dtype=torch.float64) * BOUND
    y, forward_lad = rq_spline(x, params, BOUND)
    _, inverse_lad = rq_spline(y, params, BOUND, inverse=True)
    torch.testing.assert_close(inverse_lad, -forward_lad, atol=1e-12, rtol=0)


def test_the_spline_interpolates_its_knots_with_their_slopes() -> None:
    params = torch.randn(50, P, generator=generator(9), dtype=torch.float64)
    knots = rq_knots(params, BOUND)
    p = expand(params, knots.x)
    x = knots.x.clone().requires_grad_()  # ends included: exactly -B and B
    y, logabsdet = rq_spline(x, p, BOUND)
    (slope,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y, knots.y, atol=1e-12, rtol=0)
    torch.testing.assert_close(logabsdet.exp(), knots.d, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(slope, knots.d, atol=1e-12, rtol=1e-12)
    back, _ = rq_spline(knots.y, p, BOUND, inverse=True)
    torch.testing.assert_close(back, knots.x, atol=1e-12, rtol=0)


def test_inverse_agrees_with_bisection() -> None:
    params = torch.randn(300, P, generator=generator(10), dtype=torch.float64)
    y = (torch.rand(300, generator=generator(11), dtype=torch.float64) * 2 - 1) * BOUND
    lo, hi = torch.full_like(y, -BOUND), torch.full_like(y, BOUND)
    for _ in range(80):
        mid = (lo + hi) / 2
        below = rq_spline(mid, params, BOUND)[0] < y
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    closed_form, _ = rq_spline(y, params, BOUND, inverse=True)
    torch.testing.assert_close(closed_form, (lo + hi) / 2, atol=1e-12, rtol=0)


def test_a_hand_computed_bin() -> None:
    """Bin [0, 1] -> [0, 1], s = 1, knot slopes 1/2, 2: y = (x^2 + x(1-x)/2) / (1 + x(1-x)/2)."""
    knots = RQKnots(
        torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64),
        torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64),
        torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64),
    )
    x = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    mixed = x * (1 - x)
    expected = (x.square() + 0.5 * mixed) / (1 + 0.5 * mixed)
    y, _ = rq_spline_from_knots(x, knots)
    torch.testing.assert_close(y, expected, atol=1e-15, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuous_with_the_tails_at_the_bound(dtype: torch.dtype) -> None:
    eps = 1e-9 if dtype == torch.float64 else 1e-4
    params = torch.randn(100, 1, P, generator=generator(12), dtype=torch.float64).to(dtype)
    for edge in (-BOUND, BOUND):
        x = torch.tensor([edge - eps, edge, edge + eps], dtype=dtype).expand(100, 3)
        y, logabsdet = rq_spline(x, params.expand(100, 3, P), BOUND)
        rounding = 8 * BOUND * torch.finfo(dtype).eps
        assert (y[:, 2] - y[:, 0] - 2 * eps).abs().max() < 10 * eps**2 + rounding
        assert torch.equal(y[:, 1], x[:, 1])
        assert logabsdet.abs().max() < 1e3 * eps  # slope 1 on both sides: C1 at +-B


def test_transform_row_on_image_shaped_input() -> None:
    """The table row takes P tensors shaped like x (what a conditioner returns)."""
    spline = Spline(bins=5, bound=2.0)
    assert spline.n_params == 14
    x = torch.randn(3, 2, 4, 4, generator=generator(13), dtype=torch.float64) * 2
    stacked = torch.randn(3, 14, 2, 4, 4, generator=generator(14), dtype=torch.float64)
    params = tuple(stacked.unbind(1))
    y, logabsdet = spline.forward(None, x, params)
    assert y.shape == logabsdet.shape == x.shape
    torch.testing.assert_close(spline.inverse(None, y, params), x, atol=1e-12, rtol=0)
    back, inverse_lad = spline.inverse_and_logabsdet(None, y, params)
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(inverse_lad, -logabsdet, atol=1e-12, rtol=0)
    # the element (n, c, h, w) uses params[k][n, c, h, w] for k = 0..13
    single, _ = rq_spline(x[1, 0, 2, 3], stacked[1, :, 0, 2, 3], 2.0)
    torch.testing.assert_close(y[1, 0, 2, 3], single, atol=0, rtol=0)
    zero, zero_lad = spline.forward(None, x, tuple(torch.zeros_like(p) for p in params))
    torch.testing.assert_close(zero, x, atol=1e-12, rtol=0)
    assert zero_lad.abs().max() < 1e-12
    with pytest.raises(ValueError, match="3K - 1"):
        spline.forward(None, x, params[:13])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bins": 0}, "bins must be"),
        ({"bound": 0.0}, "bound must be"),
        ({"bins": 4, "min_bin_width": 0.25}, "min_bin_width"),
        ({"min_bin_height": 0.0}, "min_bin_height"),
        ({"min_derivative": 1.0}, "min_derivative"),
    ],
)
def test_bad_settings_are_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Spline(**{"bins": 8, "bound": 3.0, **kwargs})


def test_bad_parameter_shapes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="3K - 1"):
        rq_spline(torch.zeros(4), torch.zeros(4, 6))
    with pytest.raises(ValueError, match="do not fit"):
        rq_spline(torch.zeros(4), torch.zeros(5, 8))
