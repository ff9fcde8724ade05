"""Regional compilation (``train: {compile: true}``): one compilation per distinct repeated
block, the same numbers as eager (float64, 1e-12) forward, backward and inverse."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

import flowspec
from flowspec.nn import regions
from flowspec.nn.oracles import example_context, example_inputs, perturb_parameters
from flowspec.nn.regions import compile_regions
from tests.helpers import LARGE_SPECS, SPEC_FILES


@pytest.fixture(autouse=True)
def quick_backend(monkeypatch: pytest.MonkeyPatch) -> Any:
    """aot_eager traces exactly what inductor would compile, without generating code."""
    monkeypatch.setattr(regions, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def prepared(spec: Any) -> tuple[flowspec.Flow, torch.Tensor]:
    """The flow and 16 inputs; a conditional flow's contexts ride along as ``flow.example_c``."""
    flow = flowspec.compile(spec).double()
    generator = torch.Generator().manual_seed(0)
    x = example_inputs(flow, 16, generator)
    flow.example_c = example_context(flow, 16, generator)
    with torch.no_grad():
        flow(x, flow.example_c)
    return perturb_parameters(flow, 0.05, 1), x


def run(flow: flowspec.Flow, x: torch.Tensor) -> list[torch.Tensor]:
    c = flow.example_c
    torch.manual_seed(3)
    flow.zero_grad()
    z, logdet = flow(x, c)
    (z.square().sum() + logdet.sum()).backward()
    with torch.no_grad():
        torch.manual_seed(4)
        samples = flow.sample(8, context=None if c is None else c[:8])
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in flow.parameters()]
    return [z.detach(), logdet.detach(), samples, *grads]


# Tracing is slow on a small machine: the shipped specs with repeats of every kind of body
# run in CI, the rest with the slow tests.
FAST = {"realnvp_moons", "seed_moons", "glow_digits", "tarflow_moons", "conditional_moons",
        "conditional_digits", "nsf_checkerboard", "maf_spirals"}  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=p.stem, marks=[] if p.stem in FAST else [pytest.mark.slow])
        for p in SPEC_FILES
        if p.stem not in LARGE_SPECS
    ],
)
def test_regions_compute_what_eager_computes(path: Path) -> None:
    flow, x = prepared(path)
    eager = copy.deepcopy(flow)
    info = compile_regions(flow)
    assert info["regions"] > 0
    want, got = run(eager, x), run(flow, x)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert [n for n, _ in flow.named_parameters()] == [n for n, _ in eager.named_parameters()]


def glow(k: int) -> dict[str, Any]:
    spec = flowspec.load_spec("specs/glow_digits.yaml").model_dump(mode="json")
    for level in spec["levels"]:
        level["steps"][0]["repeat"] = k
    return spec


def test_one_compilation_per_distinct_block_whatever_the_depth() -> None:
    counts = {}
    for k in (2, 4):
        torch._dynamo.reset()
        before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        flow, x = prepared(glow(k))
        info = compile_regions(flow)
        assert info == {
            "regions": 3 * k,
            "bodies": 3,
            "eager": [s.name for s in flow.steps if "body" not in s.path],
        }
        run(flow, x)
        counts[k] = torch._dynamo.utils.counters["stats"]["unique_graphs"] - before
    assert counts[4] == counts[2] > 0  # graphs traced: per distinct body, not per copy


def test_observers_still_see_every_step() -> None:
    flow, x = prepared("specs/realnvp_moons.yaml")
    compile_regions(flow)
    assert len(flow.schedule) < len(flow.steps)
    seen: list[str] = []
    flow.run_forward(x, observe=lambda step, outs, ld: seen.append(step.name))
    assert seen == flow.step_names
    assert flow.first_nonfinite(x) is None


def test_training_compiles_when_asked(tmp_path: Path) -> None:
    from flowspec.cli import main

    calls = []
    real = regions.compile_regions

    def spy(flow: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(flow)
        return real(flow, *args, **kwargs)

    regions.compile_regions = spy  # restored below
    try:
        rc = main(
            ["train", "specs/realnvp_moons.yaml", "--steps", "3", "--compile", "--no-figures",
             "--out", str(tmp_path)]
        )  # fmt: skip
    finally:
        regions.compile_regions = real
    assert rc == 0 and len(calls) == 1
    assert any(step.kind == "region" for step in calls[0].schedule)
