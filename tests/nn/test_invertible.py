"""Invertible backprop (``memory: invertible``) against plain autograd: same gradients, memory
flat in depth, state updated once.

The oracle is plain autograd through the same flow (``flow.memory = "plain"``). Losses weigh
every element of ``z`` and the logdet by random weights, so every output's gradient path is
checked. Besides every shipped spec and every catalogue op, hand-written steps cover what specs
cannot express: a module used twice, dropout, context, a broken inverse.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import flowspec
from flowspec.nn.bases import StandardNormal
from flowspec.nn.context import ContextEncoder
from flowspec.nn.flow import Flow, Step
from flowspec.nn.invertible import backprop_mode
from flowspec.nn.oracles import example_context, example_inputs
from flowspec.nn.saved_memory import SavedTensorMeter
from flowspec.spec.context import VectorContextSpec
from tests.catalogue import op_example_params
from tests.helpers import LARGE_SPECS, SPEC_FILES, one_thread_per_module, prepared_flow

one_thread = one_thread_per_module()


# ---------------------------------------------------------------------------- oracles
def gradients(flow: Flow, x: Tensor, mode: str, context: Tensor | None = None) -> list[Tensor]:
    """Gradients of a random weighing of ``z`` and ``logdet`` w.r.t. every parameter and the
    float inputs, with the flow in memory ``mode``; the noise of dequantisation is seeded."""
    flow.memory = mode
    torch.manual_seed(7)
    z, logdet = flow(x, context)
    weights = torch.Generator().manual_seed(1)
    w_z = torch.randn(z.shape, generator=weights, dtype=z.dtype)
    w_ld = torch.randn(logdet.shape, generator=weights, dtype=z.dtype)
    loss = (z * w_z).sum() + (logdet * w_ld).sum()
    wrt = [t for t in (x, context) if t is not None and t.requires_grad]
    wrt += [p for p in flow.parameters() if p.requires_grad]
    flow.memory = "plain"
    return list(torch.autograd.grad(loss, wrt, allow_unused=True))


def assert_close(got: list[Tensor], want: list[Tensor], rel: float) -> None:
    """Every gradient within ``rel`` of the largest gradient element overall (a bias before a
    batch norm has a true gradient of 0: its rounding noise cannot be compared to itself)."""
    assert len(got) == len(want)
    scale = max(float(w.abs().max()) for w in want if w is not None)
    assert scale > 0
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None or not g.any(), i
            continue
        assert g is not None and torch.isfinite(g).all(), i
        assert float((g - w).abs().max()) <= rel * scale, (i, float((g - w).abs().max()), scale)


def _spec_params() -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in SPEC_FILES if p.stem not in LARGE_SPECS]


@pytest.mark.parametrize("path", _spec_params())
def test_every_shipped_spec_gets_plain_autograds_gradients(path: Path) -> None:
    """float64, weights moved off the identity, batch-norm layers in training mode."""
    flow = flowspec.compile(path).double()
    generator = torch.Generator().manual_seed(2)
    x, c = example_inputs(flow, 24, generator), example_context(flow, 24, generator)
    with torch.no_grad():
        flow(x, c)  # data-dependent init
    flowspec.nn.oracles.perturb_parameters(flow, scale=0.05, seed=1)
    want = gradients(flow, x, "plain", c)
    assert_close(gradients(flow, x, "invertible", c), want, 1e-10)


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_every_catalogue_op_gets_plain_autograds_gradients(
    kind: str, shape: list[int], layers: list[dict]
) -> None:
    flow = prepared_flow(shape, layers)
    x = example_inputs(flow, 8, torch.Generator().manual_seed(3)).requires_grad_()
    assert_close(gradients(flow, x, "invertible"), gradients(flow, x, "plain"), 1e-10)


def test_spec_train_memory_reaches_the_compiled_flow_and_training() -> None:
    spec = flowspec.load_spec("specs/realnvp_moons.yaml").model_dump(mode="json")
    spec["train"]["memory"] = "invertible"
    flow = flowspec.compile(spec)
    assert flow.memory == "invertible"
    assert flowspec.compile("specs/realnvp_moons.yaml").memory == "plain"
    with pytest.raises(ValueError, match="memory must be"):
        flow.memory = "cheap"


def test_training_in_invertible_memory_matches_plain() -> None:
    """``flowspec.train`` with ``memory: invertible`` follows plain autograd's run (float32:
    Adam's normalised steps amplify rounding where a gradient is near 0, so the losses are
    compared, not every weight)."""
    from flowspec.spec.training import TrainSpec

    results = {}
    for mode in ("plain", "invertible"):
        config = TrainSpec(steps=8, val_every=4, batch_size=32, lr=3e-3, threads=1, memory=mode)
        result = flowspec.train("specs/glow_digits.yaml", config=config, figures=False)
        assert result.flow.memory == mode
        results[mode] = [(row["train_nll"], row["val_nll"]) for row in result.history]
    assert len(results["plain"]) == 2
    for plain, inverted in zip(results["plain"], results["invertible"]):
        assert plain == pytest.approx(inverted, rel=1e-4)


# ---------------------------------------------------------------------------- hand-written steps
class Coupling(nn.Module):
    """Affine coupling: ``y_b = x_b * exp(tanh s) + t`` with ``(s, t) = MLP(x_a [, context])``."""

    def __init__(self, dim: int, ctx: int = 0, dropout: float = 0.0, norm: bool = False) -> None:
        super().__init__()
        self.d = dim // 2
        hidden = 12
        mid = [nn.BatchNorm1d(hidden)] if norm else []
        mid += [nn.Dropout(dropout)] if dropout else []
        self.net = nn.Sequential(
            nn.Linear(self.d + ctx, hidden), nn.Tanh(), *mid, nn.Linear(hidden, 2 * (dim - self.d))
        )

    def _st(self, a: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        s, t = self.net(a if context is None else torch.cat([a, context], 1)).chunk(2, 1)
        return torch.tanh(s), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self._st(x[:, : self.d], context)
        return torch.cat([x[:, : self.d], x[:, self.d :] * s.exp() + t], 1), s.sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        s, t = self._st(y[:, : self.d], context)
        return torch.cat([y[:, : self.d], (y[:, self.d :] - t) * (-s).exp()], 1)


class Permute(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("perm", torch.randperm(dim))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y[:, torch.argsort(self.perm)]


class ActLike(nn.Module):
    """``y = x * exp(log_scale) + bias``; with ``data_init`` the first forward sets both."""

    def __init__(self, dim: int, data_init: bool = False) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(0.3 * torch.randn(dim))
        self.bias = nn.Parameter(0.3 * torch.randn(dim))
        self.register_buffer("initialized", torch.tensor(not data_init))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.initialized:
            with torch.no_grad():
                self.log_scale.copy_(-x.std(0).log())
                self.bias.copy_(-x.mean(0) * self.log_scale.exp())
                self.initialized.fill_(True)
        return x * self.log_scale.exp() + self.bias, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return (y - self.bias) * (-self.log_scale).exp()


class FactorOut(nn.Module):
    """Keep the first half; the rest leaves as ``(h - mean) exp(-log_std)`` (learned prior)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.h = dim // 2
        self.prior = nn.Linear(self.h, 2 * (dim - self.h))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[tuple, Tensor]:
        mean, log_std = self.prior(x[:, : self.h]).chunk(2, 1)
        z = (x[:, self.h :] - mean) * (-log_std).exp()
        return (x[:, : self.h], z), -log_std.sum(1)

    def inverse(self, y: tuple[Tensor, Tensor], context: Tensor | None = None) -> Tensor:
        kept, z = y
        mean, log_std = self.prior(kept).chunk(2, 1)
        return torch.cat([kept, z * log_std.exp() + mean], 1)


