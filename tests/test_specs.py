"""Every spec shipped in specs/ and examples/ validates, compiles and passes the oracles."""

from __future__ import annotations

import math
from pathlib import Path

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
from tests.helpers import HUGE_SPECS, LARGE_SPECS, ROOT, SPEC_FILES

SMALL = [p for p in SPEC_FILES if p.stem not in LARGE_SPECS]


def test_specs_are_shipped() -> None:
    names = {p.stem for p in SPEC_FILES}
    assert {"nice_moons", "realnvp_moons", "seed_moons"} <= names


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_validates_and_compiles(path: Path) -> None:
    graph = flowspec.build_graph(path)
    assert graph.latent_size() == math.prod(graph.input_shape) == math.prod(graph.spec.input.shape)
    with torch.device("meta" if path.stem in HUGE_SPECS else "cpu"):
        flow = flowspec.compile(path)
    assert flow.num_parameters() > 0


# Parameter counts of the paper-size transformer flows against their sources (the spec comments
# say where each number comes from and why the two differ).
PAPER_COUNTS = {
    "tarflow_imagenet64": 460_142_784,  # apple/ml-tarflow transformer_flow.py, 2-768-8-8
    "jet_imagenet64": 207_177_216,  # big_vision jet.py with configs/proj/jet/imagenet64.py
}


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_paper_size_transformer_flows_match_their_sources(name: str) -> None:
    with torch.device("meta"):
        flow = flowspec.compile(ROOT / "specs" / f"{name}.yaml")
    count = flow.num_parameters()
    assert abs(count / PAPER_COUNTS[name] - 1) < 0.02, count
    assert f"{count:,}" in (ROOT / "specs" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
def test_spec_round_trip_and_logdet(path: Path) -> None:
    flow = flowspec.compile(path).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        flow(example_inputs(flow, 64, gen), example_context(flow, 64, gen))
    perturb_parameters(flow, scale=0.05, seed=1)
    with deterministic(flow):
        gen = torch.Generator().manual_seed(2)
        x, c = example_inputs(flow, 2, gen), example_context(flow, 2, gen)
        with torch.no_grad():
            z, logdet = flow(x, c)
            assert (flow.inverse(z, c) - x).abs().max() < 1e-8
        oracle = jacobian_logdet(flow, x, c)
    assert torch.allclose(logdet, oracle, atol=1e-8 * (1 + float(oracle.abs().max())), rtol=0)


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
def test_save_load_gives_identical_outputs(path: Path, tmp_path: Path) -> None:
    flow = flowspec.compile(path)
    with torch.no_grad():  # data-dependent init happens before saving
        flow(example_inputs(flow, 32).float(), example_context(flow, 32))
    perturb_parameters(flow, scale=0.05, seed=3)
    file = flowspec.save(flow, tmp_path / "m.safetensors")
    loaded = flowspec.load(file)
    with deterministic(flow), deterministic(loaded), torch.no_grad():
        x, c = example_inputs(flow, 8).float(), example_context(flow, 8)
        z1, ld1 = flow(x, c)
        z2, ld2 = loaded(x, c)
    assert torch.equal(z1, z2) and torch.equal(ld1, ld2)
    assert loaded.spec.model_dump() == flow.spec.model_dump()


def test_seed_moons_matches_the_course_notebook() -> None:
    """8 affine couplings, masks [1,0]/[0,1], separate 256-256 towers: 1,073,184 parameters."""
    flow = flowspec.compile(ROOT / "specs" / "seed_moons.yaml")
    assert flow.num_parameters() == 1_073_184
    couplings = [step.module for step in flow.steps if step.kind == "affine_coupling"]
    assert len(couplings) == 8
    assert [c.b.flatten().tolist() for c in couplings[:2]] == [[1.0, 0.0], [0.0, 1.0]]
    assert all(sum(p.numel() for p in c.parameters()) == 134_148 for c in couplings)
