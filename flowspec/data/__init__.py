"""Data sets, numpy only: built-in toy sets, scikit-learn's digits, and users' files.

:func:`load_splits` is the entry point: a built-in name (see :data:`DATASETS`) or a path to a
``.npy`` / ``.csv`` file, as deterministic, disjoint train/validation/test :class:`Splits`.
File-backed sets are shuffled once with the seed and carved 80/10/10.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

from flowspec.data.base import DatasetInfo, Splits, carve, fail
from flowspec.data.digits import DIGITS
from flowspec.data.files import load_file
from flowspec.data.toy import TOY_SETS, moons_log_density

__all__ = ["DATASETS", "DatasetInfo", "Splits", "list_datasets", "load_splits", "moons_log_density"]

DATASETS: dict[str, DatasetInfo] = {**TOY_SETS, "digits": DIGITS}


def list_datasets() -> list[str]:
    """Names of the built-in data sets, sorted."""
    return sorted(DATASETS)


def _names() -> str:
    return ", ".join(list_datasets())


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or bool(Path(source).suffix) or Path(source).exists()


def load_splits(source: str, shape: tuple[int, ...] | None = None, *, seed: int = 0) -> Splits:
    """Load a built-in data set or a user file as deterministic train/val/test splits.

    Args:
        source: A built-in name (see :func:`list_datasets`) or a path to a ``.npy`` of shape
            ``(N, D)`` / ``(N, C, H, W)`` or a numeric ``.csv`` of shape ``(N, D)``. Integer
            ``.npy`` data stays int64 (``discrete_levels = max + 1`` when non-negative); floats
            and every ``.csv`` become float32 and continuous.
        shape: The per-example shape the flow expects, e.g. ``(2,)``; checked when given.
        seed: Seed of the split streams (toy sets) or of the shuffle (file-backed sets).

    Returns:
        The :class:`Splits`; train/val/test are disjoint.

    Raises:
        DataError: with code ``unknown-dataset``, ``data-missing``, ``data-format``,
            ``data-unreadable``, ``data-nonfinite``, ``data-too-small`` or ``data-shape``.
    """
    info = DATASETS.get(source)
    if info is not None:
        train, val, test = info.generate(seed)
        levels, where = info.discrete_levels, f"data set {source!r}"
    elif _looks_like_path(source):
        data, levels = load_file(Path(source), _names())
        train, val, test = carve(data, seed)
        where = f"data in {Path(source).name}"
    else:
        close = difflib.get_close_matches(source.lower(), list_datasets(), n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + "built-in data sets: "
        hint += _names() + "; or give a path to a .npy/.csv file"
        raise fail("unknown-dataset", f"unknown data set {source!r}", hint)
    found, shape = tuple(train.shape[1:]), None if shape is None else tuple(shape)
    if shape is not None and found != shape:
        msg = f"{where} has examples of shape {found}, but the spec's input shape is {shape}"
        hint = "change the spec's input shape or use matching data"
        if math.prod(found) == math.prod(shape):
            hint = "the sizes agree: reshape the data or change the spec's input shape"
        raise fail("data-shape", msg, hint)
    return Splits(train=train, val=val, test=test, name=source, discrete_levels=levels)
