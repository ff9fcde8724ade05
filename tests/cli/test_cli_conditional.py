"""The ``flowspec`` command with conditional flows: train and eval use the data's context (built-in
labels, an .npz, table columns), ``sample --context``, one row per class, and the errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch

import flowspec
from flowspec.data import load_splits
from flowspec.training.evaluate import evaluate
from tests.cli.test_cli import cli

COND = """\
flowspec: 1
name: cond
input: {shape: [2]}
context: {classes: 2, embedding: 2}
base: {type: conditional_normal, hidden: [8]}
layers:
  - repeat: 2
    body:
      - type: coupling
        mask: alternating
        transform: {type: spline, bins: 4}
        net: {type: mlp, hidden: [8]}
data: {name: moons}
train: {steps: 20, batch_size: 64, val_every: 10, lr: 1.0e-2}
"""

VECTOR = COND.replace("{classes: 2, embedding: 2}", "{shape: [1], normalize: true}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cond")
    (root / "cond.yaml").write_text(COND)
    out = cli("train", root / "cond.yaml", "--out", root / "run", "--quiet")
    assert out.returncode == 0, out.stderr
    return root / "run"


def test_train_and_eval_use_the_labels(trained: Path) -> None:
    assert {"samples.png", "density.png", "flow_steps.png"} <= {p.name for p in trained.iterdir()}
    out = cli("eval", trained / "model.safetensors", "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    flow = flowspec.load(trained / "model.safetensors")
    splits = load_splits("moons", (2,), context=flow.spec.context)
    expected = evaluate(flow, splits.test, context=splits.contexts[2])
    assert score["nll"] == pytest.approx(expected.nll, abs=1e-9)
    wrong = evaluate(flow, splits.test, context=1 - splits.contexts[2])
    assert wrong.nll > expected.nll  # the labels carry information the model uses
    text = cli("eval", trained / "model.safetensors").stdout
    assert "given their contexts" in text
    shown = cli("inspect", trained / "model.safetensors").stdout
    assert re.search(r"context\s+integer class labels \(N,\) in 0\.\.1\s+4\n", shown), shown


def test_sample_at_a_context_and_one_row_per_class(trained: Path, tmp_path: Path) -> None:
    model = trained / "model.safetensors"
    out = cli("sample", model, "-n", 50, "-o", tmp_path / "one.npy", "--context", 1)
    assert out.returncode == 0 and "at context 1" in out.stdout, out.stderr
    assert np.load(tmp_path / "one.npy").shape == (50, 2)
    out = cli("sample", model, "-n", 7, "-o", tmp_path / "all.npz")
    assert out.returncode == 0 and "7 per class" in out.stdout, out.stderr
    archive = np.load(tmp_path / "all.npz")
    assert archive["x"].shape == (14, 2) and archive["context"].tolist() == [0] * 7 + [1] * 7
    flow = flowspec.load(model).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        again = flow.sample(14, context=torch.tensor(archive["context"]))
    np.testing.assert_array_equal(again.numpy(), archive["x"])  # seed 0, the same draw
    assert cli("sample", model, "-n", 5, "-o", tmp_path / "rows.png").returncode == 0
    assert plt_image.imread(tmp_path / "rows.png").ndim == 3


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--context", "2"], "context-range"),
        (["--context", "0.5"], "context-range"),
        (["--context", "0,1"], "context-shape"),
        ([], "context-missing"),  # several classes would lose their labels in a .npy
    ],
)
def test_bad_sample_contexts(trained: Path, tmp_path: Path, args: list[str], code: str) -> None:
    out = cli("sample", trained / "model.safetensors", "-n", 4, "-o", tmp_path / "x.npy", *args)
    assert out.returncode == 1 and f"[{code}]" in out.stderr, out.stderr


def test_context_given_to_an_unconditional_model(tmp_path: Path) -> None:
    flow = flowspec.compile("specs/realnvp_moons.yaml")
    model = flowspec.save(flow, tmp_path / "plain.safetensors")
    out = cli("sample", model, "-n", 4, "-o", tmp_path / "x.npy", "--context", 1)
    assert out.returncode == 1 and "[context-unexpected]" in out.stderr


def test_train_on_table_columns_and_an_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    points = rng.standard_normal((400, 2)) * 0.3 + np.stack([label * 2.0, -label], 1)
    table = np.column_stack([points[:, 0], label, points[:, 1]])
    (tmp_path / "t.csv").write_text("\n".join(",".join(map(str, row)) for row in table) + "\n")
    (tmp_path / "cond.yaml").write_text(COND)
    out = cli("train", tmp_path / "cond.yaml", "--data", tmp_path / "t.csv", "--context-columns",
              1, "--out", tmp_path / "csv", "--quiet", "--no-figures")  # fmt: skip
    assert out.returncode == 0, out.stderr
    scored = cli("eval", tmp_path / "csv" / "model.safetensors", "--json")
    assert scored.returncode == 0 and json.loads(scored.stdout)["n"] == 40, scored.stderr
    forgot = cli("train", tmp_path / "cond.yaml", "--data", tmp_path / "t.csv",
                 "--out", tmp_path / "none", "--quiet")  # fmt: skip
    assert forgot.returncode == 1 and "[data-shape]" in forgot.stderr
    assert "--context-columns" in forgot.stderr
    np.save(tmp_path / "plain.npy", points.astype(np.float32))
    missing = cli("train", tmp_path / "cond.yaml", "--data", tmp_path / "plain.npy",
                  "--out", tmp_path / "none", "--quiet")  # fmt: skip
    assert missing.returncode == 1 and "[context-missing]" in missing.stderr
    np.savez(tmp_path / "v.npz", x=points.astype(np.float32), context=label[:, None] * 1.5)
    (tmp_path / "vector.yaml").write_text(VECTOR)
    out = cli("train", tmp_path / "vector.yaml", "--data", tmp_path / "v.npz",
              "--out", tmp_path / "npz", "--quiet", "--no-figures")  # fmt: skip
    assert out.returncode == 0, out.stderr
    flow = flowspec.load(tmp_path / "npz" / "model.safetensors")
    assert flow.context._initialized and float(flow.context.mean[0, 0]) > 0


def test_check_a_conditional_spec(tmp_path: Path) -> None:
    (tmp_path / "cond.yaml").write_text(COND)
    out = cli("check", tmp_path / "cond.yaml")
    assert out.returncode == 0 and "random contexts" in out.stdout and out.stdout.count(" ok") == 4
