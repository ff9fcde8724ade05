"""Each plotting function writes a real, non-trivial PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowspec.data import moons_log_density
from flowspec.training.drawing import (
    plot_density_2d,
    plot_flow_steps,
    plot_image_grid,
    plot_loss,
    plot_samples_2d,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    assert path.is_file()
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC
    assert len(blob) > 1024


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_plot_loss_with_gaps_and_bits_per_dim(tmp_path: Path) -> None:
    rows = [
        {
            "epoch": e,
            "train_nll": 2.0 / e,
            "val_nll": None if e % 2 else 2.1 / e,
            "bits_per_dim": 1.5 / e,
        }
        for e in range(1, 8)
    ]
    rows.append({"epoch": 8, "train_nll": 0.25})
    out = plot_loss(rows, tmp_path / "nested" / "loss.png")
    assert out == tmp_path / "nested" / "loss.png"
    _assert_png(out)
    _assert_png(plot_loss([{"epoch": 1, "train_nll": 1.0}], tmp_path / "one.png"))


def test_plot_samples_2d(tmp_path: Path, rng: np.random.Generator) -> None:
    samples, data = rng.standard_normal((500, 2)), rng.standard_normal((800, 2)) + 1.0
    samples[:3] *= 100.0  # far outliers and a NaN sample must not break the view
    samples[3] = np.nan
    _assert_png(plot_samples_2d(samples, data, tmp_path / "s.png", title="Samples"))
    _assert_png(plot_samples_2d(samples, None, tmp_path / "s_only.png"))


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_image_grid(tmp_path: Path, rng: np.random.Generator, channels: int) -> None:
    images = rng.uniform(-0.2, 1.2, size=(10, channels, 8, 8))  # out-of-range values clip
    _assert_png(plot_image_grid(images, tmp_path / f"grid{channels}.png"))
    _assert_png(plot_image_grid(images, tmp_path / f"row{channels}.png", nrow=5))


def test_plot_image_grid_rejects_bad_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        plot_image_grid(np.zeros((4, 2, 8, 8)), tmp_path / "bad.png")


def test_plot_flow_steps(tmp_path: Path, rng: np.random.Generator) -> None:
    z = rng.standard_normal((400, 2))
    stages = [("Noise samples", z)] + [
        (f"After {k} steps of flow", z * (1 + 0.3 * k) + k) for k in (1, 2, 4, 8)
    ]
    _assert_png(plot_flow_steps(stages, tmp_path / "steps.png"))


def test_plot_density_2d(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.standard_normal((300, 2)) * 0.3
    out = plot_density_2d(
        lambda x: moons_log_density(x, n_points=100), tmp_path / "d.png", resolution=60, data=data
    )
    _assert_png(out)
