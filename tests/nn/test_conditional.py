"""Conditional flows: every catalogue op that takes the context, with class and vector contexts,
against the float64 oracles at a fixed context; the Flow API's context handling; densities that
integrate to one for each context; conditional bases and normalised contexts."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import flowspec
from flowspec.nn.oracles import (
    deterministic,
    example_context,
    example_inputs,
    jacobian_logdet,
    perturb_parameters,
)
from tests.catalogue import MLP, TOKENS, VIT, op_example_params
from tests.helpers import example_spec, one_thread_per_module

CONTEXTS = {
    "classes": {"classes": 3, "embedding": 2},
    "onehot": {"classes": 4},
    "vector": {"shape": [2]},
}
TAKES_CONTEXT = (
    "coupling",
    "additive_coupling",
    "affine_coupling",
    "autoregressive",
    "split",
    "tarflow",
)


one_thread = one_thread_per_module()


def _conditional_params() -> list[Any]:
    out = []
    for p in op_example_params():
        kind, shape, layers = p.values
        if kind not in TAKES_CONTEXT or (kind == "split" and layers[0]["prior"] != "learned"):
            continue
        for name, context in CONTEXTS.items():
            out.append(pytest.param(shape, layers, context, id=f"{p.id}-{name}"))
    return out


def conditional_flow(
    shape: list[int],
    layers: list[dict],
    context: dict,
    base: dict | None = None,
    scale: float = 0.3,
) -> flowspec.Flow:
    extra: dict[str, Any] = {"context": context}
    if base is not None:
        extra["base"] = base
    flow = flowspec.compile(example_spec(shape, layers, **extra)).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        flow(example_inputs(flow, 64, gen), example_context(flow, 64, gen))
    return perturb_parameters(flow, scale=scale, seed=2)


@pytest.mark.parametrize(("shape", "layers", "context"), _conditional_params())
def test_conditional_op_against_the_oracles(shape: list[int], layers: list, context: dict) -> None:
    flow = conditional_flow(shape, layers, context)
    assert flow.graph.context_users(), "the op should take the context"
    gen = torch.Generator().manual_seed(3)
    with deterministic(flow):
        x, c = example_inputs(flow, 4, gen), example_context(flow, 4, gen)
        with torch.no_grad():
            z, logdet = flow(x, c)
            assert (flow.inverse(z, c) - x).abs().max() < 1e-9
            _, inverse_logdet = flow.inverse_and_logdet(z, c)
            assert (inverse_logdet + logdet).abs().max() < 1e-9 * (1 + logdet.abs().max())
            classes = flow.context.classes
            other = (c + 1) % classes if classes is not None else c + 1
            assert (flow(x, other)[0] - z).abs().max() > 1e-6, "the context must matter"
        oracle = jacobian_logdet(flow, x, c)
    assert (logdet - oracle).abs().max() / (1 + oracle.abs().max()) < 1e-9


def _context_jacobian_rows(flow: flowspec.Flow, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Which latent elements move with a vector context: rows of dz/dc that are not zero."""
    jac = torch.autograd.functional.jacobian(lambda v: flow(x, v)[0][0], c)
    return (jac.reshape(jac.shape[0], -1).abs() > 1e-12).any(dim=1)


@pytest.mark.parametrize(
    "layers",
    [
        [{"type": "coupling", "mask": "first_half", "net": MLP}],
        [
            {"type": "autoregressive", "order": [2, 0, 3, 1], "net": {"hidden": [2]}},
            {"type": "split", "prior": "standard"},
        ],
        [{"type": "split", "prior": "learned"}, {"type": "actnorm"}],
        [
            {"type": "coupling", "mask": "first_half", "net": MLP},
            {"type": "permute", "order": "reverse"},
            {"type": "autoregressive", "direction": "iaf", "net": {"hidden": [3]}},
        ],
    ],
    ids=["coupling", "narrow-maf-split", "learned-split", "coupling-permute-iaf"],
)
def test_mixing_report_says_which_latents_depend_on_the_context(layers: list) -> None:
    spec = example_spec([4], layers, context={"shape": [2]})
    report = flowspec.build_graph(spec).mixing
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.5, seed=0).eval()
    x = torch.randn(1, 4, dtype=torch.float64)
    c = torch.randn(1, 2, dtype=torch.float64)
    assert report.context_deps == tuple(_context_jacobian_rows(flow, x, c).tolist())
    assert 0 < report.context_count() <= 4


