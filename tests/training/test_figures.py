"""The figures explain themselves: titles, legends, both scales of the density, the data beside
image samples, and panel grids without empty rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from flowspec.training import drawing
from flowspec.training.drawing import panel_grid


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the drawing functions would save, kept for inspection."""
    kept: list[Figure] = []

    def keep(fig: Figure, path: str | Path) -> Path:
        kept.append(fig)
        return Path(path)

    monkeypatch.setattr(drawing, "_save", keep)
    return kept


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_loss_figure_has_a_legend_in_each_panel(figures: list[Figure], tmp_path: Path) -> None:
    rows = [{"epoch": e, "train_nll": 90.0 / e, "val_nll": 92.0 / e, "bits_per_dim": 2.0 / e}
            for e in range(1, 5)]  # fmt: skip
    drawing.plot_loss(rows, tmp_path / "loss.png", bits=True, dim=64)
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["Negative log-likelihood", "Bits per dimension"]
    for ax in panels:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["train", "validation"]
    train_bits = panels[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(train_bits, [90.0 / e / (64 * np.log(2)) for e in range(1, 5)])
    drawing.plot_loss(rows, tmp_path / "loss2.png", bits=False)  # 2-D data: one panel
    assert _titles(figures[1]) == ["Negative log-likelihood"]


def test_density_shows_the_log_scale_beside_the_linear_one(
    figures: list[Figure], tmp_path: Path
) -> None:
    def log_prob(x: np.ndarray) -> np.ndarray:
        return -0.5 * (x**2).sum(1) - np.log(2 * np.pi)

    drawing.plot_density_2d(log_prob, tmp_path / "d.png", ((-6, 6), (-6, 6)), resolution=31)
    (fig,) = figures
    assert _titles(fig) == ["Model density", "Model log-density (floor: max - 12)"]
    log_panel = next(ax for ax in fig.axes if ax.get_title().startswith("Model log"))
    values = log_panel.collections[0].get_array()
    assert values.max() == pytest.approx(-np.log(2 * np.pi))  # the grid has (0, 0)
    assert values.min() == pytest.approx(values.max() - 12)  # the tails, down to the floor
    title = "Model density (mixture over test contexts)"  # a conditional flow's
    drawing.plot_density_2d(log_prob, tmp_path / "c.png", resolution=11, title=title)
    assert _titles(figures[1]) == [title, "Model log-density (floor: max - 12)"]
    assert len(figures) == 2  # one figure per call


def test_image_samples_are_titled_beside_the_data(figures: list[Figure], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples, data = rng.uniform(size=(16, 1, 8, 8)), rng.uniform(size=(16, 1, 8, 8))
    drawing.plot_image_grid(samples, tmp_path / "s.png", title="Model samples (temperature 0.8)",
                            beside=[("Data (16 test images)", data)])  # fmt: skip
    assert _titles(figures[0]) == ["Model samples (temperature 0.8)", "Data (16 test images)"]


@pytest.mark.parametrize("n", range(1, 25))
def test_panel_grid_leaves_no_empty_row_and_few_empty_cells(n: int) -> None:
    rows, cols = panel_grid(n)
    assert rows * cols >= n and (rows - 1) * cols < n  # no empty last row
    best = min((-(-n // c) * c - n) for c in range(3, 8)) if n > 4 else 0
    assert rows * cols - n == best  # as few empty cells as any 3..7-column grid allows


def test_flow_steps_titles_name_each_step(figures: list[Figure], tmp_path: Path) -> None:
    z = np.random.default_rng(0).standard_normal((100, 2))
    stages: list[tuple[str, Any]] = [("Noise samples z", z)] + [
        (f"After {k} inverse step{'s' if k > 1 else ''}\nlayers.0.{k}.1 (affine_coupling)", z)
        for k in range(1, 21)
    ]
    drawing.plot_flow_steps(stages, tmp_path / "steps.png")
    titles = _titles(figures[0])
    assert len(figures[0].axes) == 21 and titles[1].startswith("After 1 inverse step\n")
