"""Image flows on (N, C, H, W): what is particular to images, against independent oracles.

(The per-op round trips, logdets and shape rules on image shapes are in tests/nn/test_ops.py,
over the catalogue.) Here: squeeze's layout, the mixing analysis against the Jacobian's sparsity
pattern with conv receptive fields, actnorm's data-dependent init, the LU parameterisation,
batchnorm's statistics, the exact preprocessing maps, the bits/dim convention, multiscale
encode/decode and sampling, and the shipped image specs. Weights are perturbed first:
zero-initialised layers would make every check trivial.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor, nn

import flowspec
from flowspec.nn.flow import Flow, Step
from flowspec.nn.oracles import deterministic, jacobian_logdet, perturb_parameters
from tests.helpers import ROOT, example_spec


def single_op(op: dict[str, Any], shape: tuple[int, ...]) -> Flow:
    return flowspec.compile(example_spec(list(shape), [op]))


def inputs(flow: Flow, n: int, seed: int = 0) -> Tensor:
    """Channel-wise shifted and scaled normals (so actnorm has work to do)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, *flow.input_shape)
    loc = torch.arange(shape[1], dtype=torch.float64).reshape(1, -1, 1, 1)
    return loc + (1 + loc) * torch.randn(shape, generator=gen, dtype=torch.float64)


def assert_runtime_shapes(flow: Flow, x: Tensor) -> None:
    """Every op's outputs and every latent have the shapes the graph's shape rules gave."""
    seen: dict[str, list[tuple[int, ...]]] = {}

    def observe(step: Step, outs: tuple[Tensor, ...], logdet: Any) -> None:
        seen[step.name] = [tuple(t.shape[1:]) for t in outs]

    flow.run_forward(x, observe=observe)
    for op in flow.graph.ops():
        assert seen[op.name] == [tuple(s) for s in op.out_shapes], op.name
    assert [tuple(t.shape[1:]) for t in flow.encode(x)] == [
        s for _, s in flow.graph.latent_shapes()
    ]


def test_squeeze_layout() -> None:
    """Output channel 4c + 2dy + dx at (i, j) holds input channel c at (2i + dy, 2j + dx)."""
    flow = single_op({"type": "squeeze"}, (2, 4, 6))
    x = torch.arange(48.0).reshape(1, 2, 4, 6)
    y = flow.encode(x)[0][0]
    for c in range(2):
        for dy in range(2):
            for dx in range(2):
                assert torch.equal(y[4 * c + 2 * dy + dx], x[0, c, dy::2, dx::2])


def test_mixing_matches_jacobian_sparsity() -> None:
    """Squeeze + 1x1 conv + couplings: the graph's dependency matrix equals the union of the
    nonzero patterns of the flow's Jacobian at random inputs, with random weights."""
    spec = """
flowspec: 1
input: {shape: [1, 8, 8]}
levels:
  - steps:
      - {type: affine_coupling, mask: checkerboard, net_input: masked,
         net: {type: glow_conv, channels: 8}}
  - squeeze: true
    steps:
      - {type: invconv}
      - {type: affine_coupling, mask: channel, net: {type: glow_conv, channels: 8}}
    split: true
"""
    graph = flowspec.build_graph(spec)
    expected = torch.tensor(graph.mixing.matrix(), dtype=torch.bool)
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.3)
    pattern = torch.zeros(64, 64, dtype=torch.bool)
    with deterministic(flow):
        for x in torch.randn(3, 1, 8, 8, dtype=torch.float64):
            jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0][0], x)
            pattern |= jac.reshape(64, 64) != 0
    # Not trivially dense nor diagonal: the conditioners' receptive fields matter at 8x8.
    assert 64 < int(expected.sum()) < 64 * 64
    assert torch.equal(pattern, expected)


