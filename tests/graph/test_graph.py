"""The IR: structure, verifier passes (on hand-broken graphs), mixing analysis, rendering."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

import flowspec
from flowspec.errors import GraphError
from flowspec.graph import FlowGraph, check_graph
from flowspec.nn.oracles import example_context, perturb_parameters
from tests.catalogue import MLP, TOKENS, VIT
from tests.helpers import ROOT, example_spec

MOONS = "specs/realnvp_moons.yaml"


def test_graph_nodes_edges_and_latents() -> None:
    graph = flowspec.build_graph(MOONS)
    ops = list(graph.ops())
    assert [op.kind for op in ops[:2]] == ["actnorm", "affine_coupling"]
    repeats = flowspec.load_spec(MOONS).layers[0].repeat  # the spec is tuned; count its repeats
    assert len(ops) == 2 * repeats and graph.latents == ("z",)
    assert ops[1].spec_path == ("layers", 0, "body", 1) and ops[1].name == "layers.0.0.1"
    assert ops[1].path == "layers.0.body.1" and graph.op("layers.0.0.1") is ops[1]
    assert [op.params["mask"] for op in ops[1:4:2]] == [(1, 0), (0, 1)]
    assert all(d["shape"] == (2,) for _, _, d in graph.graph.edges(data=True))
    assert graph.lint() == [] and graph.input_shape == (2,) and graph.name == "realnvp_moons"


def test_str_is_the_text_rendering() -> None:
    graph = flowspec.build_graph(MOONS)
    assert str(graph) == flowspec.format_graph(graph)


def _break(flow_graph: FlowGraph, how: str) -> FlowGraph:
    broken = flow_graph.graph.copy()
    first = next(flow_graph.ops()).name
    if how == "cycle":
        broken.add_edge("z", first, src_port=0, shape=(2,))
    elif how == "orphan":
        broken.add_node("orphan", kind="latent", shape=(2,))
    elif how == "ports":
        broken.add_edge("x", "z", src_port=0, shape=(2,))
    elif how == "shape":
        ((u, v, k),) = [(u, v, k) for u, v, k in broken.in_edges(first, keys=True)]
        broken.edges[u, v, k]["shape"] = (3,)
    elif how == "kind":
        broken.nodes[first]["kind"] = "mystery"
        op = broken.nodes[first]["op"]
        broken.nodes[first]["op"] = type(op)(**{**op.__dict__, "kind": "mystery"})
    elif how == "dimension":
        broken.nodes["z"]["shape"] = (3,)
    elif how == "latent":
        broken.add_node("after", kind="latent", shape=(2,))
        broken.add_edge("z", "after", src_port=0, shape=(2,))
    elif how == "input":
        broken.add_node("x2", kind="input", shape=(2,))
        broken.add_edge("x2", first, src_port=0, shape=(2,))
    return dataclasses.replace(flow_graph, graph=broken)


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("cycle", "graph-cycle"),
        ("orphan", "graph-disconnected"),
        ("ports", "graph-ports"),
        ("shape", "graph-shape"),
        ("kind", "graph-op"),
        ("dimension", "graph-dimension"),
        ("latent", "graph-latent"),
        ("input", "graph-input"),
    ],
)
def test_verifier_catches_broken_graphs(how: str, code: str) -> None:
    broken = _break(flowspec.build_graph(MOONS), how)
    assert code in {p.code for p in broken.lint()}
    with pytest.raises(GraphError) as info:
        check_graph(broken)
    assert code in info.value.codes


def _brute_force_dependencies(spec: dict) -> torch.Tensor:
    """Sparsity of the autograd Jacobian dz/dx of a compiled flow with random weights (at a
    fixed random context for a conditional flow)."""
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.5, seed=0)
    flow.eval()
    x = torch.randn(flow.input_shape, dtype=torch.float64)
    c = example_context(flow, 1)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v[None], c)[0][0], x)
    return (jac.reshape(jac.shape[0], -1).abs() > 1e-12).int()


MIXING_CASES = {
    "couplings": example_spec(
        [4],
        [
            {"type": "affine_coupling", "mask": "first_half", "net": MLP},
            {"type": "permute", "order": "random"},
            {"type": "affine_coupling", "mask": "even", "net": MLP},
        ],
    ),
    "image": example_spec(
        [2, 4, 4],
        [
            {"type": "squeeze"},
            {"type": "invconv"},
            {
                "type": "affine_coupling",
                "mask": "channel",
                "net": {"type": "glow_conv", "channels": 8},
            },
            {"type": "split", "prior": "standard"},
            {
                "type": "affine_coupling",
                "mask": "channel_second",
                "net": {"type": "glow_conv", "channels": 8},
            },
        ],
    ),
    "tarflow": example_spec(
        [1, 4, 4],
        [
            TOKENS,
            {"type": "tarflow", "width": 8, "heads": 2, "depth": 1, "clip": 2.0},
            {"type": "permute", "order": "random"},
            {
                "type": "tarflow",
                "width": 8,
                "heads": 2,
                "order": "reverse",
                "start": "learned",
                "log_scale": "softplus",
            },
        ],
    ),
    "tarflow-invconv": example_spec(
        [2, 2, 4],
        [
            TOKENS,
            {"type": "actnorm"},
            {"type": "invconv"},
            {"type": "tarflow", "width": 8, "heads": 2, "depth": 1, "clip": 2.0},
        ],
    ),
    "tarflow-one-block": example_spec(
        [2, 2, 4], [TOKENS, {"type": "tarflow", "width": 8, "heads": 2, "clip": 2.0}]
    ),
    "jet": example_spec(
        [1, 4, 8],
        [
            TOKENS,
            {"type": "affine_coupling", "mask": "random_channel", "net": VIT},
            {"type": "affine_coupling", "mask": "vstripes", "log_scale": "sigmoid2", "net": VIT},
        ],
    ),
    "jet-masked": example_spec(
        [1, 4, 4],
        [
            TOKENS,
            {"type": "affine_coupling", "mask": "hstripes_odd", "net_input": "masked", "net": VIT},
        ],
    ),
}


TANH = {"activation": "tanh"}  # ReLU units can be off at the test point: zeros by chance
MIXING_CASES.update(
    {
        "maf-iaf": example_spec(
            [5],
            [
                {"type": "autoregressive", "order": "random", "net": {"hidden": [8, 8], **TANH}},
                {
                    "type": "autoregressive",
                    "direction": "iaf",
                    "order": [3, 1, 4, 0, 2],
                    "transform": {"type": "spline", "bins": 3, "bound": 8.0},  # no tails here
                    "net": {"hidden": [6], **TANH},
                },
            ],
        ),
        "narrow-made": example_spec(
            [5],
            [{"type": "autoregressive", "order": "reversed", "net": {"hidden": [2, 3], **TANH}}],
        ),
        "narrow-iaf": example_spec(
            [5],
            [
                {"type": "autoregressive", "direction": "iaf", "net": {"hidden": [2], **TANH}},
                {"type": "permute", "order": "random"},
                {"type": "coupling", "mask": "even", "net": MLP},
            ],
        ),
        "conditional-image": example_spec(
            [2, 4, 4],
            [
                {
                    "type": "coupling",
                    "mask": "checkerboard",
                    "net_input": "masked",
                    "net": {"type": "glow_conv", "channels": 8},
                },
                {"type": "split", "prior": "learned"},
            ],
            context={"classes": 3},
        ),
    }
)


@pytest.mark.parametrize("case", MIXING_CASES)
def test_mixing_analysis_matches_jacobian_sparsity(case: str) -> None:
    spec = MIXING_CASES[case]
    report = flowspec.build_graph(spec).mixing
    analysed = torch.tensor(report.matrix())
    brute = _brute_force_dependencies(spec)
    # With generic random weights every conditioner output depends on its whole receptive field,
    # so the analysis must equal the Jacobian's sparsity pattern exactly.
    assert torch.equal(analysed, brute), (analysed, brute)


def test_mixing_warnings_carry_spec_lines() -> None:
    text = """flowspec: 1
