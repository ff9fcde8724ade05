"""The trainer through its Python API: schedule, exact resume, interrupts, NaN, early stopping."""

from __future__ import annotations

import io
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import flowspec
from flowspec.data import load_splits
from flowspec.errors import DataError, FlowspecError, TrainingError, WeightsError
from flowspec.io import read_weights
from flowspec.nn.oracles import perturb_parameters
from flowspec.spec.training import TrainSpec
from flowspec.training import train
from flowspec.training.checkpoint import read_state
from flowspec.training.evaluate import Score, evaluate
from flowspec.training.figures import flow_stages
from flowspec.training.progress import Progress
from flowspec.training.schedule import learning_rate
from flowspec.training.setup import resolve_device

MLP = {"type": "mlp", "hidden": [8]}


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models run fastest on one thread (and a shared machine makes two thrash)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def continuous_spec(data: Path) -> dict[str, Any]:
    """A tiny RealNVP on 2-D points: actnorm (data-dependent init) and affine couplings."""
    body = [{"type": "actnorm"}, {"type": "affine_coupling", "mask": "alternating", "net": MLP}]
    return {"flowspec": 1, "name": "tiny", "input": {"shape": [2]},
            "layers": [{"repeat": 2, "body": body}], "data": {"name": str(data)}}  # fmt: skip


def discrete_spec(data: Path) -> dict[str, Any]:
    """Integer data 0..7 in 4 dimensions: dequantisation draws noise from the global stream."""
    body = [{"type": "affine_coupling", "mask": "alternating", "net": MLP}, {"type": "actnorm"}]
    return {"flowspec": 1, "name": "tiny_discrete", "input": {"shape": [4]},
            "preprocess": [{"type": "dequantize", "levels": 8}, {"type": "logit"}],
            "layers": [{"repeat": 2, "body": body}], "data": {"name": str(data)}}  # fmt: skip