def test_actnorm_data_init_and_not_after_load(tmp_path: Any) -> None:
    flow = single_op({"type": "actnorm"}, (3, 4, 4))
    first = inputs(flow, 32).float()
    y, logdet = flow(first)
    y = y.reshape(32, 3, 4, 4)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    expected = 16 * torch.log(first.std(dim=(0, 2, 3), unbiased=False)).sum()
    assert torch.allclose(logdet, -expected.expand(32), atol=1e-4)  # H * W * sum(log scale)
    # A single image still has H x W values per channel to standardise.
    y1 = single_op({"type": "actnorm"}, (3, 4, 4)).encode(first[:1])[0]
    assert torch.allclose(y1.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    spec = {
        "flowspec": 1,
        "input": {"shape": [3, 4, 4]},
        "layers": [{"type": "actnorm"}, {"type": "invconv"}, {"type": "actnorm"}],
    }
    flow = flowspec.compile(spec)
    flow(first)
    flowspec.save(flow, tmp_path / "a.safetensors")
    loaded = flowspec.load(tmp_path / "a.safetensors")
    other = 5.0 + 3.0 * first.flip(0)  # other statistics: a second init would change weights
    assert torch.equal(loaded(other)[0], flow(other)[0])
    for name in ("layers.0", "layers.2"):
        new, old = loaded.get_submodule(name), flow.get_submodule(name)
        assert torch.equal(new.bias, old.bias) and torch.equal(new.log_scale, old.log_scale)
        assert bool(new.initialized) and new.bias.abs().sum() > 0


def test_invconv_lu_parameterisation() -> None:
    flow = single_op({"type": "invconv", "lu": True}, (5, 2, 3)).double()
    conv = flow.get_submodule("layers.0")
    w0 = conv.matrix().detach()
    assert torch.allclose(w0 @ w0.T, torch.eye(5, dtype=torch.float64), atol=1e-6)  # rotation
    perturb_parameters(flow, scale=0.5)
    w = conv.matrix().detach()
    lower = torch.tril(conv.lower.detach(), -1) + torch.eye(5, dtype=torch.float64)
    upper = torch.triu(conv.upper.detach(), 1) + torch.diag(conv.sign * conv.log_s.exp())
    assert torch.allclose(w, conv.p @ lower @ upper, atol=1e-12)
    assert sorted(conv.p.sum(0).tolist()) == [1.0] * 5 and set(conv.p.flatten().tolist()) == {0, 1}
    sign, logabs = torch.linalg.slogdet(w)
    assert torch.allclose(conv.log_s.sum().detach(), logabs, atol=1e-10)
    assert sign == torch.linalg.det(conv.p) * conv.sign.prod()
    x = torch.randn(2, 5, 2, 3, dtype=torch.float64)
    assert torch.allclose(flow(x)[1], 6 * logabs.expand(2), atol=1e-10)
    # Only the strict triangles of L and U are parameters; P and the signs are fixed buffers.
    names = {n.split(".")[-1] for n, _ in flow.named_parameters()}
    assert names == {"lower", "upper", "log_s"}


def test_batchnorm_train_and_eval_logdet() -> None:
    flow = single_op({"type": "batchnorm", "momentum": 0.5}, (2, 4, 6)).double()
    perturb_parameters(flow, scale=0.3)
    bn = flow.get_submodule("layers.0")
    x = inputs(flow, 8)
    flow.train()
    z, logdet = flow(x)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
    expected = 24 * (bn.log_gamma.sum() - 0.5 * torch.log(var + bn.eps).sum())
    assert torch.allclose(logdet, expected.expand(8), atol=1e-10)  # the notes' table, times H*W
    assert torch.allclose(bn.running_mean, 0.5 * mean, atol=1e-12)  # lerp from 0
    # Oracle: the per-example Jacobian with the batch statistics held fixed.
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    flow.eval()
    assert torch.allclose(flow(x)[0], z, atol=1e-12)
    assert torch.allclose(jacobian_logdet(flow, x[:2]), logdet[:2], atol=1e-10)
    # Eval mode uses the running averages, whatever the batch.
    assert torch.allclose(flow(x[:1])[0], z[:1], atol=1e-12)


class UniformBase(nn.Module):
    """U[0, 1)^D: log density 0 inside (test stand-in for the base distribution)."""

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        assert bool(((z >= 0) & (z < 1)).all())
        return torch.zeros(z.shape[0], dtype=z.dtype)


def test_dequantize_and_logit_exact() -> None:
    spec = {"type": "dequantize", "levels": 17}
    flow = single_op(spec, (2, 4, 6)).double()
    x = torch.randint(0, 17, (5, 2, 4, 6))
    with deterministic(flow):  # noise and rounding off: a pure scaling by 1 / levels
        z, logdet = flow(x)
        assert torch.equal(z, (x.double() / 17).reshape(5, -1))
    assert torch.allclose(logdet, torch.full((5,), -48 * math.log(17), dtype=torch.float64))
    z, _ = flow(x)  # with noise: x + u, u in [0, 1), and the inverse floors back to x
    assert torch.equal(flow.inverse(z), x.double()) and not torch.equal(z * 17, x.double())
    logit = single_op({"type": "logit", "alpha": 0.05}, (1, 4, 4)).double()
    y = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    z, logdet = logit(y)
    p = 0.05 + 0.9 * y.reshape(3, -1)
    assert torch.allclose(z, torch.log(p / (1 - p)), atol=1e-12)
    assert torch.allclose(logdet, (math.log(0.9) - torch.log(p * (1 - p))).sum(1), atol=1e-10)


def test_bits_per_dim_convention() -> None:
    spec = {
        "flowspec": 1,
        "input": {"shape": [1, 4, 4]},
        "preprocess": [{"type": "dequantize", "levels": 17}],
        "layers": [{"type": "actnorm", "data_init": False}],  # the identity
    }
    flow = flowspec.compile(spec).double()
    x = torch.randint(0, 17, (64, 1, 4, 4))
    torch.manual_seed(0)
    bpd = flow.bits_per_dim(x)
    torch.manual_seed(0)
    assert torch.allclose(bpd, -flow.log_prob(x) / (16 * math.log(2)))
    torch.manual_seed(0)
    y = (x + torch.rand(x.shape, dtype=torch.float64)) / 17  # the same noise, redrawn
    normal = -0.5 * (y.reshape(64, -1) ** 2 + math.log(2 * math.pi)).sum(1)
    assert torch.allclose(bpd, math.log2(17) - normal / (16 * math.log(2)))
    flow.base = UniformBase()  # a perfect model of uniform integers: exactly log2(levels)
    assert torch.allclose(
        flow.bits_per_dim(x), torch.full((64,), math.log2(17), dtype=torch.float64)
    )


def test_encode_decode_and_sample_every_scale() -> None:
    flow = perturb_parameters(flowspec.compile(ROOT / "specs" / "glow_digits.yaml").double(), 0.05)
    x = torch.randint(0, 17, (8, 1, 8, 8))
    with deterministic(flow), torch.no_grad():
        latents = flow.encode(x)
        z, _ = flow(x)
        assert [t.shape[1:] for t in latents] == [(2, 4, 4), (4, 2, 2), (16, 1, 1)]
        assert torch.equal(torch.cat([t.reshape(8, -1) for t in latents], 1), z)
        assert (flow.decode(latents) - x).abs().max() < 1e-10  # decode = inverse
    flow.eval()
    with torch.no_grad():
        samples = flow.sample(300, 0.7)
    assert samples.shape == (300, 1, 8, 8) and torch.equal(samples.round(), samples)
    assert samples.min() >= 0 and samples.max() <= 16
    # Without the (ill-conditioned far out) logit, latents come back exactly: each scale is
    # drawn at the temperature, which scales the learned priors' conditional std too.
    data = yaml.safe_load((ROOT / "specs" / "glow_digits.yaml").read_text())
    del data["preprocess"]
    flow = flowspec.compile(data).double()
    with torch.no_grad():
        flow(x.double())  # actnorm's data-dependent init, before sampling
    flow = perturb_parameters(flow, 0.02).eval()
    for temperature in (1.0, 0.5):
        with torch.no_grad():
            torch.manual_seed(1)
            per_scale = flow.encode(flow.sample(300, temperature))
        torch.manual_seed(1)
        eps = flow.base.sample(300, 1.0).split(flow.latent_sizes, 1)
        for part, latent in zip(eps, per_scale):
            error = (latent.reshape(300, -1) - temperature * part).abs().max().item()
            assert error < 1e-9


IMAGE_SPECS = ["realnvp_digits", "glow_digits", "realnvp_cifar10", "glow_cifar10"]


@pytest.mark.parametrize("name", IMAGE_SPECS)
def test_image_specs_build_and_compile(name: str) -> None:
    path = ROOT / "specs" / f"{name}.yaml"
    graph = flowspec.build_graph(path)
    assert not graph.warnings
    assert graph.mixing.summary().startswith("every latent element depends on all")
    flow = flowspec.compile(path)
    assert flow.num_parameters() > 0 and flow.dim == math.prod(flow.input_shape)
    if name.endswith("cifar10"):  # paper scale: instantiate only, plus one cheap forward
        with torch.no_grad():
            z, logdet = flow(torch.randint(0, 256, (1, 3, 32, 32)))
        assert z.shape == (1, 3072) and bool(torch.isfinite(logdet).all())
        return
    x = torch.randint(0, 17, (16, 1, 8, 8))
    assert_runtime_shapes(flow, x)  # the first batch also runs the data-dependent init
    flow = perturb_parameters(flow.double(), 0.02)
    with deterministic(flow):
        z, logdet = flow(x[:2])
        assert z.shape == (2, 64)
        assert (flow.inverse(z) - x[:2]).abs().max().item() < 1e-8
        jac = jacobian_logdet(flow, x[:2].double())
    assert ((logdet - jac).abs().max() / (1 + jac.abs().max())).item() < 1e-9


def test_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    text = (ROOT / "docs" / "images.md").read_text()
    namespace: dict[str, Any] = {}
    exec(text.split("```python\n", 1)[1].split("```", 1)[0], namespace)
    images = namespace["images"]
    assert images.shape == (16, 1, 8, 8) and torch.equal(images, images.round())
    levels = flowspec.build_graph(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    shipped = flowspec.build_graph(ROOT / "specs" / "glow_digits.yaml")
    assert [op.out_shapes for op in levels.ops()] == [op.out_shapes for op in shipped.ops()]