TARFLOW = {"type": "tarflow", "width": 8, "depth": 1, "heads": 2}


@pytest.mark.parametrize(
    ("layers", "count"),
    [
        pytest.param([TOKENS, TARFLOW], 12, id="tarflow"),  # token 0 passes unchanged
        pytest.param([TOKENS, {**TARFLOW, "order": "reverse"}], 12, id="tarflow-reverse"),
        pytest.param([TOKENS, {**TARFLOW, "start": "learned"}], 16, id="tarflow-learned-start"),
        pytest.param(  # the 2 transformed tokens of 4
            [TOKENS, {"type": "affine_coupling", "mask": "checkerboard", "net": VIT}],
            8,
            id="jet-checkerboard",
        ),
        pytest.param(  # token 0's kept values are the only ones left free of it
            [TOKENS, {"type": "coupling", "mask": "channel", "net": VIT}, TARFLOW],
            14,
            id="jet-tarflow",
        ),
    ],
)
def test_mixing_report_of_transformer_blocks_with_a_context(layers: list, count: int) -> None:
    """On tokens: a TarFlow block's context reaches every token it parameterises (not token 0
    with the one-token shift, which passes unchanged; all of them with a learned start), a Jet
    coupling's only what it transforms; the report says exactly what the Jacobian does."""
    spec = example_spec([1, 4, 4], layers, context={"shape": [2]})
    report = flowspec.build_graph(spec).mixing
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.5, seed=0).eval()
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    c = torch.randn(1, 2, dtype=torch.float64)
    moved = _context_jacobian_rows(flow, x, c)
    assert report.context_deps == tuple(moved.tolist())
    assert report.context_count() == count  # of 16 latents


def test_flow_api_takes_one_context_or_one_per_example() -> None:
    flow = conditional_flow([2], [{"type": "coupling", "mask": "first_half", "net": MLP}],
                            {"classes": 3, "embedding": 2})  # fmt: skip
    x = torch.randn(5, 2, dtype=torch.float64)
    with torch.no_grad():
        per = flow.log_prob(x, torch.full((5,), 2))
        assert torch.equal(flow.log_prob(x, 2), per)
        assert torch.equal(flow.log_prob(x, torch.tensor(2)), per)
        assert torch.equal(flow.log_prob(x, torch.tensor([2])), per)
        assert not torch.equal(flow.log_prob(x, 0), per)
        torch.manual_seed(0)
        a = flow.sample(6, context=1)
        torch.manual_seed(0)
        b = flow.sample(6, context=torch.ones(6, dtype=torch.long))
        assert a.shape == (6, 2) and torch.equal(a, b)
        samples, log_p = flow.sample_and_log_prob(6, context=torch.tensor([0, 1, 2, 0, 1, 2]))
        torch.testing.assert_close(
            log_p, flow.log_prob(samples, torch.tensor([0, 1, 2, 0, 1, 2])), atol=1e-10, rtol=0
        )