@pytest.fixture
def points(tmp_path: Path) -> Path:
    """200 noisy 2-D points: 160 train, 20 val, 20 test; 5 batches of 32 per epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)) * [1.0, 0.3] + [0.5, 0.0]
    np.save(tmp_path / "points.npy", x.astype(np.float32))
    return tmp_path / "points.npy"


@pytest.fixture
def integers(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "ints.npy", rng.binomial(7, 0.4, size=(200, 4)).astype(np.int64))
    return tmp_path / "ints.npy"


CONFIG = TrainSpec(epochs=4, batch_size=32, lr=1e-2, warmup_steps=3, val_every=4, seed=3)


def run_files(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[Any]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return load_file(out / "model.safetensors"), load_file(out / "last.safetensors"), rows


def assert_same_run(a: Path, b: Path) -> None:
    best_a, last_a, rows_a = run_files(a)
    best_b, last_b, rows_b = run_files(b)
    assert rows_a == rows_b
    assert best_a.keys() == best_b.keys() and last_a.keys() == last_b.keys()
    for key in best_a:
        assert torch.equal(best_a[key], best_b[key]), key
    for key in last_a:  # weights, Adam moments and random states alike
        assert torch.equal(last_a[key], last_b[key]), key


def test_schedule_warmup_then_cosine() -> None:
    cfg = TrainSpec(lr=2.0, min_lr=0.2, warmup_steps=4, schedule="cosine")
    lrs = [learning_rate(s, 104, cfg) for s in range(104)]
    assert lrs[:4] == [0.5, 1.0, 1.5, 2.0]
    assert lrs[4] == 2.0 and all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert math.isclose(lrs[54], 1.1) and lrs[-1] > 0.2
    assert learning_rate(50, 104, TrainSpec(lr=0.3, schedule="constant")) == 0.3


@pytest.mark.parametrize("which", ["continuous", "discrete"])
@pytest.mark.parametrize("stop", [7, 10])  # mid-epoch, and exactly at an epoch boundary
def test_resume_equals_uninterrupted(
    tmp_path: Path, points: Path, integers: Path, which: str, stop: int
) -> None:
    spec = continuous_spec(points) if which == "continuous" else discrete_spec(integers)
    full = train(spec, config=CONFIG, out_dir=tmp_path / "full", figures=False)
    assert full.status == "completed" and full.step == 20
    part = train(spec, config=CONFIG, out_dir=tmp_path / "part", stop_after=stop, figures=False)
    assert part.status == "stopped" and part.step == stop
    assert read_state(read_weights(tmp_path / "part" / "last.safetensors"))[0].step == stop
    rest = train(spec, config=CONFIG, out_dir=tmp_path / "part", resume=True, figures=False)
    assert rest.status == "completed" and rest.best_val_nll == full.best_val_nll
    assert_same_run(tmp_path / "full", tmp_path / "part")
    dim = 2 if which == "continuous" else 4  # bits/dim in every row, as eval reports it
    for row in full.history:
        assert row["bits_per_dim"] == pytest.approx(row["val_nll"] / (dim * math.log(2)))


class _Hook:
    """A progress reporter that calls ``action`` once, after optimizer step ``at``."""

    def __init__(self, at: int, action: Any) -> None:
        self.at, self.action = at, action

    def step(self, step: int, *rest: Any) -> None:
        if step == self.at:
            self.action()

    def record(self, row: dict[str, Any], best: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


def test_sigint_saves_and_resumes_exactly(tmp_path: Path, points: Path) -> None:
    spec = continuous_spec(points)
    train(spec, config=CONFIG, out_dir=tmp_path / "full", figures=False)
    hook = _Hook(6, lambda: os.kill(os.getpid(), signal.SIGINT))
    before = signal.getsignal(signal.SIGINT)
    part = train(spec, config=CONFIG, out_dir=tmp_path / "part", progress=hook, figures=False)
    assert part.status == "interrupted" and part.step == 6
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    train(spec, config=CONFIG, out_dir=tmp_path / "part", resume=True, figures=False)
    assert_same_run(tmp_path / "full", tmp_path / "part")


def test_resume_refuses_other_settings(tmp_path: Path, points: Path) -> None:
    spec = continuous_spec(points)
    train(spec, config=CONFIG, out_dir=tmp_path, stop_after=5, figures=False)
    other = CONFIG.model_copy(update={"lr": 0.5})
    with pytest.raises(FlowspecError) as exc:
        train(spec, config=other, out_dir=tmp_path, resume=True, figures=False)
    assert exc.value.codes == ["resume-mismatch"] and "lr" in str(exc.value)
    with pytest.raises(TrainingError, match="no checkpoint") as missing:
        train(spec, config=CONFIG, out_dir=tmp_path / "empty", resume=True, figures=False)
    assert missing.value.codes == ["nothing-to-resume"]


def test_nan_names_step_and_layer_and_keeps_checkpoint(tmp_path: Path, points: Path) -> None:
    flow = flowspec.compile(continuous_spec(points), seed=CONFIG.seed)
    layer = flow.get_submodule("layers.0.1.1")
    forward, poisoned = layer.forward, []

    def poison(x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        y, logdet = forward(x, context)
        return (y * float("nan"), logdet) if poisoned else (y, logdet)

    layer.forward = poison
    hook = _Hook(10, lambda: poisoned.append(True))
    with pytest.raises(TrainingError) as exc:
        train(flow, config=CONFIG, out_dir=tmp_path, progress=hook, figures=False)
    message = str(exc.value)
    assert exc.value.codes == ["nonfinite-loss"]
    assert "step 11" in message and "'layers.0.1.1' (affine_coupling)" in message
    assert "(step 8)" in message  # the last good checkpoint, from the validation at step 8
    saved = flowspec.load(tmp_path / "last.safetensors")
    assert read_state(read_weights(tmp_path / "last.safetensors"))[0].step == 8
    assert all(torch.isfinite(p).all() for p in saved.parameters())


def test_early_stopping_after_patience(
    tmp_path: Path, points: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = iter([1.0, 0.9, 0.95, 0.97, 0.5])

    def fake_evaluate(flow: Any, x: Any, **kwargs: Any) -> Score:
        return Score(nll=next(scores), bits_per_dim=0.0, n=len(x))

    monkeypatch.setattr("flowspec.training.run.evaluate", fake_evaluate)
    config = CONFIG.model_copy(update={"patience": 2})
    result = train(continuous_spec(points), config=config, out_dir=tmp_path, figures=False)
    assert result.status == "early_stopped" and result.step == 16
    assert result.best_val_nll == 0.9 and result.best_step == 8
    info = json.loads(read_weights(tmp_path / "model.safetensors").metadata["training"])
    assert info["step"] == 8


def test_in_memory_training_returns_best_weights(points: Path) -> None:
    result = train(continuous_spec(points), config=CONFIG, figures=False)
    assert result.out_dir is None and result.files == []
    best = min(row["val_nll"] for row in result.history)
    assert result.best_val_nll == best
    val = load_splits(str(points), (2,), seed=0).val
    score = evaluate(result.flow, val, seed=CONFIG.seed)
    assert score.nll == pytest.approx(best, abs=1e-5)  # same val split, same weights


def test_flow_stages_end_at_the_inverse(points: Path) -> None:
    flow = flowspec.compile(continuous_spec(points))
    perturb_parameters(flow, scale=0.3)
    z = torch.randn(50, 2)
    with torch.no_grad():
        stages = flow_stages(flow, z)
        assert stages is not None and len(stages) == len(flow.step_names) + 1
        assert torch.allclose(torch.as_tensor(stages[-1][1]), flow.inverse(z))
    last = flow.steps[-1]  # walked backwards: the first panel after the noise undid the last step
    assert stages[0][0] == "Noise samples z"
    assert stages[1][0] == f"After 1 inverse step\n{last.name} ({last.kind})"
    assert stages[2][0].startswith("After 2 inverse steps\n")
    assert stages[-1][0].startswith(f"After {len(flow.steps)} inverse steps = samples\n")


def test_progress_is_live_on_a_terminal_and_plain_otherwise() -> None:
    live, plain = io.StringIO(), io.StringIO()
    row = {"epoch": 1, "step": 5, "train_nll": 1.5, "val_nll": 1.25, "bits_per_dim": None,
           "lr": 1e-3, "seconds": 2.0}  # fmt: skip
    for stream, is_live in ((live, True), (plain, False)):
        progress = Progress(stream=stream, live=is_live, refresh=1e9)
        progress.step(3, 10, 0, 1.75, 1e-3)
        progress.record(row, best=True)
    assert "epoch 1  step 3/10 ( 30%)  loss 1.7500" in live.getvalue()
    assert live.getvalue().startswith("\r") and "val 1.2500" in live.getvalue()
    assert plain.getvalue() == live.getvalue().rsplit("\r", 1)[-1]  # the same line, no redraws
    assert Progress(stream=io.StringIO(), quiet=True).live is False


def test_cuda_is_refused_when_absent() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(FlowspecError) as exc:
        resolve_device("cuda")
    assert exc.value.codes == ["device-unavailable"]


def test_unknown_device_is_refused() -> None:
    with pytest.raises(TrainingError) as exc:
        resolve_device("tpu")
    assert exc.value.codes == ["device-unknown"]


def test_no_data_anywhere_is_a_data_error() -> None:
    spec = {"flowspec": 1, "input": {"shape": [2]}, "layers": [{"type": "scale"}]}
    with pytest.raises(DataError) as exc:
        train(spec, config=TrainSpec(steps=1))
    assert exc.value.codes == ["no-data"] and "--data" in (exc.value.diagnostics[0].hint or "")


def test_resuming_from_a_model_file_is_refused(tmp_path: Path) -> None:
    """A best-model file has no optimizer state: --resume needs the run's last.safetensors."""
    config = TrainSpec(steps=4, batch_size=32, val_every=2)
    train("specs/nice_moons.yaml", config=config, out_dir=tmp_path, figures=False)
    (tmp_path / "model.safetensors").replace(tmp_path / "last.safetensors")
    with pytest.raises(WeightsError) as exc:
        train("specs/nice_moons.yaml", config=config, out_dir=tmp_path, resume=True)
    assert exc.value.codes == ["not-a-checkpoint"]
