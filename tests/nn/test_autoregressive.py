"""MAF / IAF: exact D-pass inverses, log-dets against slogdet, triangular Jacobians in the order,
one pass in the cheap direction and D in the other."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.autograd.functional import jacobian

from flowspec.nn.autoregressive import Autoregressive
from flowspec.nn.made import MADE
from flowspec.nn.transforms import Affine, Spline

D = 4
CONTEXT = 2
TRANSFORMS = {"affine": lambda: Affine("none"), "spline": lambda: Spline(bins=5, bound=3.0)}
ORDERS = {
    "natural": (0, 1, 2, 3),
    "reversed": (3, 2, 1, 0),
    "shuffled": (2, 0, 3, 1),
}


def layer(
    transform: str,
    direction: str,
    order: tuple[int, ...] = (2, 0, 3, 1),
    context: int = CONTEXT,
    **kw: object,
) -> Autoregressive:
    torch.manual_seed(0)
    t = TRANSFORMS[transform]()
    made = MADE(order, t.n_params, (16, 16), context_features=context, **kw)
    return Autoregressive(made, t, direction).double()


def data(n: int, context: int = CONTEXT, seed: int = 1) -> tuple[Tensor, Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(n, D, generator=g, dtype=torch.float64)  # some beyond the spline's bound
    c = torch.randn(n, context, generator=g, dtype=torch.float64) if context else None
    return x, c


def example_jacobian(fn: Callable, x: Tensor, c: Tensor | None) -> Tensor:
    """(D, D) Jacobian of fn on one example, at fixed context."""
    return jacobian(lambda v: fn(v[None], None if c is None else c[None]), x)


def cases() -> list:
    return [
        pytest.param(t, d, o, c, id=f"{t}-{d}-{o}-ctx{c}")
        for t in TRANSFORMS
        for d in ("maf", "iaf")
        for o in ORDERS
        for c in (0, CONTEXT)
    ]


@pytest.mark.parametrize(("transform", "direction", "order", "context"), cases())
def test_round_trip_logdet_and_triangular_jacobian(
    transform: str, direction: str, order: str, context: int
) -> None:
    flow = layer(transform, direction, ORDERS[order], context)
    x, c = data(32, context)
    y, logdet = flow(x, c)
    assert y.shape == x.shape and logdet.shape == (32,)
    assert (y - x).abs().max() > 1e-2  # not the identity
    torch.testing.assert_close(flow.inverse(y, c), x, atol=1e-12, rtol=0)
    again, _ = flow(flow.inverse(x, c), c)  # starting from the latent side
    torch.testing.assert_close(again, x, atol=1e-12, rtol=0)
    back, inverse_logdet = flow.inverse_and_logdet(y, c)
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(inverse_logdet, -logdet, atol=1e-12, rtol=0)

    rank = torch.empty(D, dtype=torch.long)
    rank[torch.tensor(flow.order)] = torch.arange(D)
    later = rank[None, :] > rank[:, None]  # [i, j]: j comes after i in the order
    for n in range(3):
        cn = None if c is None else c[n]
        forward_jac = example_jacobian(lambda v, k: flow(v, k)[0][0], x[n], cn)
        inverse_jac = example_jacobian(lambda v, k: flow.inverse(v, k)[0], y[n], cn)
        sign, expected = torch.linalg.slogdet(forward_jac)
        assert sign != 0
        torch.testing.assert_close(logdet[n], expected, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(
            torch.linalg.slogdet(inverse_jac)[1], -logdet[n], atol=1e-12, rtol=1e-12
        )
        for jac in (forward_jac, inverse_jac):
            assert torch.equal(jac[later], torch.zeros_like(jac[later]))
            assert (torch.diagonal(jac) > 0).all()  # monotone in each own element


def count_made_calls(flow: Autoregressive, fn: Callable, *args: object) -> int:
    calls = []
    handle = flow.made.register_forward_hook(lambda *_: calls.append(1))
    fn(*args)
    handle.remove()
    return len(calls)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_one_pass_and_d_pass_directions_are_each_others_inverse(transform: str) -> None:
    maf = layer(transform, "maf")
    iaf = Autoregressive(maf.made, maf.transform, "iaf")  # the same weights
    x, c = data(16)
    y, maf_logdet = maf(x, c)
    assert torch.equal(iaf.inverse(x, c), y)  # both are the one-pass map g
    back, iaf_logdet = iaf(y, c)  # the D-pass map g^-1
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(iaf_logdet, -maf_logdet, atol=1e-12, rtol=0)
    assert torch.equal(maf.inverse(y, c), back)
    passes = {
        "maf forward": count_made_calls(maf, maf, x, c),
        "maf inverse": count_made_calls(maf, maf.inverse, y, c),
        "iaf forward": count_made_calls(iaf, iaf, y, c),
        "iaf inverse": count_made_calls(iaf, iaf.inverse, x, c),
        "iaf inverse with logdet": count_made_calls(iaf, iaf.inverse_and_logdet, x, c),
    }
    assert passes == {
        "maf forward": 1,
        "maf inverse": D,
        "iaf forward": D,
        "iaf inverse": 1,
        "iaf inverse with logdet": 1,
    }


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("direction", ["maf", "iaf"])
def test_zero_initialised_made_makes_the_identity(transform: str, direction: str) -> None:
    flow = layer(transform, direction, zero_init=True)
    x, c = data(8)
    y, logdet = flow(x, c)
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)
    assert logdet.abs().max() < 1e-12


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("direction", ["maf", "iaf"])
def test_context_matters_and_gradients_reach_every_parameter(
    transform: str, direction: str
) -> None:
    flow = layer(transform, direction)
    x, c = data(16)
    y, logdet = flow(x, c)
    assert (flow(x, c + 1)[0] != y).any(dim=1).all()
    loss = (0.5 * y.square().sum(1) - logdet).mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("direction", ["maf", "iaf"])
def test_one_element(direction: str) -> None:
    torch.manual_seed(0)
    spline = Spline(bins=4, bound=3.0)
    flow = Autoregressive(MADE((0,), spline.n_params, (8,)), spline, direction).double()
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)[:, None]
    y, logdet = flow(x)
    torch.testing.assert_close(flow.inverse(y), x, atol=1e-12, rtol=0)
    assert (y[1:] > y[:-1]).all() and logdet.shape == (9,)


def test_bad_arguments_are_value_errors() -> None:
    spline = Spline(bins=4, bound=3.0)
    made = MADE((0, 1, 2), spline.n_params, (8,))
    with pytest.raises(ValueError, match="unknown direction"):
        Autoregressive(made, spline, "sideways")
    with pytest.raises(ValueError, match="takes 2 parameters per element"):
        Autoregressive(made, Affine("none"), "maf")
