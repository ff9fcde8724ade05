"""Training on image data read from disk: batches stay uint8 until the flow, DataLoader workers
never change a run, and a file that breaks in a worker is still a located DataError."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import flowspec
from flowspec.errors import DataError
from flowspec.spec.training import TrainSpec
from flowspec.training import train
from flowspec.training.distributed import LogLikelihood
from tests.helpers import ROOT
from tests.training.test_train import assert_same_run

SPEC = {
    "flowspec": 1,
    "name": "tiny_images",
    "input": {"shape": [1, 4, 4]},
    "preprocess": [{"type": "dequantize", "levels": 256}, {"type": "logit"}],
    "layers": [
        {"type": "actnorm"},
        {"type": "affine_coupling", "mask": "checkerboard", "net_input": "masked",
         "net": {"type": "glow_conv", "channels": 4}},
    ],
}  # fmt: skip
CONFIG = TrainSpec(steps=12, batch_size=16, lr=1e-2, val_every=4, seed=2)


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """100 grey 8x8 PNGs in two class folders (the spec crops and resizes them to 4x4)."""
    rng = np.random.default_rng(0)
    for i in range(100):
        pixels = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
        path = tmp_path / "images" / ("even" if i % 2 else "odd") / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return tmp_path / "images"


def spec_for(folder: Path) -> dict[str, Any]:
    return {**SPEC, "data": {"name": str(folder), "size": 4, "crop": "center"}}


def test_workers_read_the_same_batches(folder: Path, tmp_path: Path) -> None:
    spec = spec_for(folder)
    inline = train(spec, config=CONFIG, out_dir=tmp_path / "inline", figures=False)
    workers = CONFIG.model_copy(update={"workers": 2})
    ahead = train(spec, config=workers, out_dir=tmp_path / "ahead", figures=False)
    assert inline.status == ahead.status == "completed"
    assert_same_run(tmp_path / "inline", tmp_path / "ahead")
    # the number of workers is free to change on resume: it never changes the result
    train(spec, config=workers, out_dir=tmp_path / "part", stop_after=5, figures=False)
    train(spec, config=CONFIG, out_dir=tmp_path / "part", resume=True, figures=False)
    assert_same_run(tmp_path / "inline", tmp_path / "part")


def test_batches_reach_the_flow_as_uint8(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.dtype] = []
    forward = LogLikelihood.forward

    def spy(self: LogLikelihood, x: torch.Tensor, context: Any = None) -> torch.Tensor:
        seen.append(x.dtype)
        return forward(self, x, context)

    monkeypatch.setattr(LogLikelihood, "forward", spy)
    train(spec_for(folder), config=CONFIG.model_copy(update={"steps": 3}), figures=False)
    assert seen == [torch.uint8] * 3


def test_a_file_that_breaks_in_a_worker_is_located(folder: Path) -> None:
    victims = sorted(folder.rglob("*.png"))
    for victim in victims:  # the headers stay readable; the pixels are cut off
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as exc:
        train(spec_for(folder), config=CONFIG.model_copy(update={"workers": 1}), figures=False)
    assert exc.value.codes == ["data-unreadable"] and "could not be decoded" in str(exc.value)


def test_command_trains_and_scores_an_image_folder(folder: Path, tmp_path: Path) -> None:
    spec = tmp_path / "images.yaml"
    spec.write_text(json.dumps(spec_for(folder)))  # JSON is YAML
    out = tmp_path / "run"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flowspec", *map(str, args)],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
        )  # fmt: skip

    done = cli("train", spec, "--steps", 8, "--batch-size", 16, "--workers", 1, "--out", out)
    assert done.returncode == 0, done.stderr
    scored = cli("eval", out / "model.safetensors", "--json")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["n"] == 10 and 0 < result["bits_per_dim"] < 12
    assert (out / "samples.png").is_file()


def test_workers_are_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    """A spec or flag cannot make training start thousands of processes."""
    from flowspec.cli import main
    from flowspec.errors import SpecError

    spec = "specs/nice_moons.yaml"
    assert main(["train", spec, "--steps", "1", "--workers", "100000", "--out", "/nowhere"]) == 2
    assert "above the workers limit (64)" in capsys.readouterr().err
    with pytest.raises(SpecError) as exc:
        train(spec, config=TrainSpec(steps=1, workers=100_000))
    assert exc.value.codes == ["limit-exceeded"] and "limit workers" in str(exc.value)
    text = "flowspec: 1\ninput: {shape: [2]}\nlayers: [{type: scale}]\ntrain: {workers: 1000}\n"
    with pytest.raises(SpecError) as exc:
        flowspec.load_spec(text)
    assert (
        exc.value.codes == ["limit-exceeded"] and exc.value.diagnostics[0].path == "train.workers"
    )