class BatchNormStep(nn.Module):
    """Batch norm bijection: batch statistics in training, so not invertible from ``y``."""

    invertible_backprop = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.log_gamma = nn.Parameter(0.2 * torch.randn(dim))
        self.beta = nn.Parameter(0.2 * torch.randn(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mean, var = x.mean(0), x.var(0, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean, 0.1)
            self.running_var.lerp_(var, 0.1)
        y = (x - mean) * (var + 1e-5).rsqrt() * self.log_gamma.exp() + self.beta
        ld = (self.log_gamma - 0.5 * (var + 1e-5).log()).sum()
        return y, ld.expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        x = (y - self.beta) * (-self.log_gamma).exp()
        return x * (self.running_var + 1e-5).sqrt() + self.running_mean


class Noisy(nn.Module):
    """``y = (x + amp * u) * exp(log_scale)``, ``u ~ U[0, 1)`` drawn anew in every forward."""

    invertible_backprop = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.amp = nn.Parameter(torch.tensor(0.7))
        self.log_scale = nn.Parameter(0.2 * torch.randn(dim))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = (x + self.amp * torch.rand_like(x)) * self.log_scale.exp()
        return y, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return y * (-self.log_scale).exp()


def chain_flow(modules: list[nn.Module], dim: int, ctx: int = 0) -> Flow:
    """A :class:`Flow` whose steps are ``modules`` in a chain; a FactorOut's second output is a
    latent. The spec only gives the input shape (the steps do not come from it); ``ctx > 0``
    makes it conditional on a ``(N, ctx)`` vector, passed to the steps as it is."""
    spec = flowspec.load_spec(
        {"flowspec": 1, "input": {"shape": [dim]}, "layers": [{"type": "scale"}]}
    )
    steps, latents, shapes, slot, n, d = [], [], [], 0, 1, dim
    for i, module in enumerate(modules):
        dst = (n, n + 1) if isinstance(module, FactorOut) else (n,)
        steps.append(Step(f"s{i}", type(module).__name__, f"layers.{i}", module, slot, dst))
        if isinstance(module, FactorOut):
            latents.append(n + 1)
            shapes.append((d - module.h,))
            d = module.h
        slot, n = n, n + len(dst)
    encoder = ContextEncoder(VectorContextSpec(shape=(ctx,))) if ctx else None
    return Flow(spec, steps, [*latents, slot], [*shapes, (d,)], n, StandardNormal(dim), encoder)


def mixed_chain(ctx: int = 0) -> list[nn.Module]:
    """8 -> 4 -> 2 features: every kind of step, two factor-outs, one coupling used twice."""
    shared = Coupling(4, ctx)
    return [
        *[Noisy(8), Coupling(8, ctx), Permute(8), ActLike(8), Coupling(8, ctx, norm=True)],
        *[BatchNormStep(8), FactorOut(8), shared, Permute(4), shared],
        *[ActLike(4), Noisy(4), FactorOut(4), Coupling(2, ctx)],
    ]


def setup(ctx: int, dtype: torch.dtype, modules: Any = mixed_chain) -> tuple:
    torch.manual_seed(0)
    flow = chain_flow(modules(ctx), 8, ctx).to(dtype)
    x = torch.randn(16, 8, dtype=dtype, requires_grad=True)
    context = torch.randn(16, ctx, dtype=dtype, requires_grad=True) if ctx else None
    return flow, x, context


@pytest.mark.parametrize(
    ("ctx", "dtype", "rel"),
    [(0, torch.float64, 1e-10), (3, torch.float64, 1e-10), (0, torch.float32, 1e-4)],
)
def test_hand_written_steps_get_plain_autograds_gradients(
    ctx: int, dtype: torch.dtype, rel: float
) -> None:
    flow, x, context = setup(ctx, dtype)
    modes = [backprop_mode(s.module) for s in flow.steps]
    assert modes.count("checkpoint") == 3  # 2 noisy, 1 batch norm
    want = gradients(flow, x, "plain", context)
    assert_close(gradients(flow, x, "invertible", context), want, rel)
    flow.memory_check = rel  # every rebuilt input within ``rel`` of the stored one
    assert_close(gradients(flow, x, "invertible", context), want, rel)


def test_rng_replayed_and_restored_around_recompute() -> None:
    """Dropout in a conditioner checkpoints its step; the backward leaves the random stream
    where plain autograd leaves it (the recompute draws from a forked generator)."""
    torch.manual_seed(0)
    modules = [Coupling(8, dropout=0.5), Permute(8), Coupling(8, dropout=0.5), Noisy(8)]
    flow = chain_flow(modules, 8).double()
    assert [backprop_mode(s.module) for s in flow.steps] == ["checkpoint", "invert"] + [
        "checkpoint"
    ] * 2
    x = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    want = gradients(flow, x, "plain")
    state_plain = torch.get_rng_state()
    assert_close(gradients(flow, x, "invertible"), want, 1e-10)
    assert torch.equal(torch.get_rng_state(), state_plain)


def test_factor_out_first_and_last_and_single_step() -> None:
    for modules in (
        lambda: [FactorOut(8), Coupling(4)],
        lambda: [Coupling(8), FactorOut(8)],
        lambda: [FactorOut(8)],
    ):
        flow, x, _ = setup(0, torch.float64, lambda _, m=modules: m())
        assert_close(gradients(flow, x, "invertible"), gradients(flow, x, "plain"), 1e-10)


def test_buffers_updated_once_per_training_step() -> None:
    """Running statistics (a batch-norm step and nn.BatchNorm1d inside an inverted coupling)
    and the parameters after one SGD step equal those of plain autograd."""
    torch.manual_seed(0)
    ref = chain_flow(
        [Coupling(8, norm=True), BatchNormStep(8), Permute(8), Coupling(8, norm=True)], 8
    )
    ref = ref.double()
    ours = copy.deepcopy(ref)
    ours.memory = "invertible"
    x = torch.randn(32, 8, dtype=torch.float64)
    for flow in (ref, ours):
        opt = torch.optim.SGD(flow.parameters(), lr=0.1)
        (-flow.log_prob(x)).mean().backward()
        opt.step()
    for (name, u), (_, v) in zip(ref.named_buffers(), ours.named_buffers()):
        assert torch.equal(u, v), name
    for u, v in zip(ref.parameters(), ours.parameters()):
        assert (u - v).abs().max() <= 1e-12
    assert int(ours.steps[0].module.net[2].num_batches_tracked) == 1


def test_autocast_replayed_in_inverse_and_recompute() -> None:
    """Backward runs outside the autocast block; the rebuild and recompute still see it on."""
    seen: list[bool] = []

    class Probe(Coupling):
        def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().forward(x, context)

        def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
            seen.append(torch.is_autocast_enabled("cpu"))
            return super().inverse(y, context)

    torch.manual_seed(0)
    flow = chain_flow([Probe(8), Permute(8), Probe(8)], 8)
    flow.memory = "invertible"
    x = torch.randn(16, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, logdet = flow(x)
    (z.float().sum() + logdet.float().sum()).backward()
    assert seen == [True] * 6  # 2 forwards; per coupling in backward: inverse, recompute
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_every_parameter_gets_one_accumulation_hook_call() -> None:
    flow, x, _ = setup(0, torch.float64)
    flow.memory = "invertible"
    calls: dict[int, int] = {}
    for p in flow.parameters():
        p.register_post_accumulate_grad_hook(
            lambda p: calls.update({id(p): calls.get(id(p), 0) + 1})
        )
    z, logdet = flow(x)
    (z.sum() + logdet.sum()).backward()
    assert calls == {id(p): 1 for p in flow.parameters()}


def test_saved_memory_flat_in_depth() -> None:
    """Saved bytes (parameters excluded): constant in depth by inversion, linear in plain."""
    measured = {}
    for depth in (4, 16, 64):
        torch.manual_seed(0)
        flow = chain_flow([s for _ in range(depth) for s in (Coupling(16), Permute(16))], 16)
        flow.double()
        x = torch.randn(64, 16, dtype=torch.float64, requires_grad=True)
        for mode in ("plain", "invertible"):
            flow.memory = mode
            with SavedTensorMeter(exclude=flow.parameters()) as meter:
                z, logdet = flow(x)
            measured[mode, depth] = meter.nbytes
            (z.sum() + logdet.sum()).backward()
    inv = [measured["invertible", d] for d in (4, 16, 64)]
    b4, b16, b64 = (measured["plain", d] for d in (4, 16, 64))
    assert inv == [64 * 16 * 8] * 3  # z, nothing else
    assert b64 - b16 == 4 * (b16 - b4) > 0 and b4 > 10 * inv[0]


def test_steps_before_the_first_parameters_are_not_rebuilt() -> None:
    """glow_digits starts with dequantize (noisy, checkpointed) and logit: with integer data,
    backward never reaches them, so their inputs are not stored: only z is saved."""
    flow = flowspec.compile("specs/glow_digits.yaml")
    x = torch.randint(0, 17, (32, 1, 8, 8))
    with torch.no_grad():
        flow(x)
    flow.memory = "invertible"
    with SavedTensorMeter(exclude=flow.parameters()) as meter:
        z, logdet = flow(x)
    assert meter.nbytes == z.numel() * 4
    (z.sum() + logdet.sum()).backward()
    assert all(p.grad is not None for p in flow.parameters())


def test_uninitialised_step_is_refused_until_a_plain_forward() -> None:
    torch.manual_seed(0)
    flow = chain_flow([Coupling(8), ActLike(8, data_init=True)], 8).double()
    flow.memory = "invertible"
    x = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"step 's1' \(ActLike\).*initialisation"):
        flow(x)
    with torch.no_grad():
        z, _ = flow(x)  # plain forward: initialises
    assert not z.requires_grad and bool(flow.steps[1].module.initialized)
    assert_close(gradients(flow, x, "invertible"), gradients(flow, x, "plain"), 1e-10)


def test_second_backward_and_create_graph() -> None:
    flow, x, _ = setup(0, torch.float64)
    flow.memory = "invertible"
    z, logdet = flow(x)
    loss = (z**2).sum() + logdet.sum()
    with pytest.raises(RuntimeError, match="create_graph"):
        torch.autograd.grad(loss, x, create_graph=True)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)  # a retained graph can be walked again
    assert torch.equal(g1, g2)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(loss, x)


def test_broken_inverse_is_reported_with_the_step() -> None:
    torch.manual_seed(0)
    broken = Coupling(8)
    broken.inverse = lambda y, context=None: y  # wrong on purpose
    flow = chain_flow([Coupling(8), broken], 8).double()
    flow.memory, flow.memory_check = "invertible", 1e-9
    z, logdet = flow(torch.randn(16, 8, dtype=torch.float64, requires_grad=True))
    with pytest.raises(RuntimeError, match=r"step 's1' \(Coupling.*rebuilt.*differs"):
        (z.sum() + logdet.sum()).backward()


def test_a_checkpoint_written_before_the_memory_setting_resumes_with_its_default() -> None:
    from flowspec.errors import TrainingError
    from flowspec.spec.training import TrainSpec
    from flowspec.training.checkpoint import TrainState
    from flowspec.training.resume import require_same_settings

    config = TrainSpec().model_dump(mode="json")
    old = {k: v for k, v in config.items() if k not in ("memory", "compile")}
    require_same_settings(
        TrainState(config=old, data="moons"), TrainState(config=config, data="moons"), Path("c")
    )
    changed = {**config, "memory": "invertible"}
    with pytest.raises(TrainingError) as error:
        require_same_settings(
            TrainState(config=old, data="moons"),
            TrainState(config=changed, data="moons"),
            Path("c"),
        )
    assert error.value.codes == ["resume-mismatch"] and "memory" in str(error.value)
