"""Every ``flowspec`` subcommand through a subprocess, error paths included."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import flowspec
from flowspec.data import load_splits
from flowspec.io import read_weights
from flowspec.training.checkpoint import read_state
from tests.helpers import ROOT, SPEC_FILES

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest
COMMANDS = ["validate", "graph", "compile", "check", "train", "eval", "sample", "inspect"]

TINY = """\
flowspec: 1
name: tiny
input: {shape: [2]}
layers:
  - repeat: 2
    body:
      - type: actnorm
      - type: affine_coupling
        mask: alternating
        net: {type: mlp, hidden: [8]}
data: {name: moons}
train: {steps: 30, batch_size: 64, val_every: 10, lr: 1.0e-2, warmup_steps: 5}
"""


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flowspec", *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout
    )


def popen(*args: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "flowspec", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT
    )


def metrics(out: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def wait_for_rows(out: Path, n: int, proc: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(metrics(out)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} validations in {limit} s (exit {proc.poll()})")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "full"
    result = cli("train", tiny, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


# ----------------------------------------------------------------------------- help, usage
@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    assert f"flowspec {command}" in result.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["train"], ["train", "x.yaml", "--epochs", "0"], ["train", "x.yaml", "--epochs", "2",
     "--steps", "3"], ["eval", "m.safetensors", "--bogus"], ["graph", "x.yaml", "--format", "png"],
     ["frobnicate"], ["sample", "m.safetensors", "-n", "3", "-o", "s.txt"]],
)  # fmt: skip
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- validate, graph
def test_validate_every_shipped_spec() -> None:
    result = cli("validate", *SPEC_FILES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(SPEC_FILES)


def test_validate_never_imports_torch() -> None:
    code = (
        "import sys; from flowspec.cli import main; "
        "rc = main(['validate', 'specs/realnvp_moons.yaml']); print(rc, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.splitlines()[-1] == "0 False"


BAD = """\
flowspec: 1
name: bad
input: {shape: [2]}
layers:
  - type: affine_coupling
    mask: alternating
    net: {type: mlp, hiden: [8]}
  - type: actnrom