@pytest.mark.parametrize(
    ("context", "given", "message"),
    [
        ({"classes": 3}, None, "this flow is conditional"),
        ({"classes": 3}, torch.tensor([0, 3, 1]), "class label 3 is out of range"),
        ({"classes": 3}, torch.tensor([0, -1, 1]), "class label -1 is out of range"),
        ({"classes": 3}, torch.tensor([0.0, 1.0, 2.0]), "class context of dtype"),
        ({"classes": 3}, torch.tensor([0, 1]), r"class context of shape \(2,\)"),
        ({"shape": [2]}, torch.zeros(3, 3), r"context of shape \(3, 3\)"),
        ({"shape": [2]}, torch.zeros(2, 2), r"context of shape \(2, 2\) for 3 examples"),
        (None, torch.zeros(3, 2), "this flow is unconditional"),
    ],
)
def test_bad_contexts_are_clear_errors(context: dict | None, given: Any, message: str) -> None:
    extra = {"context": context} if context is not None else {}
    flow = flowspec.compile(example_spec([2], [{"type": "coupling", "net": MLP}], **extra))
    x = torch.randn(3, 2)
    for call in (
        lambda: flow(x, given),
        lambda: flow.log_prob(x, given),
        lambda: flow.inverse(x, given),
        lambda: flow.sample(3, context=given),
        lambda: flow.sample_and_log_prob(3, context=given),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def _grid(lo: float, hi: float, n: int) -> tuple[torch.Tensor, float]:
    axis = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], 1), float(axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("base", [{"type": "normal"}, {"type": "conditional_normal"}])
@pytest.mark.parametrize("context", ["classes", "vector"])
def test_2d_conditional_density_integrates_to_one_for_every_context(
    base: dict, context: str
) -> None:
    layers = [
        {"type": "actnorm"},
        {
            "repeat": 3,
            "body": [
                {"type": "coupling", "transform": {"type": "spline", "bins": 4}, "net": MLP},
                {"type": "autoregressive", "net": {"hidden": [8]}},
            ],
        },
    ]
    flow = conditional_flow([2], layers, CONTEXTS[context], base, scale=0.15).eval()
    points, cell = _grid(-9, 9, 601)
    vectors = [torch.tensor(v) for v in ([0.0, 0.0], [1.5, -2.0], [-3.0, 0.5])]
    contexts = [0, 1, 2] if context == "classes" else vectors
    masses = []
    with torch.no_grad():
        for c in contexts:
            density = torch.cat([flow.log_prob(p, c).exp() for p in points.split(60_000)])
            masses.append(float(density.sum()) * cell)
    assert all(abs(m - 1.0) < 3e-3 for m in masses), masses
    assert len({round(m, 9) for m in masses}) > 1 or base["type"] == "normal"


def test_normalised_vector_context_is_set_from_the_first_batch_and_saved(tmp_path: Any) -> None:
    spec = example_spec(
        [2], [{"type": "coupling", "net": MLP}], context={"shape": [3], "normalize": True}
    )
    flow = flowspec.compile(spec)
    c = torch.randn(256, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -3.0, 0.0])
    with torch.no_grad():
        flow(torch.randn(256, 2), c)
        features = flow.context.features_for(c, 256)
    assert features.mean(0).abs().max() < 1e-4 and (features.std(0) - 1).abs().max() < 1e-2
    perturb_parameters(flow, 0.2)
    again = flowspec.load(flowspec.save(flow, tmp_path / "m.safetensors"))
    assert again.context._initialized
    x = torch.randn(8, 2)
    with torch.no_grad():
        assert torch.equal(again.log_prob(x, c[:8]), flow.log_prob(x, c[:8]))


def test_class_context_features_are_embeddings_or_one_hot() -> None:
    flow = flowspec.compile(example_spec([2], [{"type": "coupling"}], context={"classes": 4}))
    torch.testing.assert_close(flow.context.features_for(torch.tensor([3, 0]), 2),
                               torch.tensor([[0.0, 0, 0, 1], [1, 0, 0, 0]]))  # fmt: skip
    spec = example_spec([2], [{"type": "coupling"}], context={"classes": 4, "embedding": 3})
    embedded = flowspec.compile(spec)
    assert embedded.context.features_for(1, 5).shape == (5, 3)
    assert "context.embedding.weight" in embedded.state_dict()


def test_spline_flow_is_finite_far_outside_its_bound() -> None:
    """Inputs at +-1e6 pass the identity tails: finite values, logdets, log-densities and
    gradients, in float32 as trained."""
    layers = [{"type": "coupling", "mask": "alternating", "transform": {"type": "spline"}}] * 2
    flow = flowspec.compile(example_spec([2], layers, context={"classes": 2}))
    perturb_parameters(flow, 1.0)
    x = torch.tensor([[1e6, -1e6], [3.0, -3.0], [0.0, 1e6]], requires_grad=True)
    log_p = flow.log_prob(x, torch.tensor([0, 1, 0]))
    assert torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
    with torch.no_grad():
        z, _ = flow(x.detach(), torch.tensor([0, 1, 0]))
    assert math.isclose(float(z[0, 0]), 1e6) and math.isclose(float(z[2, 1]), 1e6)
