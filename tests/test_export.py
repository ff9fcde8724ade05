"""flowspec export: the standalone .py reproduces flowspec bit for bit on every shipped spec and
every catalogue example; .pt2 and .onnx programs agree with the flow within float32 rounding."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import flowspec
from flowspec.errors import FlowspecError
from flowspec.exporters import export
from flowspec.exporters.pysource import python_source
from flowspec.nn.flow import Flow
from flowspec.nn.oracles import (
    deterministic,
    example_context,
    example_inputs,
    perturb_parameters,
)
from tests.catalogue import op_example_params
from tests.helpers import HUGE_SPECS, LARGE_SPECS, SPEC_FILES, example_spec, narrowed

MLP = {"type": "mlp", "hidden": [16], "activation": "tanh"}
ALLOWED_IMPORTS = {"__future__", "hashlib", "math", "pathlib", "torch", "safetensors"}


def prepared(spec: Any, n_init: int = 32, scale: float = 0.05) -> Flow:
    """A compiled flow after data-dependent init, moved off the identity."""
    flow = flowspec.compile(spec, seed=0)
    gen = torch.Generator().manual_seed(0)
    context = example_context(flow, n_init, gen)  # a conditional spec's (None otherwise)
    if context is not None and context.is_floating_point():
        context = context.float()
    with torch.no_grad():
        flow(example_inputs(flow, n_init, gen).float(), context)
    return perturb_parameters(flow, scale=scale, seed=3)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit equal, and finite (a comparison of NaNs would prove nothing)."""
    return torch.equal(a, b) and bool(torch.isfinite(a).all())


def generated(flow: Flow, tmp_path: Path, name: str) -> ModuleType:
    """Write the flow as source, check it imports no flowspec, and import it."""
    path = export(flow, tmp_path / f"{name}.py")
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}  # fmt: skip
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}  # fmt: skip
    assert imported <= ALLOWED_IMPORTS, imported
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass-free, but keep the import system's contract
    spec.loader.exec_module(module)
    return module


def assert_bit_for_bit(flow: Flow, model: torch.nn.Module, n: int = 3) -> None:
    """Same z, logdet, inverse, log_prob and samples under the same random state."""
    for mode in ("eval", "train"):
        flow.train(mode == "train")
        model.train(mode == "train")
        x = example_inputs(flow, n, torch.Generator().manual_seed(7)).float()
        with torch.no_grad():
            torch.manual_seed(11)
            z1, ld1 = flow(x)
            torch.manual_seed(11)
            z2, ld2 = model(x)
            assert same(z1, z2) and same(ld1, ld2), mode
    flow.eval()
    model.eval()
    with torch.no_grad():
        z = torch.randn(n, flow.dim)
        assert same(flow.inverse(z), model.inverse(z))
        torch.manual_seed(5)
        p1 = flow.log_prob(x)
        torch.manual_seed(5)
        assert same(p1, model.log_prob(x))
        torch.manual_seed(9)
        s1 = flow.sample(n, temperature=0.7)
        torch.manual_seed(9)
        assert same(s1, model.sample(n, temperature=0.7))


# Shipped specs with a context section: export refuses them (the generated file and the traced
# programs take no context); test_conditional_flows_refuse_export checks the refusal and that
# this list is exactly the conditional shipped specs, so no other spec can be skipped.
CONDITIONAL_SPECS = {"conditional_moons", "conditional_digits"}


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_python_source_reproduces_every_shipped_spec(path: Path, tmp_path: Path) -> None:
    if path.stem in CONDITIONAL_SPECS:
        pytest.skip(f"{path.stem} is conditional: export refuses it (checked below)")
    spec: Any = path
    if path.stem in HUGE_SPECS:  # written out at full size; run at narrow width (same structure)
        with torch.device("meta"):
            assert "class TokenTransformer" in python_source(flowspec.compile(path))
        spec = flowspec.load_spec(narrowed(yaml.safe_load(path.read_text())))
    large = path.stem in LARGE_SPECS - HUGE_SPECS
    flow = prepared(spec, n_init=4 if large else 32, scale=0.002 if large else 0.05)
    module = generated(flow, tmp_path, path.stem)
    cls = getattr(module, flowspec.exporters.pysource.class_name(flow.spec.name))
    if large:  # paper-scale: skip the 200 MB round trip through a file
        model = cls()
        model.load_state_dict(flow.state_dict())
    else:
        model = cls.from_file(flowspec.save(flow, tmp_path / "model.safetensors"))
    assert_bit_for_bit(flow, model, n=2 if large else 3)


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_python_source_reproduces_every_catalogue_example(
    kind: str, shape: list[int], layers: list[dict[str, Any]], tmp_path: Path
) -> None:
    # each example with one of the bases, in turn (all three are covered many times over)
    bases = ({"type": "normal"}, {"type": "diag_normal"}, {"type": "mixture"})
    for base in (bases[sum(map(ord, kind + str(shape))) % 3],):
        flow = prepared(example_spec(shape, layers, base=base))
        module = generated(flow, tmp_path, f"{kind}_{base['type']}")
        model = module.Example.from_file(flowspec.save(flow, tmp_path / "m.safetensors"))
        assert_bit_for_bit(flow, model)


