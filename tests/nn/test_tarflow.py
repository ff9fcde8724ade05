"""TarFlowBlock against float64 oracles: round trips, autograd slogdet, triangular Jacobian, the
output shift (token 0 unchanged) against the learned start token, and the torch-free mixing
rule against the autograd Jacobian's sparsity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import jacobian

from flowspec.layers.tarflow import triangular_mix
from flowspec.nn.tarflow import INV_SOFTPLUS_1, LOG_SCALES, TarFlowBlock, log_softplus

T, D, N = 4, 3, 3
KINDS = sorted(LOG_SCALES)
STARTS = ("shift", "learned")
CONTEXTS = [0, 3]  # widths of the context features: none, or (N, 3)


def _block(
    kind: str = "none",
    reverse: bool = False,
    size: int = 0,
    start: str = "shift",
    clip: float | None = 1.5,
) -> TarFlowBlock:
    block = TarFlowBlock(
        T,
        D,
        width=8,
        depth=2,
        heads=2,
        log_scale=kind,
        clip=clip,
        reverse=reverse,
        start=start,
        context=size,
    ).double()
    torch.nn.init.normal_(block.net.proj_out.weight, std=0.5)
    torch.nn.init.normal_(block.net.proj_out.bias, std=0.5)
    return block


def _context(size: int, n: int = N) -> torch.Tensor | None:
    """Context features (N, size), as a conditional flow hands them to its layers."""
    return torch.randn(n, size, dtype=torch.float64) if size else None


def _jacobians(block: TarFlowBlock, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """Per-example (T*D, T*D) Jacobians of z w.r.t. x by autograd."""
    out = []
    for i in range(x.shape[0]):
        c = None if context is None else context[i : i + 1]
        jac = jacobian(lambda v, c=c: block(v[None], c)[0][0], x[i])
        out.append(jac.reshape(T * D, T * D))
    return torch.stack(out)


CASES = [
    pytest.param(
        kind, reverse, size, start, id=f"{kind}-{'rev' if reverse else 'fwd'}-{size}-{start}"
    )
    for kind in KINDS
    for reverse in (False, True)
    for size in CONTEXTS
    for start in STARTS
]
ARGS = ("kind", "reverse", "size", "start")


@pytest.mark.parametrize(ARGS, CASES)
def test_round_trips(kind: str, reverse: bool, size: int, start: str) -> None:
    block = _block(kind, reverse, size, start)
    x = torch.randn(N, T, D, dtype=torch.float64)
    context = _context(size)
    z, _ = block(x, context)
    assert (block.inverse(z, context) - x).abs().max() < 1e-10
    assert (block.inverse_recompute(z, context) - x).abs().max() < 1e-10
    latent = torch.randn(N, T, D, dtype=torch.float64)
    assert (block(block.inverse(latent, context), context)[0] - latent).abs().max() < 1e-10


@pytest.mark.parametrize(ARGS, CASES)
def test_logdet_matches_autograd_slogdet(kind: str, reverse: bool, size: int, start: str) -> None:
    block = _block(kind, reverse, size, start)
    x = torch.randn(N, T, D, dtype=torch.float64)
    context = _context(size)
    _, logdet = block(x, context)
    sign, expected = torch.linalg.slogdet(_jacobians(block, x, context))
    assert logdet.shape == (N,)
    assert torch.all(sign > 0)  # the diagonal is exp(-a) > 0
    assert (logdet - expected).abs().max() < 1e-10
    assert (logdet.abs() > 1e-3).all()  # a non-trivial case: the woken block is no identity


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("reverse", [False, True])
def test_jacobian_is_block_triangular_with_diagonal_blocks(reverse: bool, start: str) -> None:
    block = _block("softplus", reverse, start=start)
    x = torch.randn(1, T, D, dtype=torch.float64)
    jac = _jacobians(block, x, None)[0].reshape(T, D, T, D)
    blocks = jac.abs().sum(dim=(1, 3))  # (z token, x token)
    later = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    upstream = later.T if reverse else later  # reversed blocks run from the last token
    assert torch.all(blocks[upstream] == 0)
    assert torch.all(blocks[~upstream & ~torch.eye(T, dtype=torch.bool)] > 1e-6)
    for i in range(T):
        diag = jac[i, :, i, :]
        assert torch.equal(diag, torch.diag(torch.diagonal(diag)))  # elementwise within a token
        assert torch.all(torch.diagonal(diag) > 0)
    first = T - 1 if reverse else 0  # the token the autoregression starts with
    identity = torch.allclose(jac[first, :, first, :], torch.eye(D, dtype=torch.float64))
    assert identity == (start == "shift")  # TarFlow's output shift leaves it unchanged
    # The torch-free mixing rule of the graph stage is exactly this sparsity pattern.
    deps = np.array([[1 << k] for k in range(T * D)], dtype=np.uint64)  # one bit per input
    (mixed,) = triangular_mix({"reverse": reverse}, (T, D), deps)
    analysed = torch.tensor([[(int(row[0]) >> k) & 1 for k in range(T * D)] for row in mixed])
    assert torch.equal(analysed.bool(), (jac.reshape(T * D, T * D).abs() > 0))


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("size", CONTEXTS)
def test_cached_inverse_equals_recompute_inverse(size: int, start: str) -> None:
    block = _block("softplus", False, size, start)
    z = torch.randn(N, T, D, dtype=torch.float64)
    context = _context(size)
    assert (block.inverse(z, context) - block.inverse_recompute(z, context)).abs().max() < 1e-12


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("kind", KINDS)
def test_fresh_block_is_the_identity(kind: str, start: str) -> None:
    block = TarFlowBlock(T, D, width=8, heads=2, log_scale=kind, start=start, context=2)
    x, context = torch.randn(N, T, D), torch.randn(N, 2)
    z, logdet = block(x, context)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(N))
    assert torch.equal(block.inverse(x, context), x)


@pytest.mark.parametrize("start", STARTS)
def test_context_changes_every_transformed_token(start: str) -> None:
    block = _block("none", False, 3, start)
    x = torch.randn(2, T, D, dtype=torch.float64)
    gap = (block(x, _context(3, 2))[0] - block(x, _context(3, 2))[0]).abs()
    changed = gap.amax(dim=2) > 1e-6
    assert torch.all(changed[:, 1:]) and bool(changed[:, 0].all()) == (start == "learned")


@pytest.mark.parametrize("start", STARTS)
def test_gradients_reach_every_parameter(start: str) -> None:
    block = _block("softplus", False, 3, start)
    z, logdet = block(torch.randn(N, T, D, dtype=torch.float64), _context(3))
    (z.square().sum() - logdet.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


def test_log_scale_table_and_soft_clip_formulas() -> None:
    r = torch.linspace(-8, 8, 101, dtype=torch.float64)
    for kind in KINDS:
        assert LOG_SCALES[kind](torch.zeros(3, dtype=torch.float64)).abs().max() == 0
    assert torch.equal(LOG_SCALES["none"](r), r)
    # STARFlow's scale: sigma = softplus(r + log(e - 1)), so exp(a) is exactly that sigma.
    sigma = F.softplus(r + math.log(math.e - 1))
    assert torch.allclose(LOG_SCALES["softplus"](r).exp(), sigma, rtol=1e-14)
    assert abs(F.softplus(torch.tensor(INV_SOFTPLUS_1, dtype=torch.float64)).item() - 1) < 1e-15
    # clip: STARFlow's soft_clip c * tanh(out / c) on both outputs, so |a| < c and |b| < c.
    out = 10 * torch.randn(2, 2, T - 1, D, dtype=torch.float64)
    shift, log_scale = _block(clip=1.5)._shift_and_log_scale(out)
    assert torch.allclose(shift, 1.5 * torch.tanh(out[:, 0] / 1.5))
    assert torch.allclose(log_scale, 1.5 * torch.tanh(out[:, 1] / 1.5))
    assert log_scale.abs().max() < 1.5 and shift.abs().max() < 1.5


def test_log_softplus_is_finite_and_accurate_in_the_tails() -> None:
    u = torch.tensor([-1000.0, -100.0, -31.0, -29.0, 0.0, 50.0, 1e6], dtype=torch.float64)
    u.requires_grad_(True)
    out = log_softplus(u)
    exact = [-1000.0, -100.0, -31.0, math.log(math.log1p(math.exp(-29.0)))]
    exact += [math.log(math.log(2.0)), math.log(50.0), math.log(1e6)]
    assert torch.allclose(out.detach(), torch.tensor(exact, dtype=torch.float64), rtol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), u)
    assert torch.all(torch.isfinite(grad))


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="unknown log_scale"):
        TarFlowBlock(T, D, log_scale="tanh")
    with pytest.raises(ValueError, match="clip"):
        TarFlowBlock(T, D, clip=0.0)
    with pytest.raises(ValueError, match="unknown start"):
        TarFlowBlock(T, D, start="sos")
    with pytest.raises(ValueError, match="at least 2 tokens"):
        TarFlowBlock(1, D)
    with pytest.raises(ValueError, match=r"\(N, 4, 3\)"):
        TarFlowBlock(T, D, width=8, heads=2)(torch.randn(2, T, D + 1))


def test_forward_and_cached_sampler_trace_without_graph_breaks() -> None:
    block = _block("softplus", True, 3, "learned").float()
    x, context = torch.randn(2, T, D), torch.randn(2, 3)
    torch._dynamo.reset()
    for fn, arg in ((block, x), (block.inverse, x)):
        explained = torch._dynamo.explain(fn)(arg, context)
        assert explained.graph_break_count == 0 and explained.graph_count == 1
    with torch.no_grad():
        compiled = torch.compile(block.inverse, backend="eager", fullgraph=True)
        assert torch.allclose(compiled(x, context), block.inverse(x, context), atol=1e-5)
