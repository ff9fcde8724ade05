"""Built-in 2-D toy data sets, generated in code, with a class label per point.

Each toy set draws its train/validation/test splits from three independent random streams
``default_rng((seed, k))``, so the splits never overlap and are the same for a given seed. Each
point also has the label of the part of the set it was drawn from (the moon, the ring, the
spiral arm, the Gaussian, the board cell): the context of a class-conditional flow, ignored by
unconditional ones. Their exact densities (oracles for test NLLs) are in
:mod:`flowspec.data.densities`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from flowspec.data.base import DatasetInfo, SplitTriple
from flowspec.data.densities import MOONS_NOISE, SPIRAL_TURNS, moons_log_density

__all__ = ["MOONS_NOISE", "TOY_SETS", "TOY_SIZES", "moons_log_density"]

Labelled = tuple[np.ndarray, np.ndarray]  # points (n, 2) and integer labels (n,)
Sampler = Callable[[int, np.random.Generator], Labelled]

TOY_SIZES: tuple[int, int, int] = (50_000, 5_000, 5_000)


def _moons(n: int, rng: np.random.Generator, noise: float = MOONS_NOISE) -> Labelled:
    """Two interleaved half circles, as sklearn's ``make_moons`` but with t ~ U[0, pi]; label 0
    the upper moon, 1 the lower one."""
    t = rng.uniform(0.0, math.pi, size=n)
    inner = np.arange(n) >= n // 2
    x = np.where(inner, 1.0 - np.cos(t), np.cos(t))
    y = np.where(inner, 0.5 - np.sin(t), np.sin(t))
    pts = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return pts[order], inner[order].astype(np.int64)


def _circles(n: int, rng: np.random.Generator) -> Labelled:
    """Two concentric circles of radii 1 and 0.5 (sklearn's factor), noise 0.05, half on each;
    label 0 the outer circle, 1 the inner one."""
    t = rng.uniform(0.0, 2.0 * math.pi, size=n)
    inner = np.arange(n) >= n // 2
    radius = np.where(inner, 0.5, 1.0)
    pts = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    order = rng.permutation(n)
    return (pts + 0.05 * rng.standard_normal((n, 2)))[order], inner[order].astype(np.int64)


def _eight_gaussians(n: int, rng: np.random.Generator) -> Labelled:
    """Equal mixture of 8 isotropic Gaussians (std 0.2) centred on a circle of radius 2; label
    the component, counter-clockwise from angle 0."""
    component = rng.integers(0, 8, size=n)
    angle = component * (math.pi / 4.0)
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return centres + 0.2 * rng.standard_normal((n, 2)), component.astype(np.int64)


def _checkerboard(n: int, rng: np.random.Generator) -> Labelled:
    """Uniform on the 8 black cells of a 4x4 board covering [-2, 2]^2; label the cell."""
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], float)
    cell = rng.integers(0, len(cells), size=n)
    return cells[cell] + rng.uniform(0.0, 1.0, size=(n, 2)) - 2.0, cell.astype(np.int64)


def _spirals(n: int, rng: np.random.Generator) -> Labelled:
    """Two interleaved spirals of 1.5 turns in [-1, 1]^2, radius linear in t; noise 0.05;
    label 0 the arm of positive radius, 1 its point reflection."""
    t_max = 2.0 * math.pi * SPIRAL_TURNS
    t = np.sqrt(rng.uniform(0.0, 1.0, size=n)) * t_max
    second = np.arange(n) >= n // 2
    radius = np.where(second, -1.0, 1.0) * t / t_max
    pts = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    order = rng.permutation(n)
    return (pts + 0.05 * rng.standard_normal((n, 2)))[order], second[order].astype(np.int64)


def _toy_labelled(sampler: Sampler, seed: int) -> tuple[SplitTriple, SplitTriple]:
    """Points (float32) and labels (int64) of train/val/test, drawn from three independent
    streams ``default_rng((seed, k))``."""
    parts = [sampler(n, np.random.default_rng((seed, k))) for k, n in enumerate(TOY_SIZES)]
    points = tuple(p.astype(np.float32) for p, _ in parts)
    labels = tuple(label for _, label in parts)
    return points, labels  # type: ignore[return-value]


def _toy_splits(sampler: Sampler, seed: int) -> SplitTriple:
    return _toy_labelled(sampler, seed)[0]


def _toy(sampler: Sampler, classes: int, description: str) -> DatasetInfo:
    return DatasetInfo(
        partial(_toy_splits, sampler),
        (2,),
        None,
        description,
        labels=partial(_toy_labelled, sampler),
        classes=classes,
    )


TOY_SETS: dict[str, DatasetInfo] = {
    "moons": _toy(_moons, 2, "two interleaved half circles, noise 0.05 (sklearn make_moons)"),
    "circles": _toy(_circles, 2, "two concentric circles, factor 0.5, noise 0.05"),
    "8gaussians": _toy(_eight_gaussians, 8, "8 Gaussians (std 0.2) on a circle of radius 2"),
    "checkerboard": _toy(
        _checkerboard, 8, "uniform on the black cells of a 4x4 board on [-2, 2]^2"
    ),
    "spirals": _toy(_spirals, 2, "two interleaved spirals of 1.5 turns, noise 0.05"),
}
