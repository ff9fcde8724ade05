"""patchify, unpatchify and Patchify: exact inverses that only move values, in documented order
(the unfold order), and the torch-free mixing rule agrees with the runtime map."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian

from flowspec.layers.patchify import patch_source
from flowspec.nn.patchify import Patchify, patchify, unpatchify

SHAPES = [((2, 1, 4, 4), 2), ((3, 3, 8, 4), 4), ((1, 2, 6, 9), 3), ((2, 5, 3, 3), 1)]


@pytest.mark.parametrize(("shape", "p"), SHAPES)
def test_round_trip_is_exact(shape: tuple[int, ...], p: int) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    tokens = patchify(x, p)
    n, c, h, w = shape
    assert tokens.shape == (n, (h // p) * (w // p), c * p * p)
    assert torch.equal(unpatchify(tokens, p, (h, w)), x)
    assert torch.equal(patchify(unpatchify(tokens, p, (h, w)), p), tokens)


@pytest.mark.parametrize(("shape", "p"), SHAPES)
def test_values_are_only_permuted(shape: tuple[int, ...], p: int) -> None:
    n = 1
    for s in shape:
        n *= s
    x = torch.arange(n, dtype=torch.float64).reshape(shape)  # all values distinct
    tokens = patchify(x, p)
    assert torch.equal(tokens.flatten().sort().values, x.flatten())


@pytest.mark.parametrize(("shape", "p"), SHAPES)
def test_order_is_unfold_order(shape: tuple[int, ...], p: int) -> None:
    # torch's unfold is an independent implementation of the documented order.
    x = torch.randn(shape)
    assert torch.equal(patchify(x, p), F.unfold(x, p, stride=p).transpose(1, 2))


def test_documented_index_formula() -> None:
    c, h, w, p = 2, 4, 6, 2
    x = torch.randn(1, c, h, w)
    tokens = patchify(x, p)
    for r in range(h // p):
        for col in range(w // p):
            for ch in range(c):
                for i in range(p):
                    for j in range(p):
                        t, d = r * (w // p) + col, ch * p * p + i * p + j
                        assert tokens[0, t, d] == x[0, ch, r * p + i, col * p + j]


@pytest.mark.parametrize("size", [(5, 4), (4, 6), (7, 7)])
def test_sizes_not_divisible_raise(size: tuple[int, int]) -> None:
    x = torch.zeros(1, 1, *size)
    with pytest.raises(ValueError, match="not divisible"):
        patchify(x, 4)
    with pytest.raises(ValueError, match="not divisible"):
        unpatchify(torch.zeros(1, 1, 16), 4, size)
    with pytest.raises(ValueError, match="not divisible"):
        Patchify((1, *size), 4)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        patchify(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        patchify(torch.zeros(4, 4), 2)
    with pytest.raises(ValueError, match="do not tile"):
        unpatchify(torch.zeros(1, 3, 4), 2, (4, 4))


def test_bijection_logdet_is_zero_and_jacobian_a_permutation() -> None:
    layer = Patchify((2, 4, 4), 2)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    tokens, logdet = layer(x)
    assert logdet.shape == (3,) and logdet.dtype == torch.float64
    assert torch.equal(logdet, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(layer.inverse(tokens), x)
    jac = jacobian(lambda v: layer(v[None])[0].flatten(), x[0]).reshape(32, 32)
    assert torch.equal(jac.sum(0), torch.ones(32, dtype=torch.float64))
    assert torch.equal(jac.sum(1), torch.ones(32, dtype=torch.float64))
    assert torch.linalg.slogdet(jac).logabsdet.abs().item() == 0.0


@pytest.mark.parametrize(("shape", "p"), [((1, 4, 4), 2), ((2, 6, 3), 3), ((3, 8, 8), 4)])
def test_torch_free_index_rule_is_the_runtime_map(shape: tuple[int, ...], p: int) -> None:
    """``patch_source`` (used by the mixing analysis, no torch) says where every value goes."""
    n = math.prod(shape)
    tokens = patchify(torch.arange(n, dtype=torch.float64).reshape(1, *shape), p).flatten()
    assert tokens.tolist() == [float(patch_source(k, shape, p)) for k in range(n)]


def test_vectors_become_one_dimensional_token_sequences() -> None:
    layer = Patchify((6,), 2)
    x = torch.arange(12.0).reshape(2, 6)
    tokens, logdet = layer(x)
    assert tokens[0].tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert torch.equal(layer.inverse(tokens), x) and torch.equal(logdet, torch.zeros(2))
    with pytest.raises(ValueError, match="not divisible"):
        Patchify((7,), 2)
