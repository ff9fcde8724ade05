"""Training from Python behaves as the command does: the spec's settings survive single
overrides, the same thread setup (so the same speed), progress on a terminal, a per-validation
callback, TensorBoard, and seeds that do what they say."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import flowspec
from flowspec.errors import FlowspecError, SpecError
from flowspec.nn.oracles import example_context
from flowspec.spec.training import TrainSpec
from flowspec.training import train
from tests.helpers import HUGE_SPECS, ROOT, SPEC_FILES

MOONS = ROOT / "specs" / "realnvp_moons.yaml"  # train: epochs 16, lr 3e-3, threads 1, ...


def test_keyword_overrides_keep_the_specs_other_settings() -> None:
    seen: list[int] = []
    result = train(MOONS, steps=4, batch_size=32, val_every=2, progress=False,
                   callback=lambda row: seen.append(torch.get_num_threads()))  # fmt: skip
    spec_train = flowspec.load_spec(MOONS).train
    assert spec_train is not None and result.config is not None
    expected = spec_train.model_copy(update={"steps": 4, "batch_size": 32, "val_every": 2})
    assert result.config == expected and result.step == 4
    assert seen == [1, 1]  # the spec's threads: 1 was in force at each validation
    as_config = train(MOONS, config=TrainSpec(steps=4, batch_size=32, val_every=2),
                      progress=False)  # fmt: skip
    assert as_config.config == expected  # a config's set fields override, the rest is kept
    assert train(MOONS, epochs=1, batch_size=50_000, progress=False).config.steps is None


def test_bad_overrides_are_spec_errors() -> None:
    with pytest.raises(SpecError) as exc:
        train(MOONS, step=4)
    assert exc.value.codes == ["unknown-key"] and "'step'" in str(exc.value)
    assert "steps" in (exc.value.diagnostics[0].hint or "")
    with pytest.raises(SpecError) as exc:
        train(MOONS, steps=0)
    assert exc.value.codes == ["bad-value"] and exc.value.diagnostics[0].path == "train.steps"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_nothing_otherwise_and_a_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal, log = _Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    rows: list[dict[str, Any]] = []
    train(MOONS, steps=4, batch_size=32, val_every=2, callback=rows.append)
    assert "training 'realnvp_moons'" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert [row["step"] for row in rows] == [2, 4] and all("best" in row for row in rows)
    assert {"epoch", "train_nll", "val_nll", "bits_per_dim", "lr", "seconds"} <= rows[0].keys()
    monkeypatch.setattr(sys, "stderr", log)
    train(MOONS, steps=2, batch_size=32, val_every=2)
    assert log.getvalue() == ""  # not a terminal: quiet, as in a log file
    train(MOONS, steps=2, batch_size=32, val_every=2, progress=True)
    assert "val " in log.getvalue() and "\r" not in log.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    train(MOONS, steps=2, batch_size=32, val_every=2, progress=False)
    assert quiet.getvalue() == ""


def test_tensorboard_logs_what_the_metrics_say(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(MOONS, steps=6, batch_size=32, val_every=3, out_dir=tmp_path,
                   tensorboard=True, figures=False, progress=False)  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("val/nll")]
    assert logged == [(row["step"], pytest.approx(row["val_nll"])) for row in result.history]
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 7))


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(FlowspecError) as exc:
        train(MOONS, steps=2, out_dir=tmp_path, tensorboard=True, progress=False)
    assert exc.value.codes == ["missing-extra"]
    assert "flowspec[tensorboard]" in (exc.value.diagnostics[0].hint or "")


SPEED = """
import json, sys
import flowspec
from flowspec.cli import main
from flowspec.spec.training import TrainSpec
spec, out, steps = sys.argv[1], sys.argv[2], 60
python, command = [], []
for r in range(5):
    res = flowspec.train(spec, config=TrainSpec(steps=steps, val_every=steps), progress=False,
                         out_dir=f"{out}/py{r}", figures=False)
    python.append(res.seconds / steps)
    main(["train", spec, "--steps", str(steps), "--val-every", str(steps), "--quiet",
          "--no-figures", "--out", f"{out}/cli{r}"])
    rows = open(f"{out}/cli{r}/metrics.jsonl").read().splitlines()
    command.append(json.loads(rows[-1])["seconds"] / steps)
print(json.dumps({"python": min(python), "cli": min(command)}))
"""


def test_python_training_is_as_fast_as_the_command(tmp_path: Path) -> None:
    """One process, both paths interleaved, torch's default thread setup (no OMP_* variables):
    the Python path must use the spec's threads and the command's thread policy too. The best
    of five interleaved runs each: other jobs on a shared machine only ever add time."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OMP_", "MKL_"))}
    out = subprocess.run([sys.executable, "-c", SPEED, str(MOONS), str(tmp_path)], env=env,
                         capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    times = json.loads(out.stdout.splitlines()[-1])
    assert times["python"] / times["cli"] <= 1.2, times


def test_compile_seed_is_the_way_to_vary_initial_weights() -> None:
    spec = ROOT / "specs" / "nice_moons.yaml"  # no seed: in the spec
    first = flowspec.compile(spec, seed=1).state_dict()
    assert any(not torch.equal(v, flowspec.compile(spec, seed=2).state_dict()[k])
               for k, v in first.items())  # fmt: skip
    torch.manual_seed(123)
    with pytest.warns(UserWarning, match=r"global seed \(123\).*compile\(spec, seed=\.\.\.\)"):
        unseeded = flowspec.compile(spec).state_dict()
    assert all(torch.equal(v, flowspec.compile(spec, seed=0).state_dict()[k])
               for k, v in unseeded.items())  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit seed, or the spec's own, never warns
        flowspec.compile(spec, seed=5)
        flowspec.compile({**flowspec.load_spec(spec).model_dump(), "seed": 4})


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_every_spec_compiles_under_a_float64_default(path: Path) -> None:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:  # the largest on the meta device: 460 M float64 parameters would take 3.7 GB
        with torch.device("meta" if path.stem in HUGE_SPECS else "cpu"):
            flow = flowspec.compile(path)
    finally:
        torch.set_default_dtype(previous)
    floats = [t.dtype for t in (*flow.parameters(), *flow.buffers()) if t.is_floating_point()]
    assert set(floats) == {torch.float64}
    if path.stem in HUGE_SPECS:
        return
    if path.stem in ("glow_cifar10", "realnvp_cifar10"):
        return  # paper-scale: the dtypes are the point, a forward pass would take long
    x = torch.rand(3, *flow.input_shape, dtype=torch.float64)
    if flow.discrete_levels:
        x = torch.floor(x * flow.discrete_levels)
    context = example_context(flow, 3)  # a conditional spec's labels or float64 vectors
    with torch.no_grad():
        z, logdet = flow.eval()(x, context)
    assert z.dtype == logdet.dtype == torch.float64 and bool(torch.isfinite(z).all())
    assert np.isfinite(logdet.numpy()).all()
