"""What a run leaves and how the next command treats it: file modes, refusing to overwrite,
extending a finished run, what inspect and check say, eval of a whole file, specs given where
models are expected."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import flowspec
from flowspec.cli import main
from flowspec.data import load_splits
from flowspec.io import read_weights
from flowspec.training.checkpoint import read_state
from tests.cli.test_cli import TINY, metrics
from tests.helpers import ROOT


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> object:
    """The flowspec command run in this process (as a subprocess would, minus torch's start)."""

    def run(*args: object) -> Result:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_honour_the_umask(cli: Any, tiny: Path, tmp_path: Path, umask: None,
                                        mask: int) -> None:  # fmt: skip
    os.umask(mask)
    out = tmp_path / "run"
    assert cli("train", tiny, "--out", out, "--steps", 10).returncode == 0
    model = out / "model.safetensors"
    assert cli("sample", model, "-n", 5, "-o", tmp_path / "s.npy").returncode == 0
    assert cli("compile", tiny, "-o", tmp_path / "init.safetensors").returncode == 0
    files = [*out.iterdir(), tmp_path / "s.npy", tmp_path / "init.safetensors"]
    assert {p.name for p in files} >= {"model.safetensors", "last.safetensors", "metrics.jsonl",
                                       "loss.png", "s.npy", "init.safetensors"}  # fmt: skip
    assert {p.name: _mode(p) for p in files} == {p.name: 0o666 & ~mask for p in files}


def test_an_existing_run_is_not_overwritten(cli: Any, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("train", tiny, "--out", out, "--steps", 10, "--no-figures").returncode == 0
    before = (out / "model.safetensors").read_bytes()
    again = cli("train", tiny, "--out", out, "--steps", 20, "--no-figures")
    assert again.returncode == 1 and "error[run-exists]" in again.stderr
    assert f"'{out}' already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert (out / "model.safetensors").read_bytes() == before  # nothing lost
    (out / "flow_steps.png").write_bytes(b"a figure of the previous run")
    replaced = cli("train", tiny, "--out", out, "--steps", 20, "--no-figures", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert read_state(read_weights(out / "last.safetensors"))[0].step == 20
    assert not (out / "flow_steps.png").exists()  # the old run's files are gone, not mixed in
    both = cli("train", tiny, "--out", out, "--resume", "--overwrite")
    assert both.returncode == 2
    with pytest.raises(flowspec.TrainingError) as exc:  # the same from Python
        flowspec.train(tiny, out_dir=out, steps=5, figures=False)
    assert exc.value.codes == ["run-exists"]


def test_a_finished_run_can_be_extended(cli: Any, tiny: Path, tmp_path: Path) -> None:
    short, long = tmp_path / "short", tmp_path / "long"
    assert cli("train", tiny, "--out", short, "--steps", 30, "--no-figures").returncode == 0
    more = cli("train", tiny, "--out", short, "--steps", 40, "--resume", "--no-figures")
    assert more.returncode == 0, more.stderr
    state = read_state(read_weights(short / "last.safetensors"))[0]
    assert state.step == 40 and state.config["steps"] == 40
    assert [r["step"] for r in metrics(short)] == [10, 20, 30, 40]
    # Oracle: the first 30 steps are the 30-step run's; the learning rate of the steps after
    # them follows the schedule of a 40-step run (recomputed from the checkpoint's step on).
    assert cli("train", tiny, "--out", long, "--steps", 40, "--no-figures").returncode == 0
    rows_short, rows_long = metrics(short), metrics(long)
    assert rows_short[3]["lr"] == rows_long[3]["lr"]
    assert rows_short[:3] != rows_long[:3]  # a 30-step schedule differs from a 40-step one
    behind = cli("train", tiny, "--out", short, "--steps", 20, "--resume", "--no-figures")
    assert behind.returncode == 1 and "error[resume-mismatch]" in behind.stderr
    assert "step 40" in behind.stderr
    other = cli("train", tiny, "--out", short, "--steps", 50, "--lr", 0.5, "--resume")
    assert other.returncode == 1 and "lr: checkpoint 0.01, now 0.5" in other.stderr


def test_inspect_shows_the_settings_the_run_used(cli: Any, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("train", tiny, "--out", out, "--steps", 12, "--no-figures").returncode == 0
    for name in ("model.safetensors", "last.safetensors"):
        shown = cli("inspect", out / name)
        assert shown.returncode == 0, shown.stderr
        assert "  steps: 12   (spec: 30)" in shown.stdout and "  batch_size: 64\n" in shown.stdout


def test_check_says_whether_weights_are_trained(cli: Any, tiny: Path, tmp_path: Path) -> None:
    model = tmp_path / "init.safetensors"
    assert cli("compile", tiny, "-o", model).returncode == 0
    assert "saved weights, untrained" in cli("check", model).stdout
    out = tmp_path / "run"
    assert cli("train", tiny, "--out", out, "--steps", 10, "--no-figures").returncode == 0
    assert "trained for 10 steps" in cli("check", out / "model.safetensors").stdout


@pytest.mark.parametrize("command", ["eval", "inspect", "sample"])
def test_a_spec_where_a_model_is_expected_says_so(cli: Any, command: str, tmp_path: Path) -> None:
    spec = ROOT / "specs" / "nice_moons.yaml"
    extra = ["-n", "2", "-o", str(tmp_path / "s.npy")] if command == "sample" else []
    result = cli(command, spec, *extra)
    assert result.returncode == 1 and "error[not-a-model]" in result.stderr
    assert "is a spec (YAML), not a model file" in result.stderr
    assert "flowspec train" in result.stderr and "header" not in result.stderr
    renamed = tmp_path / "spec.safetensors"  # the content decides, not only the name
    renamed.write_text(spec.read_text())
    assert "error[not-a-model]" in cli(command, renamed, *extra).stderr


def test_eval_scores_a_whole_held_out_file(cli: Any, tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("train", tiny, "--out", out, "--steps", 10, "--no-figures").returncode == 0
    model = out / "model.safetensors"
    held_out = load_splits("moons", seed=7).test[:37]  # 37 rows: the 10% split would be 3
    np.save(tmp_path / "held_out.npy", held_out)
    flow = flowspec.load(model).eval()
    with torch.no_grad():
        oracle = -flow.log_prob(torch.from_numpy(held_out)).double().mean().item()
    whole = cli("eval", model, "--data", tmp_path / "held_out.npy", "--json")
    score = json.loads(whole.stdout)
    assert score["n"] == 37 and score["nll"] == pytest.approx(oracle, abs=1e-6)
    assert score["bits_per_dim"] == pytest.approx(oracle / (2 * math.log(2)), abs=1e-6)
    text = cli("eval", model, "--data", tmp_path / "held_out.npy").stdout
    assert f"over all 37 examples of {tmp_path / 'held_out.npy'}" in text
    split = json.loads(cli("eval", model, "--data", tmp_path / "held_out.npy", "--split",
                           "test", "--json").stdout)  # fmt: skip
    assert split["n"] == 37 - int(0.8 * 37) - int(0.1 * 37)
    np.save(tmp_path / "three.npy", held_out[:3])  # fewer than 10 rows: still evaluable
    assert (
        json.loads(cli("eval", model, "--data", tmp_path / "three.npy", "--json").stdout)["n"] == 3
    )
    builtin = cli("eval", model)
    assert "the test split of moons (5000 examples)" in builtin.stdout


def test_the_default_run_directory_is_refused_too(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = cli("train", "realnvp_moons", "--steps", 2, "--no-figures", "--quiet")
    assert first.returncode == 0 and (tmp_path / "runs" / "realnvp_moons").is_dir()
    again = cli("train", "realnvp_moons", "--steps", 2, "--no-figures", "--quiet")
    assert again.returncode == 1 and "'runs/realnvp_moons' already holds a run" in again.stderr


LEVELS8 = """\
flowspec: 1
name: levels8
input: {shape: [4]}
preprocess: [{type: dequantize, levels: 8}]
layers: [{type: affine_coupling, mask: alternating, net: {type: mlp, hidden: [8]}}]
"""


def test_eval_and_compile_refuse_data_a_dequantize_flow_cannot_model(
    cli: Any, tmp_path: Path
) -> None:
    spec = tmp_path / "levels8.yaml"
    spec.write_text(LEVELS8)
    np.save(tmp_path / "floats.npy", np.full((20, 4), 2.5, dtype=np.float32))
    np.save(tmp_path / "big.npy", np.full((20, 4), 9))
    assert cli("compile", spec, "-o", tmp_path / "m.safetensors").returncode == 0
    floats = cli("eval", tmp_path / "m.safetensors", "--data", tmp_path / "floats.npy")
    assert floats.returncode == 1 and "error[data-not-integer]" in floats.stderr
    big = cli("eval", tmp_path / "m.safetensors", "--data", tmp_path / "big.npy")
    assert big.returncode == 1 and "error[data-levels]" in big.stderr and "9 .. 9" in big.stderr
    init = cli("compile", spec, "-o", tmp_path / "i.safetensors", "--init-data",
               tmp_path / "floats.npy")  # fmt: skip
    assert init.returncode == 1 and "error[data-not-integer]" in init.stderr
