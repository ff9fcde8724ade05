"""The cost report (``flowspec graph --cost``) against torch: parameters and tensor names exactly
as in the compiled flow's state dict, forward FLOPs against ``torch.utils.flop_counter``,
saved-for-backward memory against saved-tensor hooks (total and per block, plain and
invertible), the file size against the file ``flowspec.save`` writes; and the refusal of a
training job that cannot fit.
"""

from __future__ import annotations

import collections
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import flowspec
from flowspec.errors import TrainingError
from flowspec.graph.cost import cost_report
from flowspec.layers import ALL_OPS, OPS
from flowspec.layers.cost import CostContext
from flowspec.nn.oracles import example_context, example_inputs
from flowspec.nn.saved_memory import SavedTensorMeter
from tests.catalogue import op_example_params
from tests.helpers import (
    HUGE_SPECS,
    LARGE_SPECS,
    ROOT,
    SPEC_FILES,
    example_spec,
    one_thread_per_module,
)

N = 64  # examples per measurement: per-batch constants (masks, statistics) stay below 1%


one_thread = one_thread_per_module()


def test_every_op_kind_has_a_cost_rule() -> None:
    assert all(op.cost is not None for op in ALL_OPS)


def prepared(spec: Any) -> tuple[flowspec.Flow, torch.Tensor]:
    """The flow and N inputs; a conditional flow's contexts ride along as ``flow.example_c``."""
    flow = flowspec.compile(spec)
    generator = torch.Generator().manual_seed(0)
    x = example_inputs(flow, N, generator).float()
    c = example_context(flow, N, generator)
    flow.example_c = c.float() if c is not None and c.is_floating_point() else c  # labels stay
    with torch.no_grad():
        flow(x, flow.example_c)  # data-dependent init
    return flow, x


def _cpu_attention_flops(q: Any, k: Any, v: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(q, k, v)


# torch's counter has a formula for its CUDA attention kernels but none for the CPU one; this
# gives the CPU kernel the same (the two products, 4 * N * heads * T_q * T_k * head_width).
CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def measured_flops(flow: flowspec.Flow, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter, torch.no_grad():
        flow.log_prob(x, flow.example_c)
    return counter.get_total_flops() / len(x)


def measured_saved(flow: flowspec.Flow, x: torch.Tensor, memory: str) -> float:
    """Elements per example of the distinct storages a training step keeps (the oracle)."""
    flow.memory = memory
    with SavedTensorMeter(exclude=flow.parameters()) as meter:
        loss = -flow.log_prob(x, flow.example_c).mean()
    if loss.requires_grad:
        loss.backward()
    flow.memory = "plain"
    return meter.nbytes / 4 / len(x)


def saved_per_block(flow: flowspec.Flow, x: torch.Tensor) -> dict[str, float]:
    """Plain mode: each storage attributed to the top-level block of the step that saved it
    first (the base's own to ``base``), elements per example."""
    exclude = {p.untyped_storage().data_ptr() for p in flow.parameters()}
    order = [".".join(s.name.split(".")[:2]) for s in flow.steps] + ["base"]
    index = {id(s): i for i, s in enumerate(flow.steps)}
    current = [0]
    seen: set[int] = set()
    totals: dict[str, float] = collections.defaultdict(float)

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in exclude and ptr not in seen:
            seen.add(ptr)
            totals[order[current[0]]] += t.untyped_storage().nbytes() / 4 / len(x)
        return t

    def observe(step: Any, outs: Any, logdet: Any) -> None:
        current[0] = index[id(step)] + 1

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        features = flow.context_features(flow.example_c, len(x))
        z, logdet = flow._walk(x, features, observe)
        loss = -(flow.base.log_prob(z, features) + logdet).mean()
    loss.backward()
    return totals


def _small_specs() -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in SPEC_FILES if p.stem not in LARGE_SPECS]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in SPEC_FILES])
def test_tensors_params_and_file_size_are_exact(path: Path, tmp_path: Path) -> None:
    report = cost_report(flowspec.build_graph(path))
    huge = path.stem in HUGE_SPECS  # on the meta device: a 1.7 GB file proves nothing more
    with torch.device("meta" if huge else "cpu"):
        flow = flowspec.compile(path)
    assert report.params == flow.num_parameters()
    assert {t.name: t.shape for t in report.tensors} == {
        k: tuple(v.shape) for k, v in flow.state_dict().items()
    }
    if huge:
        return
    assert report.file_bytes == flowspec.save(flow, tmp_path / "m.safetensors").stat().st_size


@pytest.mark.parametrize("path", _small_specs())
def test_flops_and_saved_memory_of_every_shipped_spec(path: Path) -> None:
    report = cost_report(flowspec.build_graph(path))
    flow, x = prepared(path)
    assert report.flops + report.flops_batch / N == pytest.approx(measured_flops(flow, x), rel=0.05)
    for memory in ("plain", "invertible"):
        once = report.saved_batch / N if memory == "plain" else 0  # e.g. an LU-built weight
        assert report.saved[memory] + once == pytest.approx(
            measured_saved(flow, x, memory), rel=0.1
        )
    blocks = saved_per_block(flow, x)
    assert set(blocks) <= {b.name for b in report.blocks}
    for block in report.blocks:
        want = block.saved["plain"] + block.saved_batch / N
        assert want == pytest.approx(blocks.get(block.name, 0), rel=0.1, abs=4)


TOKENS_VIT = {"type": "vit", "width": 8, "depth": 1, "heads": 2}


