"""Optimisation passes are the same function: outputs, inverses and gradients equal with each
pass on and off to 1e-12 in float64, the same parameters under the same names, the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import flowspec
from flowspec.nn.oracles import (
    deterministic,
    example_context,
    example_inputs,
    perturb_parameters,
)
from flowspec.nn.passes import PASSES, FastMLP
from tests.catalogue import op_example_params
from tests.helpers import LARGE_SPECS, SPEC_FILES, example_spec

SETTINGS = [(), *[(name,) for name in PASSES], tuple(PASSES)]


def outputs(spec: Any, passes: tuple[str, ...]) -> tuple[list[torch.Tensor], Any]:
    """z, logdet, the inverse of z and every parameter's gradient, in float64."""
    flow = flowspec.compile(spec, passes=passes).double()
    generator = torch.Generator().manual_seed(5)
    x, c = example_inputs(flow, 32, generator), example_context(flow, 32, generator)
    with deterministic(flow):  # no dequantisation noise or rounding, batch norm in eval
        with torch.no_grad():
            flow(x, c)
        perturb_parameters(flow, scale=0.05, seed=3)
        z, logdet = flow(x, c)
        (z.square().sum() + logdet.sum()).backward()
        with torch.no_grad():
            back = flow.inverse(z, c)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in flow.parameters()]
    return [z.detach(), logdet.detach(), back, *grads], flow


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.shape == v.shape
        scale = max(1.0, float(v.abs().max()))
        assert float((u - v).abs().max()) <= 1e-12 * scale, i


def _specs() -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in SPEC_FILES if p.stem not in LARGE_SPECS]


@pytest.mark.parametrize("path", _specs())
@pytest.mark.parametrize("passes", SETTINGS[1:], ids="+".join)
def test_passes_keep_every_shipped_spec_the_same(path: Path, passes: tuple[str, ...]) -> None:
    want, plain = outputs(path, ())
    got, flow = outputs(path, passes)
    assert_same(got, want)
    assert list(flow.state_dict()) == list(plain.state_dict())
    assert [n for n, _ in flow.named_parameters()] == [n for n, _ in plain.named_parameters()]


@pytest.mark.parametrize(
    ("kind", "shape", "layers"),
    [p for p in op_example_params(rank=1) if "coupling" in p.values[0]],
)
def test_passes_keep_every_vector_coupling_in_the_catalogue_the_same(
    kind: str, shape: list[int], layers: list[dict]
) -> None:
    spec = example_spec(shape, layers)
    want, _ = outputs(spec, ())
    got, _ = outputs(spec, tuple(PASSES))
    assert_same(got, want)


def test_passes_apply_where_they_should_and_are_recorded() -> None:
    flow = flowspec.compile("specs/seed_moons.yaml", passes=tuple(PASSES))
    names = [s.name for s in flow.steps]
    assert flow.passes == {"fuse_towers": names, "kept_inputs": names}
    net = flow.steps[0].module.net
    assert isinstance(net, FastMLP) and net.fuse and net.kept.tolist() == [0]
    assert flow.steps[1].module.net.kept.tolist() == [1]  # alternating masks
    realnvp = flowspec.compile("specs/realnvp_moons.yaml")  # net_input half, shared trunk
    assert realnvp.passes == {"kept_inputs": []}
    assert flowspec.compile("specs/seed_moons.yaml", passes=()).passes == {}


def test_weights_files_are_the_same_and_load_either_way(tmp_path: Path) -> None:
    on = flowspec.compile("specs/seed_moons.yaml", passes=tuple(PASSES))
    off = flowspec.compile("specs/seed_moons.yaml", passes=())
    files = [flowspec.save(f, tmp_path / f"{i}.safetensors") for i, f in enumerate((on, off))]
    a, b = (load_file(f) for f in files)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert files[0].stat().st_size == files[1].stat().st_size
    loaded = flowspec.load(files[0], passes=())
    assert loaded.passes == {}
    x = torch.randn(8, 2)
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], on(x)[0], atol=1e-5)


def test_passes_work_with_invertible_memory() -> None:
    want, _ = outputs("specs/seed_moons.yaml", ())
    flow = flowspec.compile("specs/seed_moons.yaml", passes=tuple(PASSES)).double()
    flow.memory = "invertible"
    x = example_inputs(flow, 32, torch.Generator().manual_seed(5))
    with torch.no_grad():
        flow(x)
    perturb_parameters(flow, scale=0.05, seed=3)
    z, logdet = flow(x)
    (z.square().sum() + logdet.sum()).backward()
    assert_same([p.grad for p in flow.parameters()], want[3:])


def test_unknown_pass_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pass"):
        flowspec.compile("specs/seed_moons.yaml", passes=("fuse_everything",))


def test_spec_and_command_line_choose_the_passes(tmp_path: Path) -> None:
    from flowspec.cli import main

    spec = flowspec.load_spec("specs/seed_moons.yaml").model_dump(mode="json")
    spec["train"]["passes"] = ["fuse_towers"]
    flow = flowspec.compile(spec)
    assert list(flow.passes) == ["fuse_towers"]
    saved = flowspec.save(flow, tmp_path / "m.safetensors")
    assert list(flowspec.load(saved).passes) == ["fuse_towers"]  # the file's spec says so
    spec["train"]["passes"] = []
    assert flowspec.compile(spec).passes == {}
    args = ["train", "specs/realnvp_moons.yaml", "--steps", "1", "--no-figures", "--quiet"]
    assert main([*args, "--passes", "none", "--out", str(tmp_path / "a")]) == 0
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--passes", "fuse_everything"])
    assert exit_.value.code == 2