def test_conditional_flows_refuse_export(tmp_path: Path) -> None:
    conditional = {p.stem for p in SPEC_FILES if flowspec.load_spec(p).context is not None}
    assert conditional == CONDITIONAL_SPECS
    flow = prepared("conditional_moons")
    for suffix in (".py", ".pt2", ".onnx"):
        with pytest.raises(FlowspecError) as exc:
            export(flow, tmp_path / f"m{suffix}")
        assert exc.value.codes == ["export-unsupported"]
        assert "conditional flow" in str(exc.value) and "context" in str(exc.value)
        assert not (tmp_path / f"m{suffix}").exists()  # nothing half-written


def test_generated_file_refuses_other_weights_and_keeps_float64(tmp_path: Path) -> None:
    flow = prepared("realnvp_moons").double()
    module = generated(flow, tmp_path, "moons")
    model = module.RealnvpMoons.from_file(flowspec.save(flow, tmp_path / "m.safetensors"))
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert_bit_for_bit(flow.float(), model.float())
    other = flowspec.save(prepared("nice_moons"), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="another spec"):
        module.RealnvpMoons.from_file(other)


def test_a_part_without_an_emitter_is_named(tmp_path: Path) -> None:
    flow = prepared("realnvp_moons")
    coupling = flow.steps[1].module

    class Custom(torch.nn.Module):  # a conditioner flowspec cannot write out
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    coupling.net = Custom()
    with pytest.raises(FlowspecError) as exc:
        python_source(flow)
    assert exc.value.codes == ["export-unsupported"]
    assert "the conditioner (Custom)" in str(exc.value) and ".onnx" in str(exc.value)


GLOWISH = example_spec(
    [1, 4, 4],
    [],
    preprocess=[{"type": "dequantize", "levels": 17}, {"type": "logit", "alpha": 0.05}],
    levels=[
        {"squeeze": True, "steps": [{"type": "actnorm"}, {"type": "invconv", "lu": True},
         {"type": "affine_coupling", "mask": "channel", "log_scale": "sigmoid",
          "net": {"type": "glow_conv", "channels": 8}}], "split": {"prior": "learned"}},
        {"steps": [{"type": "invconv", "lu": False},
                   {"type": "affine_coupling", "mask": "checkerboard", "net_input": "masked",
                    "net": {"type": "resnet", "channels": 4, "blocks": 1, "norm": "batch"}},
                   {"type": "batchnorm"}]},
    ],
    base={"type": "mixture", "components": 3},
)  # fmt: skip


VECTORS = example_spec(
    [3],
    [{"type": "actnorm"}, {"type": "affine_coupling", "mask": "alternating", "net": MLP},
     {"type": "permute", "order": "random"}, {"type": "additive_coupling", "mask": "odd",
     "net": MLP}, {"type": "invconv"}, {"type": "scale"}],
    base={"type": "diag_normal"},
)  # fmt: skip


SPLINE = {"type": "spline", "bins": 4, "bound": 2.0}
MADE = {"type": "made", "hidden": [8], "activation": "tanh"}
SPLINES_AND_AUTOREGRESSIVE = example_spec(
    [3],
    [{"type": "coupling", "mask": "alternating", "transform": SPLINE, "net": MLP},
     {"type": "autoregressive", "direction": "maf", "transform": SPLINE, "net": MADE},
     {"type": "autoregressive", "direction": "iaf", "order": "random", "net": MADE}],
)  # fmt: skip
PROGRAM_SPECS = pytest.mark.parametrize(
    "spec", [VECTORS, GLOWISH, SPLINES_AND_AUTOREGRESSIVE], ids=["vectors", "images", "spline-ar"]
)


