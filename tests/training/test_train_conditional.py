"""Training conditional flows: the contexts travel with their examples through shuffling,
validation, data-dependent initialisation, divergence reports and resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from flowspec.data import Splits, load_splits
from flowspec.errors import DataError, TrainingError
from flowspec.spec.training import DataSpec, TrainSpec
from flowspec.training import train
from flowspec.training.evaluate import evaluate
from tests.training.test_train import assert_same_run


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def conditional_spec(context: dict[str, Any], data: str = "moons") -> dict[str, Any]:
    body = [
        {"type": "actnorm"},
        {"type": "coupling", "mask": "alternating", "transform": {"type": "spline", "bins": 4},
         "net": {"type": "mlp", "hidden": [8]}},
    ]  # fmt: skip
    return {"flowspec": 1, "name": "cond", "input": {"shape": [2]}, "context": context,
            "base": {"type": "conditional_normal", "hidden": [8]},
            "layers": [{"repeat": 2, "body": body}], "data": {"name": data}}  # fmt: skip


CONFIG = TrainSpec(steps=12, batch_size=64, lr=1e-2, warmup_steps=2, val_every=4, seed=1)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """400 points in two clusters, the cluster as the label, in an .npz."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 2)) * 0.3 + np.stack([2.0 * label, -label], 1)
    np.savez(tmp_path / "points.npz", x=x.astype(np.float32), context=label)
    return tmp_path / "points.npz"


def test_labels_are_learned_and_scored(labelled: Path) -> None:
    result = train(conditional_spec({"classes": 2}), data=str(labelled),
                   config=TrainSpec(steps=150, batch_size=64, lr=1e-2, seed=0))  # fmt: skip
    splits = load_splits(str(labelled), (2,), context=result.flow.spec.context)
    right = evaluate(result.flow, splits.test, context=splits.contexts[2])
    wrong = evaluate(result.flow, splits.test, context=1 - splits.contexts[2])
    assert right.nll < wrong.nll - 2.0  # each cluster is 2.2 apart: the label is informative


def test_stopped_and_resumed_conditional_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    spec = conditional_spec({"shape": [1], "normalize": True}, data="points.npz")
    rng = np.random.default_rng(2)
    c = rng.uniform(0.5, 2.0, (300, 1))
    x = c * rng.normal(size=(300, 2))
    np.savez(tmp_path / "points.npz", x=x.astype(np.float32), context=c)
    data = DataSpec(name=str(tmp_path / "points.npz"), seed=4)
    train(spec, data=data, config=CONFIG, out_dir=tmp_path / "whole")
    partial = train(spec, data=data, config=CONFIG, out_dir=tmp_path / "part", stop_after=5)
    assert partial.status == "stopped"
    train(spec, data=data, config=CONFIG, out_dir=tmp_path / "part", resume=True)
    assert_same_run(tmp_path / "whole", tmp_path / "part")


def test_table_columns_are_recorded_and_a_change_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (200, 2))  # two columns that could each be the labels
    table = np.column_stack([rng.normal(size=(200, 2)), labels])
    np.savetxt(tmp_path / "t.csv", table, delimiter=",")
    spec = conditional_spec({"classes": 3}, data="t.csv")
    spec["input"]["shape"] = [3]  # the table's other three columns
    data = DataSpec(name=str(tmp_path / "t.csv"), context_columns=(2,))
    result = train(spec, data=data, config=CONFIG, out_dir=tmp_path / "run", stop_after=4)
    assert result.status == "stopped"
    other = DataSpec(name=str(tmp_path / "t.csv"), context_columns=(3,))
    with pytest.raises(TrainingError) as info:
        train(spec, data=other, config=CONFIG, out_dir=tmp_path / "run", resume=True)
    assert info.value.codes == ["resume-mismatch"] and "context columns" in str(info.value)


def test_ready_splits_are_checked_against_the_spec() -> None:
    splits = load_splits("moons")
    bad = Splits(splits.train, splits.val, splits.test, "moons", None,
                 tuple(c + 5 for c in splits.contexts))  # fmt: skip
    with pytest.raises(DataError) as info:
        train(conditional_spec({"classes": 2}), data=bad, config=CONFIG)
    assert info.value.codes == ["context-range"]
    bare = Splits(splits.train, splits.val, splits.test, "moons", None)
    with pytest.raises(DataError) as info:
        train(conditional_spec({"classes": 2}), data=bare, config=CONFIG)
    assert info.value.codes == ["context-missing"]


def test_divergence_is_explained_with_the_batch_contexts() -> None:
    spec = conditional_spec({"classes": 2})
    spec["layers"][0]["body"][1]["transform"] = {"type": "affine", "log_scale": "none"}
    with pytest.raises(TrainingError) as info:
        train(spec, config=TrainSpec(steps=30, batch_size=64, lr=1e4, clip_grad_norm=None))
    assert info.value.codes == ["nonfinite-loss"]
