"""A transformer flow (TarFlow blocks and a Jet coupling on patch tokens) through the command,
on a user's image file: train, eval of the whole file, sample, check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flowspec.cli import main

SPEC = """\
flowspec: 1
name: tokens_on_a_file
input: {shape: [1, 4, 4]}
preprocess:
  - {type: dequantize, levels: 5, noise: {type: gaussian, sigma: 0.05}}
layers:
  - {type: patchify, patch: 2}       # 4 tokens (a 2x2 grid) of 4 values
  - repeat: 2
    body:
      - {type: tarflow, width: 8, heads: 2, order: alternating}
    vary: {depth: [2, 1]}
  - {type: affine_coupling, mask: checkerboard, log_scale: sigmoid2,
     net: {type: vit, width: 8, depth: 1, heads: 2}}
train: {steps: 150, batch_size: 64, val_every: 75, lr: 1.0e-2, threads: 1}
"""


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_train_eval_sample_check_on_a_users_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "tokens.yaml"
    spec.write_text(SPEC)
    gen = np.random.default_rng(0)
    images = np.minimum(gen.poisson(1.5, (300, 1, 4, 4)), 4).astype(np.uint8)
    data = tmp_path / "images.npy"
    np.save(data, images)
    out = tmp_path / "run"
    code, _ = run(capsys, "train", spec, "--data", data, "--out", out, "--no-figures", "--quiet")
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [75, 150]
    model = out / "model.safetensors"
    code, text = run(capsys, "eval", model, "--data", data, "--json")
    score = json.loads(text)
    assert code == 0 and score["n"] == 300 and np.isfinite(score["bits_per_dim"])
    # below the uniform distribution over 5 levels: it learned the file's statistics
    assert score["bits_per_dim"] < np.log2(5), score
    code, _ = run(capsys, "sample", model, "-n", 16, "-o", tmp_path / "s.npy", "--seed", 1)
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (16, 1, 4, 4)
    assert np.array_equal(samples, np.round(samples)) and samples.min() >= 0 and samples.max() <= 4
    code, text = run(capsys, "check", model)
    assert code == 0, text