input: {shape: [4]}
layers:
  - type: affine_coupling
    mask: first_half
  - type: actnorm
  - type: affine_coupling
    mask: first_half
"""
    graph = flowspec.build_graph(text)
    warnings = {w.code: w for w in graph.warnings}
    assert warnings["same-mask"].path == "layers.2" and warnings["same-mask"].location.line == 8
    assert warnings["never-mixed"].severity == "warning"
    assert "latent index 0, 1" in warnings["never-mixed"].message
    full = flowspec.build_graph(
        text.replace(
            "mask: first_half\n  - type: actnorm", "mask: second_half\n  - type: actnorm", 1
        )
    )
    assert not full.warnings


def test_seed_moons_mixes_fully_after_two_couplings() -> None:
    report = flowspec.build_graph("specs/seed_moons.yaml").mixing
    assert report.full_after == "layers.0.1" + ".0"
    assert report.matrix() == [[1, 1], [1, 1]]


def test_renderers() -> None:
    graph = flowspec.build_graph(MOONS)
    text = flowspec.format_graph(graph)
    assert "layers.0.0.1" in text and "affine_coupling" in text and "mask 10" in text
    assert "every latent element depends on all 2 inputs" in text
    dot = flowspec.to_dot(graph)
    edges = graph.graph.number_of_edges()
    assert dot.startswith('digraph "realnvp_moons"') and dot.count("->") == edges
    mermaid = flowspec.to_mermaid(graph)
    assert mermaid.startswith("flowchart TD") and mermaid.count("-->") == edges


CONDITIONAL = """flowspec: 1
input: {shape: [4]}
context: {shape: [3]}
base: {type: conditional_normal}
layers:
  - {type: autoregressive, direction: iaf, order: random, net: {hidden: [8]}}
  - {type: actnorm}
  - {type: coupling, mask: first_half, transform: {type: spline}}
