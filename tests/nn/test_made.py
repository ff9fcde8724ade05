"""MADE: the autograd Jacobian has exactly the autoregressive sparsity of the chosen order, and
the torch-free analysis the graph uses (``reach_thresholds``) predicts it exactly, narrow hidden
layers included."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowspec.layers.autoregressive import (
    AutoregressiveSpec,
    hidden_degrees,
    input_degrees,
    reach_thresholds,
    resolve_order,
)
from flowspec.layers.base import InferContext
from flowspec.nn.made import MADE

D = 5
ORDERS = ["natural", "reversed", "random", (3, 0, 4, 1, 2)]
HIDDEN = [(16, 16), (7,), (2, 3), (3, 1), ()]  # wide, wide enough, narrow, very narrow, none


def order_of(order: object, features: int = D, seed: int = 11) -> tuple[int, ...]:
    spec = AutoregressiveSpec(type="autoregressive", order=order, seed=seed)
    return resolve_order(spec, InferContext((features,)))


def expected_allowed(order: tuple[int, ...]) -> torch.Tensor:
    """[i, j]: output i may depend on input j, from the order alone (not from the degrees)."""
    position = {dim: r for r, dim in enumerate(order)}
    n = len(order)
    return torch.tensor([[position[j] < position[i] for j in range(n)] for i in range(n)])


def input_jacobian(made: MADE, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """d out[p, i] / d x[j] for one example: shape (P, D, D)."""
    return jacobian(lambda v: made(v, context), x)[0, :, :, 0, :]


def make(order: object, hidden: tuple[int, ...], context: int, **kwargs: object) -> MADE:
    torch.manual_seed(0)
    return MADE(order_of(order), 3, hidden, context_features=context, **kwargs).double()


@pytest.mark.parametrize("order", ORDERS, ids=str)
@pytest.mark.parametrize("hidden", HIDDEN, ids=str)
@pytest.mark.parametrize("context", [0, 3])
def test_jacobian_sparsity_is_autoregressive_and_predicted_exactly(
    order: object, hidden: tuple[int, ...], context: int
) -> None:
    made = make(order, hidden, context, activation="tanh")
    allowed = expected_allowed(made.order)
    assert torch.equal(made.connectivity(), allowed)
    thresholds, context_reach = reach_thresholds(made.order, hidden, context > 0)
    degrees = torch.tensor(input_degrees(made.order), dtype=torch.float64)
    predicted = torch.tensor(thresholds)[None, :] < degrees[:, None]  # [i, j]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(1, D, generator=g, dtype=torch.float64)
        c = torch.randn(1, context, generator=g, dtype=torch.float64) if context else None
        jac = input_jacobian(made, x, c)
        nonzero = (jac != 0).any(dim=0)
        assert not (nonzero & ~allowed).any()  # never more than the order allows
        assert torch.equal(nonzero, predicted)  # exactly what the graph stage predicts
        if c is not None:
            reached = (jacobian(lambda v, x=x: made(x, v), c)[0, :, :, 0, :] != 0).any(-1).any(0)
            assert torch.equal(reached, context_reach < degrees)
    if all(width >= D for width in hidden):  # every degree present: every allowed pair is used
        assert torch.equal(predicted, allowed)


@pytest.mark.parametrize("order", ORDERS, ids=str)
def test_context_changes_every_output(order: object) -> None:
    made = make(order, (16, 16), 3)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, D, generator=g, dtype=torch.float64)
    c1, c2 = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    assert (made(x, c1) != made(x, c2)).all()


def test_zero_init_gives_zero_outputs_with_or_without_context() -> None:
    for hidden in [(8,), ()]:
        made = make("random", hidden, 2, zero_init=True)
        x, c = torch.randn(6, D, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
        assert torch.equal(made(x, c), torch.zeros(6, 3, D, dtype=torch.float64))


def test_orders_and_degrees() -> None:
    assert make("natural", (8,), 0).degrees == (1, 2, 3, 4, 5)
    assert make("reversed", (8,), 0).order == (4, 3, 2, 1, 0)
    explicit = make((3, 0, 4, 1, 2), (8,), 0)
    assert explicit.order == (3, 0, 4, 1, 2) and explicit.degrees == (2, 4, 5, 1, 3)
    # a hidden layer at least D - 1 wide (D with a context) holds every usable degree
    assert set(hidden_degrees([4, 9], D, False)[0]) == {1, 2, 3, 4}
    assert set(hidden_degrees([5], D, True)[0]) == {0, 1, 2, 3, 4}
    alternating = AutoregressiveSpec(type="autoregressive", order="alternating")
    assert resolve_order(alternating, InferContext((3,), repeat_index=2)) == (0, 1, 2)
    assert resolve_order(alternating, InferContext((3,), repeat_index=3)) == (2, 1, 0)


def test_random_orders_are_reproducible_and_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    orders = [order_of("random", 12, seed) for seed in range(5)]
    assert torch.equal(state, torch.get_rng_state())
    assert orders == [order_of("random", 12, seed) for seed in range(5)]
    assert len(set(orders)) == 5
    assert all(sorted(o) == list(range(12)) for o in orders)


@pytest.mark.parametrize("context", [0, 2])
def test_one_dimension_depends_on_no_input(context: int) -> None:
    torch.manual_seed(0)
    made = MADE((0,), 4, (8, 8), context_features=context, activation="tanh").double()
    x = torch.randn(3, 1, dtype=torch.float64)
    c = torch.randn(3, 2, dtype=torch.float64) if context else None
    assert torch.equal(
        input_jacobian(made, x[:1], c[:1] if context else None), torch.zeros(4, 1, 1)
    )
    assert torch.equal(made(x, c), made(torch.randn(3, 1, dtype=torch.float64), c))
    if context:
        assert (made(x, c) != made(x, c + 1)).all()


def test_masks_stay_out_of_the_state_dict_and_reload_exactly() -> None:
    made = make("random", (8, 8), 2)
    assert not any(key.endswith("mask") for key in made.state_dict())
    twin = make("random", (8, 8), 2)
    torch.nn.init.normal_(twin.layers[0].weight)
    twin.load_state_dict(made.state_dict())
    x, c = torch.randn(3, D, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    assert torch.equal(made(x, c), twin(x, c))
