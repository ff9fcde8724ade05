"""TokenTransformer: cached steps equal the full causal pass, causality, context, and one compiled
graph for every cached step (no graph breaks, no recompilation as the cache fills)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowspec.nn.attention import TokenTransformer

T, D, N = 6, 3, 4
CONTEXTS = [0, 3]  # widths of the context features: none, or (N, 3)


def _net(causal: bool = True, size: int = 0) -> TokenTransformer:
    net = TokenTransformer(
        T,
        D,
        params=2,
        out_width=5,
        width=8,
        depth=2,
        heads=2,
        causal=causal,
        context=size,
    ).double()
    # Wake the zero-initialised output so that every test sees non-trivial values.
    torch.nn.init.normal_(net.proj_out.weight, std=0.5)
    torch.nn.init.normal_(net.proj_out.bias, std=0.5)
    return net


def _context(size: int, n: int = N) -> torch.Tensor | None:
    """Context features (N, size), as a conditional flow hands them to its layers."""
    return torch.randn(n, size, dtype=torch.float64) if size else None


def _dependency(
    net: TokenTransformer, x: torch.Tensor, context: torch.Tensor | None
) -> torch.Tensor:
    """(T_out, T_in): how strongly each output token depends on each input token (one example)."""
    jac = jacobian(lambda v: net(v[None], context)[0], x)  # (P, T, out, T, D)
    return jac.abs().sum(dim=(0, 2, 4))


def test_zero_initialised_output() -> None:
    net = TokenTransformer(T, D, params=3, width=8, heads=2)
    out = net(torch.randn(N, T, D))
    assert out.shape == (N, 3, T, D) and torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("size", CONTEXTS)
def test_cached_steps_equal_full_causal_pass(size: int) -> None:
    net, x = _net(True, size), torch.randn(N, T, D, dtype=torch.float64)
    context = _context(size)
    full = net(x, context)
    cache = net.new_cache(N)
    steps = [net.step(x[:, t : t + 1], cache, context) for t in range(T)]
    assert cache.length == T
    assert (torch.cat(steps, dim=2) - full).abs().max() < 1e-12
    # A shorter full pass is the same as the first positions of a longer one.
    assert (net(x[:, :3], context) - full[:, :, :3]).abs().max() < 1e-12


def test_gradients_through_the_cache_equal_the_full_pass() -> None:
    net, x = _net(True), torch.randn(N, T, D, dtype=torch.float64)
    weights = torch.randn(N, 2, T, 5, dtype=torch.float64)
    full = torch.autograd.grad((net(x) * weights).sum(), list(net.parameters()))
    cache = net.new_cache(N)
    stepped = torch.cat([net.step(x[:, t : t + 1], cache) for t in range(T)], dim=2)
    cached = torch.autograd.grad((stepped * weights).sum(), list(net.parameters()))
    assert max((a - b).abs().max().item() for a, b in zip(full, cached)) < 1e-12


@pytest.mark.parametrize("size", CONTEXTS)
def test_causal_jacobian_is_lower_triangular(size: int) -> None:
    net, x = _net(True, size), torch.randn(T, D, dtype=torch.float64)
    dep = _dependency(net, x, _context(size, 1))
    later = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    assert torch.all(dep[later] == 0)  # token i never sees a token j > i
    assert torch.all(dep[~later] > 1e-6)  # and does see every token j <= i


def test_bidirectional_output_depends_on_every_token() -> None:
    net, x = _net(False), torch.randn(T, D, dtype=torch.float64)
    assert torch.all(_dependency(net, x, None) > 1e-6)


def test_context_changes_every_output() -> None:
    net, x = _net(True, 3), torch.randn(2, T, D, dtype=torch.float64)
    gap = (net(x, _context(3, 2)) - net(x, _context(3, 2))).abs().amax(dim=(1, 3))  # (N, T)
    assert torch.all(gap > 1e-6)


def test_context_errors() -> None:
    x = torch.randn(2, T, D, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"needs context features \(N, 3\)"):
        _net(True, 3)(x)
    with pytest.raises(ValueError, match="without a context"):
        _net(True)(x, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="width >= 0"):
        TokenTransformer(T, D, context=-1)


def test_argument_and_cache_errors() -> None:
    with pytest.raises(ValueError, match="divisible by heads"):
        TokenTransformer(T, D, width=10, heads=4)
    with pytest.raises(ValueError, match="depth must be a positive"):
        TokenTransformer(T, D, depth=0)
    with pytest.raises(ValueError, match="causal"):
        _net(False).new_cache(2)
    net = _net(True)
    with pytest.raises(ValueError, match="T<=6"):
        net(torch.randn(1, T + 1, D, dtype=torch.float64))
    cache = net.new_cache(1)
    with pytest.raises(ValueError, match="one token"):
        net.step(torch.randn(1, 2, D, dtype=torch.float64), cache)
    for _ in range(T):
        net.step(torch.randn(1, 1, D, dtype=torch.float64), cache)
    with pytest.raises(ValueError, match="already holds"):
        net.step(torch.randn(1, 1, D, dtype=torch.float64), cache)


def test_final_norm_and_identity_output() -> None:
    plain = TokenTransformer(T, D, width=8, heads=2)
    vit = TokenTransformer(T, D, width=8, heads=2, final_norm=True)
    assert isinstance(plain.norm_out, torch.nn.Identity)
    assert isinstance(vit.norm_out, torch.nn.LayerNorm)
    assert (
        sum(p.numel() for p in vit.parameters()) - sum(p.numel() for p in plain.parameters())
        == 2 * 8
    )


def test_compile_traces_full_pass_and_steps_without_graph_breaks_or_recompiles() -> None:
    from torch._dynamo.testing import CompileCounter

    net = _net(True, 3).float()
    x, labels = torch.randn(2, T, D), torch.randn(2, 3)
    torch._dynamo.reset()
    full = torch.compile(net, backend="eager", fullgraph=True)(x, labels)
    assert torch.allclose(full, net(x, labels), atol=1e-6)
    explained = torch._dynamo.explain(net.step)(x[:, :1], net.new_cache(2), labels)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(net.step, backend=counter, fullgraph=True)
    with torch.no_grad():  # as in sampling
        for _ in range(2):  # two whole sequences
            cache = net.new_cache(2)
            outs = [step(x[:, t : t + 1], cache, labels) for t in range(T)]
            assert cache.length == T  # the compiled step moved the cache on, as eager does
            assert torch.allclose(torch.cat(outs, dim=2), full, atol=1e-5)
    # One graph serves every position: the cache has a fixed shape and a tensor position.
    assert counter.frame_count == 1, counter.frame_count
