"""Drawing primitives, numpy to PNG: loss curves, 2-D scatters and densities, image grids, panels.

:mod:`flowspec.training.figures` decides what a run draws; this module only draws. Every
function writes one PNG to ``path`` (creating parent directories), releases its figure and
returns the path as a :class:`~pathlib.Path`. Figures are drawn headless on the Agg canvas via
matplotlib's object-oriented API: pyplot is never imported, so there is no global figure
registry to leak into and the caller's interactive backend is left untouched. This module never
imports torch; callers pass numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "label_colors",
    "panel_grid",
    "plot_density_2d",
    "plot_flow_steps",
    "plot_image_grid",
    "plot_loss",
    "plot_samples_2d",
]

Bounds = tuple[tuple[float, float], tuple[float, float]]


def _figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A new Agg-backed figure and its ``(nrows, ncols)`` array of axes."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, np.asarray(fig.subplots(nrows, ncols, squeeze=False))


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=100, bbox_inches="tight")
    finally:
        fig.clear()
    return out


def _series(metrics: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(epochs, values)`` of rows where ``key`` is present and not None."""
    xs, ys = [], []
    for i, row in enumerate(metrics):
        value = row.get(key)
        if value is not None:
            xs.append(float(row.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


def _curve(ax: Axes, xs: list[float], ys: list[float], label: str, **style: Any) -> None:
    if xs:
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=label, **style)


def plot_loss(
    metrics: Sequence[dict[str, Any]],
    path: str | Path,
    bits: bool | None = None,
    dim: int | None = None,
) -> Path:
    """Plot ``train_nll`` and ``val_nll`` (nats) against ``epoch``; bits per dimension in a
    second panel.

    Args:
        metrics: One dict per logged epoch; keys ``epoch`` (defaults to the 1-based row number),
            ``train_nll``, ``val_nll``, ``bits_per_dim``; any may be missing or None.
        path: Where to write the PNG.
        bits: Draw the bits/dim panel (default: when some row has ``bits_per_dim``); it is the
            customary unit for discrete data and images.
        dim: Dimensions per example; with it the panel also shows the training loss in bits/dim
            (``train_nll / (dim ln 2)``) beside the validation's.
    """
    has_bpd = any(row.get("bits_per_dim") is not None for row in metrics)
    has_bpd = has_bpd if bits is None else bits and has_bpd
    fig, axes = _figure(1, 2 if has_bpd else 1, (10 if has_bpd else 5.5, 4))
    ax = axes[0, 0]
    _curve(ax, *_series(metrics, "train_nll"), "train")
    _curve(ax, *_series(metrics, "val_nll"), "validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats per example)")
    ax.set_title("Negative log-likelihood")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    if has_bpd:
        bx = axes[0, 1]
        if dim:
            xs, ys = _series(metrics, "train_nll")
            _curve(bx, xs, [y / (dim * math.log(2.0)) for y in ys], "train")
        _curve(bx, *_series(metrics, "bits_per_dim"), "validation", color="tab:orange")
        bx.set_xlabel("epoch")
        bx.set_ylabel("bits per dimension")
        bx.set_title("Bits per dimension")
        bx.legend()
        bx.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _limits(*arrays: np.ndarray | None, margin: float = 0.1) -> Bounds:
    """Axis limits covering the central 99.8% of the finite points of the (M, 2) arrays."""
    pts = np.concatenate([a[np.isfinite(a).all(1)] for a in arrays if a is not None and len(a)])
    if len(pts) == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = np.percentile(pts, 0.1, axis=0), np.percentile(pts, 99.9, axis=0)
    pad = np.maximum(hi - lo, 1e-6) * margin
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def label_colors(labels: np.ndarray) -> np.ndarray:
    """One colour of matplotlib's ``tab10`` cycle per integer label, ``(M, 4)`` RGBA."""
    from matplotlib import colormaps

    return colormaps["tab10"](np.asarray(labels, dtype=np.int64) % 10)


def _scatter(
    ax: Axes, pts: np.ndarray, title: str, bounds: Bounds, color: str | np.ndarray
) -> None:
    """Scatter (M, 2) points in ``bounds``; the title counts points left outside the view."""
    (x0, x1), (y0, y1) = bounds
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    if not inside.all():
        title += f"\n({int((~inside).sum())} of {len(pts)} outside the view)"
    size = 1.0 if len(pts) > 2000 else 4.0
    ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.5, color=color, linewidths=0)
    ax.set_xlim(*bounds[0])
    ax.set_ylim(*bounds[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title)


def plot_samples_2d(
    samples: np.ndarray,
    data: np.ndarray | None,
    path: str | Path,
    title: str = "Model samples",
    sample_labels: np.ndarray | None = None,
    data_labels: np.ndarray | None = None,
) -> Path:
    """Scatter model samples (M, 2) beside data (K, 2), both panels on the same limits.

    The limits are fitted to the data when given (to the samples otherwise), so a model that
    scatters mass far away shows it as a count of points outside the view in the title. With
    labels (class contexts) each point takes its class's colour.
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    data = None if data is None else np.asarray(data, dtype=np.float64).reshape(-1, 2)
    bounds = _limits(samples if data is None else data)
    ncols = 1 if data is None else 2
    fig, axes = _figure(1, ncols, (4.5 * ncols, 4.5))
    colors = label_colors(sample_labels) if sample_labels is not None else "tab:orange"
    _scatter(axes[0, 0], samples, title, bounds, colors)
    if data is not None:
        colors = label_colors(data_labels) if data_labels is not None else "tab:blue"
        _scatter(axes[0, 1], data, "Data", bounds, colors)
    fig.tight_layout()
    return _save(fig, path)


def _tile(images: np.ndarray, nrow: int | None) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] as one (rows, cols, C) array with 1-pixel white borders."""
    imgs = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    if imgs.ndim != 4 or imgs.shape[1] not in (1, 3) or len(imgs) == 0:
        raise ValueError(f"expected images of shape (N, 1|3, H, W), got {imgs.shape}")
    n, c, h, w = imgs.shape
    ncol = nrow or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    grid = np.ones((nrows * (h + 1) + 1, ncol * (w + 1) + 1, c))
    for k in range(n):
        r, q = divmod(k, ncol)
        top, left = 1 + r * (h + 1), 1 + q * (w + 1)
        grid[top : top + h, left : left + w] = imgs[k].transpose(1, 2, 0)
    return grid


def plot_image_grid(
    images: np.ndarray,
    path: str | Path,
    nrow: int | None = None,
    title: str = "",
    beside: Sequence[tuple[str, np.ndarray]] = (),
) -> Path:
    """Tile images of shape (N, C, H, W), C in {1, 3}, values in [0, 1] (clipped), in a grid.

    Args:
        images: The images; one channel is drawn with the grey colormap.
        path: Where to write the PNG.
        nrow: Images per row; defaults to ``ceil(sqrt(N))``.
        title: The grid's title (e.g. ``Model samples, temperature 0.8``).
        beside: More ``(title, images)`` grids drawn to the right on the same scale (e.g. the
            data the model was trained to imitate).
    """
    panels = [(title, _tile(images, nrow))] + [(t, _tile(x, nrow)) for t, x in beside]
    rows, cols = panels[0][1].shape[:2]
    size = (max(2.0, 0.05 * cols), max(2.0, 0.05 * rows + (0.4 if title else 0.0)))
    fig, axes = _figure(1, len(panels), (len(panels) * size[0] + 0.3, size[1]))
    for ax, (name, grid) in zip(axes.flat, panels):
        if grid.shape[2] == 1:
            ax.imshow(grid[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(grid, interpolation="nearest")
        ax.axis("off")
        if name:
            ax.set_title(name, fontsize=10)
    return _save(fig, path)


def panel_grid(n: int, widest: int = 7) -> tuple[int, int]:
    """``(rows, cols)`` for ``n`` panels: the fewest empty cells in the last row, then the
    layout closest to 1.5 columns per row (3 to ``widest`` columns; up to 4 panels fit a row).

    Example:
        >>> panel_grid(21), panel_grid(10), panel_grid(9), panel_grid(3)
        ((3, 7), (2, 5), (3, 3), (1, 3))
    """
    if n <= 4:
        return 1, max(n, 1)
    options = [(-(-n // c) * c - n, abs(c - 1.5 * math.sqrt(n)), c) for c in range(3, widest + 1)]
    cols = min(options)[2]
    return -(-n // cols), cols


def plot_flow_steps(stages: Sequence[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """Grid of scatter plots, one per ``(title, points (M, 2))`` stage, in the given order.

    The course notes' figure: "Noise samples" first, then the points after each step of the
    inverse flow, laid out by :func:`panel_grid`. Each panel has its own limits, since the
    stages live on different scales.
    """
    if not stages:
        raise ValueError("plot_flow_steps needs at least one stage")
    nrows, ncols = panel_grid(len(stages))
    fig, axes = _figure(nrows, ncols, (2.9 * ncols, 3.1 * nrows))
    for ax in axes.flat[len(stages) :]:
        ax.axis("off")
    for ax, (title, pts) in zip(axes.flat, stages, strict=False):
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        _scatter(ax, pts, title, _limits(pts), "tab:purple")
        ax.title.set_fontsize(9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_density_2d(
    log_prob_fn: Callable[[np.ndarray], np.ndarray],
    path: str | Path,
    bounds: Bounds = ((-1.5, 2.5), (-1.0, 1.5)),
    resolution: int = 200,
    data: np.ndarray | None = None,
    log_range: float = 12.0,
    title: str = "Model density",
) -> Path:
    """Heat maps of the density ``exp(log_prob_fn(grid))`` over ``bounds`` and, beside it, of
    the log-density (which shows the tails), optionally with data on top.

    Args:
        log_prob_fn: Maps float64 points (M, 2) to log-densities (M,).
        path: Where to write the PNG.
        bounds: ``((x_min, x_max), (y_min, y_max))``.
        resolution: Grid points per axis.
        data: Optional points (K, 2) drawn on top as small dots.
        log_range: The log-density panel spans ``log_range`` nats below its maximum (lower
            values are drawn at that floor); 0 draws the linear panel alone.
        title: The linear panel's title.
    """
    (x0, x1), (y0, y1) = bounds
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    log_p = np.asarray(log_prob_fn(grid), dtype=np.float64).reshape(resolution, resolution)
    log_p = np.where(np.isfinite(log_p), log_p, -np.inf)
    panels = [(title, np.exp(log_p), "density")]
    if log_range > 0:
        top = float(np.max(log_p)) if np.isfinite(log_p).any() else 0.0
        floor = top - log_range
        panels.append(
            (f"Model log-density (floor: max - {log_range:g})", np.maximum(log_p, floor),
             "log density (nats)")
        )  # fmt: skip
    height = 5 * (y1 - y0) / (x1 - x0) + 0.6
    fig, axes = _figure(1, len(panels), (5.6 * len(panels), height))
    for ax, (heading, values, label) in zip(axes.flat, panels):
        mesh = ax.pcolormesh(gx, gy, values, cmap="viridis", shading="auto")
        fig.colorbar(mesh, ax=ax, label=label, shrink=0.85)
        if data is not None:
            pts = np.asarray(data, dtype=np.float64).reshape(-1, 2)
            ax.scatter(pts[:, 0], pts[:, 1], s=1, color="white", alpha=0.3, linewidths=0)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_title(heading)
    fig.tight_layout()
    return _save(fig, path)