"""


def test_the_context_is_an_input_node_with_an_edge_to_each_conditioner() -> None:
    graph = flowspec.build_graph(CONDITIONAL)
    assert graph.conditional and graph.graph.nodes["c"]["kind"] == "context"
    assert graph.graph.nodes["c"]["shape"] == (3,)
    assert graph.context_users() == ["layers.0", "layers.2"]
    assert graph.source_of("layers.0") == ("x", 0) and graph.lint() == []
    assert graph.mixing.context_deps == (True,) * 4
    text = flowspec.format_graph(graph)
    assert "context: vector [3]" in text and "latent <- inputs | context" in text
    assert text.count(" | c\n") + text.count(" | c\ncontext") >= 4
    assert "feeds 2 op(s) and the base (conditional_normal)" in text
    assert "passes: forward 4, inverse 1" in text and "4 of 4 depend on the context" in text
    assert flowspec.to_dot(graph).count("style=dashed") == 2
    assert flowspec.to_mermaid(graph).count("-.->") == 2
    plain = flowspec.build_graph(MOONS)
    assert not plain.conditional and plain.mixing.context_deps is None
    assert "depend on the context" not in flowspec.format_graph(plain)


def _break_context(graph: FlowGraph, how: str) -> FlowGraph:
    broken = graph.graph.copy()
    if how == "lost-edge":
        broken.remove_edge("c", "layers.0")
    elif how == "extra-edge":
        broken.add_edge("c", "layers.1", src_port=0, shape=(3,), context=True)
    elif how == "data-edge":
        broken.add_edge("layers.0", "layers.2", src_port=0, shape=(4,), context=True)
    elif how == "no-node":
        broken.remove_node("c")
    return dataclasses.replace(graph, graph=broken)


@pytest.mark.parametrize("how", ["lost-edge", "extra-edge", "data-edge", "no-node"])
def test_verifier_checks_the_context_edges(how: str) -> None:
    broken = _break_context(flowspec.build_graph(CONDITIONAL), how)
    with pytest.raises(GraphError) as info:
        check_graph(broken)
    assert "graph-context" in info.value.codes


def test_a_context_only_the_base_uses_is_valid() -> None:
    text = CONDITIONAL.split("layers:")[0] + "layers: [{type: actnorm}, {type: permute}]\n"
    graph = flowspec.build_graph(text)
    assert graph.context_users() == [] and graph.mixing.context_count() == 0
    assert "feeds 0 op(s) and the base" in flowspec.format_graph(graph)


def test_building_a_graph_does_not_import_torch() -> None:
    code = (
        "import sys, flowspec; g = flowspec.build_graph('specs/seed_moons.yaml'); "
        "flowspec.format_graph(g); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_paper_size_transformer_flows_validate_without_torch() -> None:
    code = (
        "import sys, flowspec\n"
        "for name in ('tarflow_imagenet64', 'jet_imagenet64'):\n"
        "    g = flowspec.build_graph(f'specs/{name}.yaml')\n"
        "    assert g.latent_size() == 3 * 64 * 64 and not g.warnings, name\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