train: {epochs: 0}
"""


def test_validate_reports_every_error_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = cli("validate", bad, ROOT / "specs" / "nice_moons.yaml")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for where in (f"{bad}:7:22: layers.0.net.hiden:", f"{bad}:8:5: layers.1.type:",
                  f"{bad}:9:9: train.epochs:"):  # fmt: skip
        assert where in result.stderr
    assert "did you mean 'hidden'?" in result.stderr and "nice_moons.yaml: ok" in result.stdout
    assert "Traceback" in cli("validate", bad, "--debug").stderr


def test_validate_shows_warnings_but_passes(tmp_path: Path) -> None:
    same = {"type": "additive_coupling", "mask": "first_half", "net": {"type": "mlp"}}
    spec = {"flowspec": 1, "input": {"shape": [4]}, "layers": [same, same, same]}
    path = tmp_path / "warn.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    result = cli("validate", path)
    assert result.returncode == 0 and "warning[" in result.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [(["validate", "nope.yaml"], "spec-missing"), (["train", "nope.yaml"], "spec-missing"),
     (["graph", "nope.yaml"], "spec-missing"), (["eval", "nope.safetensors"], "weights-missing"),
     (["check", "nope.safetensors"], "weights-missing"),
     (["sample", "nope.safetensors", "-n", "2", "-o", "s.npy"], "weights-missing")],
)  # fmt: skip
def test_missing_files_exit_1(args: list[str], code: str) -> None:
    result = cli(*args)
    assert result.returncode == 1 and f"error[{code}]" in result.stderr
    assert "Traceback" not in result.stderr


def test_graph_formats(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "realnvp_moons.yaml"
    text = cli("graph", spec)
    assert text.returncode == 0 and "affine_coupling" in text.stdout
    assert re.search(r"layers\.0\s+\d+\s+\(2,\)\s+\(2,\)", text.stdout)  # per-block shapes
    assert cli("graph", spec, "--format", "dot").stdout.startswith("digraph")
    out = tmp_path / "g.mmd"
    assert cli("graph", spec, "--format", "mermaid", "-o", out).returncode == 0
    assert out.read_text().startswith("flowchart TD")


# ----------------------------------------------------------------------------- compile, check
def test_compile_prints_counts_and_initialises(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    result = cli("compile", tiny, "-o", out, "--seed", "4", "--init-data", "moons")
    assert result.returncode == 0, result.stderr
    flow = flowspec.load(out)
    total = re.search(r"total\s+([\d,]+)", result.stdout)
    assert total and int(total.group(1).replace(",", "")) == flow.num_parameters()
    assert bool(flow.get_submodule("layers.0.0.0").initialized)
    assert flow.state_dict().keys() == flowspec.compile(tiny).state_dict().keys()


def test_check_passes_on_spec_and_fails_on_a_broken_model(tiny: Path, tmp_path: Path) -> None:
    ok = cli("check", tiny)
    assert ok.returncode == 0 and ok.stdout.count(" ok") == 4
    assert "inverse logdet vs forward" in ok.stdout
    spec = {"flowspec": 1, "input": {"shape": [2]}, "layers": [
        {"type": "affine_coupling", "mask": "alternating", "log_scale": "none",
         "net": {"type": "mlp", "hidden": [4]}}]}  # fmt: skip
    flow = flowspec.compile(spec)
    with torch.no_grad():
        for p in flow.parameters():
            p.fill_(300.0)  # exp(huge log-scale): the round trip overflows
    broken = flowspec.save(flow, tmp_path / "broken.safetensors")
    bad = cli("check", broken)
    assert bad.returncode == 1 and "FAIL" in bad.stdout


# ----------------------------------------------------------------------------- train and outputs
def test_train_writes_the_run(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"model.safetensors", "last.safetensors", "metrics.jsonl", "loss.png", "samples.png",
            "flow_steps.png", "density.png"} <= names  # fmt: skip
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert {"epoch", "step", "train_nll", "val_nll", "lr", "seconds"} <= rows[0].keys()
    assert all(math.isfinite(r["val_nll"]) for r in rows)


def test_eval_json(trained: Path) -> None:
    result = cli("eval", trained / "model.safetensors", "--json")
    assert result.returncode == 0, result.stderr
    score = json.loads(result.stdout)
    assert set(score) == {"nll", "bits_per_dim", "n"} and score["n"] == 5000
    assert score["bits_per_dim"] == pytest.approx(score["nll"] / (2 * math.log(2)))
    assert abs(score["nll"] - min(r["val_nll"] for r in metrics(trained))) < 0.2


def test_sample_npy_and_png(trained: Path, tmp_path: Path) -> None:
    model = trained / "model.safetensors"
    assert cli("sample", model, "-n", 7, "-o", tmp_path / "s.npy", "--seed", 1).returncode == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (7, 2) and np.isfinite(samples).all()
    assert cli("sample", model, "-n", 50, "-o", tmp_path / "s.png").returncode == 0
    image = plt_image.imread(tmp_path / "s.png")  # a readable PNG: (height, width, RGBA)
    assert image.ndim == 3 and image.shape[2] == 4 and min(image.shape[:2]) > 100


def test_png_of_samples_that_are_not_points_or_images_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    spec = {"flowspec": 1, "input": {"shape": [3]}, "layers": [{"type": "scale"}]}
    flowspec.save(flowspec.compile(spec), model)
    result = cli("sample", model, "-n", 4, "-o", tmp_path / "s.png")
    assert result.returncode == 1 and "error[sample-format]" in result.stderr
    assert (
        "cannot draw samples of shape (3,)" in result.stderr and not (tmp_path / "s.png").exists()
    )


def test_inspect(trained: Path) -> None:
    result = cli("inspect", trained / "model.safetensors")
    assert result.returncode == 0, result.stderr
    total = flowspec.load(trained / "model.safetensors").num_parameters()
    for text in ("flowspec version:", "layers.0.1.1", "affine_coupling", f"{total:,}",
                 "name: tiny", "bytes", "trained: step"):  # fmt: skip
        assert text in result.stdout


# ----------------------------------------------------------------------------- interrupt, resume
def test_stop_then_resume_matches_uninterrupted(tiny: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "part"
    stopped = cli("train", tiny, "--out", out, "--stop-after", 17, "--no-figures")
    assert (
        stopped.returncode == 0 and read_state(read_weights(out / "last.safetensors"))[0].step == 17
    )
    resume = stopped.stderr.split("continue with: ")[1].strip()
    result = cli(*shlex.split(resume)[1:])
    assert result.returncode == 0, result.stderr
    assert metrics(out) == metrics(trained)
    for name in ("model.safetensors", "last.safetensors"):
        a, b = load_file(trained / name), load_file(out / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigint_saves_a_resumable_state(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = popen("train", tiny, "--out", out, "--steps", 100000, "--val-every", 5, "--no-figures")
    wait_for_rows(out, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "--resume" in err.split("continue with: ")[1]
    state = read_state(read_weights(out / "last.safetensors"))[
        0
    ]  # saved at the step the signal arrived
    assert state.step >= 5 and len(state.history) == state.step // 5
    assert flowspec.load(out / "last.safetensors").num_parameters() > 0


def test_sigkill_leaves_a_loadable_checkpoint(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = popen("train", tiny, "--out", out, "--steps", 100000, "--val-every", 2, "--no-figures")
    wait_for_rows(out, 3, proc)
    proc.kill()
    proc.communicate(timeout=60)
    flowspec.load(out / "last.safetensors")
    flowspec.load(out / "model.safetensors")
    state = read_state(read_weights(out / "last.safetensors"))[0]
    assert state.step >= 4 and len(state.history) == state.step // 2
    # a kill during a write can leave a hidden temp file, never a partial file under a real name
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert names == {"model.safetensors", "last.safetensors", "metrics.jsonl"}
    (out / ".last.safetensors.abc123.tmp").write_bytes(b"partial")  # as a kill mid-write leaves
    more = cli("train", tiny, "--out", out, "--steps", 100000, "--val-every", 2, "--resume",
               "--stop-after", state.step + 1, "--no-figures")  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert read_state(read_weights(out / "last.safetensors"))[0].step == state.step + 1
    assert not list(out.glob(".*.tmp"))  # a new run clears what the killed one left


# ----------------------------------------------------------------------------- error paths
def test_wrong_data_shape_names_both_shapes(tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "x3.npy"
    np.save(data, np.zeros((50, 3), dtype=np.float32))
    result = cli("train", tiny, "--out", tmp_path, "--data", data)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "(3,)" in result.stderr and "(2,)" in result.stderr


def test_corrupt_model_file_exits_1(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"this is not a safetensors file")
    result = cli("eval", corrupt)
    assert result.returncode == 1 and "weights-corrupt" in result.stderr
    assert "Traceback" not in result.stderr


LOGIT = """\
flowspec: 1
name: unit_square
input: {shape: [2]}
preprocess: [{type: logit, alpha: 0.01}]
layers:
  - {type: affine_coupling, mask: alternating, net: {type: mlp, hidden: [8]}}
train: {epochs: 2, batch_size: 32, val_every: 1, lr: 1.0e-3}
"""


def test_nan_loss_names_step_and_layer(tmp_path: Path) -> None:
    spec = tmp_path / "unit.yaml"
    spec.write_text(LOGIT)
    x = np.random.default_rng(0).uniform(0.1, 0.9, size=(200, 2)).astype(np.float32)
    data = tmp_path / "huge.npy"
    for row in range(200):  # a huge value (outside the logit's domain) that lands in train
        x_bad = x.copy()
        x_bad[row] = 1e30
        np.save(data, x_bad)
        if (load_splits(str(data), (2,)).train > 1e29).any():
            break
    result = cli("train", spec, "--data", data, "--out", tmp_path / "run", "--no-figures")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    found = re.search(r"diverged at step (\d+) .*layer 'preprocess\.0' \(logit\)", result.stderr)
    assert found and "nonfinite-loss" in result.stderr
    state = read_state(read_weights(tmp_path / "run" / "last.safetensors"))[0]
    assert state.step == int(found.group(1)) - 1  # the last good state, one step before
    assert f"(step {state.step})" in result.stderr
    flowspec.load(tmp_path / "run" / "last.safetensors")
