"""The IR: structure, verifier passes (on hand-broken graphs), mixing analysis, rendering."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import flowspec
from flowspec.graph.checks import run_checks
from flowspec.graph.ir import op_nodes
from flowspec.numerics import perturb_parameters
from tests.conftest import MLP, ROOT, example_spec

MOONS = "specs/realnvp_moons.yaml"


def test_graph_nodes_edges_and_latents() -> None:
    graph = flowspec.build_graph(MOONS)
    ops = list(op_nodes(graph))
    assert [op.kind for op in ops[:2]] == ["actnorm", "affine_coupling"]
    repeats = flowspec.load_spec(MOONS).layers[0].repeat  # the spec is tuned; count its repeats
    assert len(ops) == 2 * repeats and graph.graph["latents"] == ["z"]
    assert ops[1].spec_path == ("layers", 0, "body", 1) and ops[1].name == "layers.0.0.1"
    assert [op.params["mask"] for op in ops[1:4:2]] == [(1, 0), (0, 1)]
    assert all(d["shape"] == (2,) for _, _, d in graph.edges(data=True))
    assert run_checks(graph) == []


def _break(graph, how: str):
    broken = graph.copy()
    first = next(op_nodes(broken)).name
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
    return broken


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("cycle", "graph-cycle"),
        ("orphan", "graph-disconnected"),
        ("ports", "graph-ports"),
        ("shape", "graph-shape"),
        ("kind", "graph-op"),
        ("dimension", "graph-dimension"),
    ],
)
def test_verifier_catches_broken_graphs(how: str, code: str) -> None:
    problems = run_checks(_break(flowspec.build_graph(MOONS), how))
    assert code in {p.code for p in problems}


def _brute_force_dependencies(spec: dict) -> torch.Tensor:
    """Sparsity of the autograd Jacobian dz/dx of a compiled flow with random weights."""
    flow = perturb_parameters(flowspec.compile(spec).double(), scale=0.5, seed=0)
    flow.eval()
    x = torch.randn(flow.input_shape, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x)
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
}


@pytest.mark.parametrize("case", MIXING_CASES)
def test_mixing_analysis_matches_jacobian_sparsity(case: str) -> None:
    spec = MIXING_CASES[case]
    report = flowspec.build_graph(spec).graph["mixing"]
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
    warnings = {w.code: w for w in graph.graph["warnings"]}
    assert warnings["same-mask"].path == "layers.2" and warnings["same-mask"].location.line == 8
    assert warnings["never-mixed"].severity == "warning"
    assert "latent index 0, 1" in warnings["never-mixed"].message
    full = flowspec.build_graph(
        text.replace(
            "mask: first_half\n  - type: actnorm", "mask: second_half\n  - type: actnorm", 1
        )
    )
    assert not full.graph["warnings"]


def test_seed_moons_mixes_fully_after_two_couplings() -> None:
    report = flowspec.build_graph("specs/seed_moons.yaml").graph["mixing"]
    assert report.full_after == "layers.0.1" + ".0"
    assert report.matrix() == [[1, 1], [1, 1]]


def test_renderers() -> None:
    graph = flowspec.build_graph(MOONS)
    text = flowspec.format_graph(graph)
    assert "layers.0.0.1" in text and "affine_coupling" in text and "mask 10" in text
    assert "every latent element depends on all 2 inputs" in text
    dot = flowspec.to_dot(graph)
    assert dot.startswith('digraph "realnvp_moons"') and dot.count("->") == graph.number_of_edges()
    mermaid = flowspec.to_mermaid(graph)
    assert mermaid.startswith("flowchart TD") and mermaid.count("-->") == graph.number_of_edges()


def test_building_a_graph_does_not_import_torch() -> None:
    code = (
        "import sys, flowspec; g = flowspec.build_graph('specs/seed_moons.yaml'); "
        "flowspec.format_graph(g); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