@pytest.mark.parametrize(
    "context", [{"classes": 3, "embedding": 2}, {"shape": [3]}], ids=["classes", "vector"]
)
def test_conditional_transformer_blocks(context: dict) -> None:
    """TarFlow blocks and a Jet coupling reading the context: each transformer's context map
    (tensors, FLOPs) and the features it keeps are counted, plain and invertible."""
    spec = example_spec(
        [1, 4, 4],
        [
            {"type": "patchify", "patch": 2},
            {"type": "tarflow", "width": 8, "depth": 1, "heads": 2, "start": "learned"},
            {"type": "affine_coupling", "mask": "checkerboard", "net": TOKENS_VIT},
            {"type": "coupling", "mask": "channel", "net": TOKENS_VIT},
            {"type": "tarflow", "width": 8, "depth": 2, "heads": 2, "order": "reverse"},
        ],
        context=context,
    )
    report = cost_report(flowspec.build_graph(spec))
    flow, x = prepared(spec)
    tensors = {k: tuple(v.shape) for k, v in flow.state_dict().items()}
    assert {t.name: t.shape for t in report.tensors} == tensors
    assert sum(name.endswith("proj_context.weight") for name in tensors) == 4
    assert report.params == flow.num_parameters()
    assert report.flops + report.flops_batch / N == pytest.approx(measured_flops(flow, x), rel=0.05)
    for memory in ("plain", "invertible"):
        assert report.saved[memory] == pytest.approx(measured_saved(flow, x, memory), rel=0.1)


@pytest.mark.parametrize(("kind", "shape", "layers"), op_example_params())
def test_every_catalogue_op(kind: str, shape: list[int], layers: list[dict]) -> None:
    """One op on data (its input needs no gradient), and the same op's rule for an input that
    does, against the measurement with ``x.requires_grad_()``."""
    spec = example_spec(shape, layers)
    graph = flowspec.build_graph(spec)
    report = cost_report(graph)
    flow, x = prepared(spec)
    assert {t.name: t.shape for t in report.tensors} == {
        k: tuple(v.shape) for k, v in flow.state_dict().items()
    }
    flops = measured_flops(flow, x)
    assert report.flops + report.flops_batch / N == pytest.approx(flops, rel=0.05)
    once = report.saved_batch / N
    got = measured_saved(flow, x, "plain")
    assert report.saved["plain"] + once == pytest.approx(got, rel=0.1, abs=1)
    # the op's rule (and those of the ops before it, e.g. a patchify making tokens; a storage
    # named "input" is each op's own input, anything else local to the op)
    local: dict[Any, int] = {}
    batch = 0
    for i, op in enumerate(graph.ops()):
        rule = OPS[op.kind].cost(op.spec, CostContext(op.in_shape, op.out_shapes, op.params, True))
        batch += rule.saved_batch
        for j, saved in enumerate(rule.saved):
            local[(i, saved.storage if saved.storage != "new" else j)] = saved.elements
    want = sum(local.values()) + math.prod(shape) + batch / N  # + the base's z
    got = measured_saved(flow, x.clone().requires_grad_(), "plain")
    assert want == pytest.approx(got, rel=0.1, abs=1)


def test_cost_scales_to_large_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-op rules, no per-element work: a 3x256x256 Glow costs in well under a second (the
    mixing analysis, which is not what is measured here, is skipped)."""
    import time

    import flowspec.graph.build

    monkeypatch.setattr(flowspec.graph.build, "check_graph", lambda graph: graph)
    spec = flowspec.load_spec(ROOT / "specs" / "glow_cifar10.yaml").model_dump(mode="json")
    spec["input"]["shape"] = [3, 256, 256]
    spec["levels"] = spec["levels"] * 2  # 6 levels: 256 -> 4
    for level in spec["levels"][:-1]:
        level["split"] = {"prior": "learned"}
    graph = flowspec.build_graph(spec)
    start = time.perf_counter()
    report = cost_report(graph)
    assert time.perf_counter() - start < 1.0
    assert report.saved["plain"] > 1000 * report.saved["invertible"]


def test_graph_cost_command_is_torch_free() -> None:
    code = (
        "import sys; from flowspec.cli import main; "
        "rc = main(['graph', 'specs/glow_digits.yaml', '--cost', '--batch', '64']); "
        "print(rc, 'torch' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert run.stdout.splitlines()[-1] == "0 False"
    assert "157,140" in run.stdout  # the parameter count
    assert "levels.2" in run.stdout and "memory invertible" in run.stdout
    assert "665,970 bytes" in run.stdout  # the file `flowspec compile` writes


def test_training_that_cannot_fit_is_refused_with_the_numbers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flowspec.cli import main
    from flowspec.training import budget

    monkeypatch.setattr(budget, "available_memory", lambda device: 2 * 2**20)
    spec = tmp_path / "big.yaml"
    text = (ROOT / "specs" / "glow_digits.yaml").read_text()
    spec.write_text(text)
    with pytest.raises(TrainingError) as error:
        flowspec.train(spec, out_dir=None)
    (diagnostic,) = error.value.diagnostics
    assert diagnostic.code == "memory-exceeded" and diagnostic.path == "train.batch_size"
    assert diagnostic.location is not None
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "batch_size" in s)
    assert diagnostic.location.line == line
    assert "2.00 MiB free" in diagnostic.message and "batch 64" in diagnostic.message
    assert "invertible" in diagnostic.hint
    # invertible memory fits where plain does not
    assert main(["train", str(spec), "--steps", "1", "--out", str(tmp_path / "a")]) == 1
    monkeypatch.setattr(budget, "available_memory", lambda device: 5 * 2**20)
    rc = main(["train", str(spec), "--steps", "1", "--memory", "invertible", "--no-figures",
               "--quiet", "--out", str(tmp_path / "b")])  # fmt: skip
    assert rc == 0