@PROGRAM_SPECS
def test_pt2_programs_match_the_flow(spec: Any, tmp_path: Path) -> None:
    flow = prepared(spec)
    with deterministic(flow):  # no dequantisation noise: the outputs can be compared
        forward = torch.export.load(str(export(flow, tmp_path / "f.pt2"))).module()
        inverse = torch.export.load(str(export(flow, tmp_path / "i.pt2", inverse=True))).module()
        for n in (1, 5):  # the batch size is dynamic
            x = example_inputs(flow, n, torch.Generator().manual_seed(n)).float()
            with torch.no_grad():
                z, logdet = flow(x)
                got = forward(x)
                assert torch.allclose(got[0], z, atol=1e-5) and torch.allclose(
                    got[1], logdet, atol=1e-4
                )
                assert torch.allclose(got[2], flow.log_prob(x), atol=1e-4)
                assert torch.allclose(inverse(z), flow.inverse(z), atol=1e-4)


@PROGRAM_SPECS
def test_onnx_programs_match_the_flow(spec: Any, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    flow = prepared(spec)
    with deterministic(flow):
        forward = ort.InferenceSession(str(export(flow, tmp_path / "f.onnx")))
        inverse = ort.InferenceSession(str(export(flow, tmp_path / "i.onnx", inverse=True)))
        assert [i.name for i in forward.get_inputs()] == ["x"]
        assert [o.name for o in forward.get_outputs()] == ["z", "logdet", "log_prob"]
        for n in (1, 6):
            x = example_inputs(flow, n, torch.Generator().manual_seed(n)).float()
            with torch.no_grad():
                z, logdet = flow(x)
                expected = (z, logdet, flow.log_prob(x))
                x_back = flow.inverse(z)
            got = forward.run(None, {"x": x.numpy()})
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)
            back = inverse.run(None, {"z": z.numpy()})[0]
            np.testing.assert_allclose(back, x_back.numpy(), atol=1e-4, rtol=1e-4)


RUN_WITHOUT_FLOWSPEC = """
import importlib.util, sys
sys.modules["flowspec"] = None  # any import of flowspec fails
spec = importlib.util.spec_from_file_location("model", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
flow = module.RealnvpMoons.from_file(sys.argv[2]).eval()
print(tuple(flow.sample(5).shape), tuple(flow.log_prob(flow.sample(3)).shape))
"""


def test_cli_export_writes_each_format(tmp_path: Path) -> None:
    from flowspec.cli import main

    model = flowspec.save(prepared("realnvp_moons"), tmp_path / "m.safetensors")
    assert main(["export", str(model), "-o", str(tmp_path / "moons.py")]) == 0
    run = subprocess.run([sys.executable, "-c", RUN_WITHOUT_FLOWSPEC, str(tmp_path / "moons.py"),
                          str(model)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(5,", "2)", "(3,)"]
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if Path(ruff).exists():  # the generated files are clean, formatted Python
        files = [tmp_path / "moons.py"]
        for name in ("nsf_checkerboard", "maf_spirals"):  # the spline and MADE sources too
            files.append(export(flowspec.compile(name), tmp_path / f"{name}.py"))
        for check in (["check", "--select", "E,F,W,I,UP,B"], ["format", "--check"]):
            assert subprocess.run([ruff, *check, *map(str, files)],
                                  capture_output=True).returncode == 0  # fmt: skip
    for bad in (["-o", str(tmp_path / "m.txt")], ["-o", str(tmp_path / "m.py"), "--inverse"]):
        assert main(["export", str(model), *bad]) == 2  # usage errors
    small = flowspec.save(prepared(VECTORS), tmp_path / "small.safetensors")
    assert main(["export", str(small), "-o", str(tmp_path / "inverse.onnx"), "--inverse"]) == 0
    assert (tmp_path / "inverse.onnx").stat().st_size > 1000


def test_transformer_sources_are_clean_python(tmp_path: Path) -> None:
    """The generated TarFlow and Jet classes (the longest hand-written sources) pass the same
    lint and format checks as the rest of a generated file."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    paths = [str(export(flowspec.compile(name), tmp_path / f"{name}.py"))
             for name in ("tarflow_digits", "jet_digits")]  # fmt: skip
    for check in (["check", "--select", "E,F,W,I,UP,B"], ["format", "--check"]):
        run = subprocess.run([ruff, *check, *paths], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout
