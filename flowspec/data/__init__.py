"""Data sets, numpy only: built-in toy sets, scikit-learn's digits, and users' files.

:func:`load_splits` is the entry point: a built-in name (see :data:`DATASETS`) or a path to a
``.npy`` / ``.csv`` file, as deterministic, disjoint train/validation/test :class:`Splits`.
File-backed sets are shuffled once with the seed and carved 80/10/10. :func:`load_examples`
reads every example of a file, unsplit (``flowspec eval --data FILE`` scores a held-out file
whole); :func:`check_levels` refuses data a ``dequantize`` layer cannot model.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import numpy as np

from flowspec.data.base import MIN_EXAMPLES, DatasetInfo, Splits, carve, fail
from flowspec.data.checks import check_levels
from flowspec.data.digits import DIGITS
from flowspec.data.files import load_file
from flowspec.data.toy import TOY_SETS, moons_log_density
from flowspec.errors import DataError, Diagnostic, Location

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "Splits",
    "check_levels",
    "check_source",
    "is_builtin",
    "list_datasets",
    "load_examples",
    "load_splits",
    "moons_log_density",
]

DATASETS: dict[str, DatasetInfo] = {**TOY_SETS, "digits": DIGITS}


def list_datasets() -> list[str]:
    """Names of the built-in data sets, sorted."""
    return sorted(DATASETS)


def _names() -> str:
    return ", ".join(list_datasets())


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or bool(Path(source).suffix) or Path(source).exists()


def is_builtin(source: str) -> bool:
    """Whether ``source`` names a built-in data set (else it is a path to a file)."""
    return source in DATASETS


def check_source(source: str, location: Location | None = None, path: str = "data") -> None:
    """Refuse a ``source`` that is neither a built-in name nor looks like a path to a file, with
    a "did you mean" hint; ``location`` and ``path`` place the error in a spec.

    Example:
        >>> check_source("moons"), check_source("points.npy")
        (None, None)
    """
    if source in DATASETS or _looks_like_path(source):
        return
    close = difflib.get_close_matches(source.lower(), list_datasets(), n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + "built-in data sets: "
    hint += _names() + "; or give a path to a .npy/.csv file"
    diag = fail("unknown-dataset", f"unknown data set {source!r}", hint).diagnostics[0]
    raise DataError(Diagnostic(diag.code, diag.message, path, location, diag.hint))


def _check_shape(found: tuple[int, ...], shape: tuple[int, ...] | None, where: str) -> None:
    if shape is not None and found != tuple(shape):
        msg = f"{where} has examples of shape {found}, but the spec's input shape is {shape}"
        hint = "change the spec's input shape or use matching data"
        if math.prod(found) == math.prod(shape):
            hint = "the sizes agree: reshape the data or change the spec's input shape"
        raise fail("data-shape", msg, hint)


def load_examples(
    source: str, shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, int | None]:
    """Every example of the file ``source``, unsplit, as ``(data, discrete_levels)``: a held-out
    file is scored whole. Any number of examples (one or more) is accepted.

    Raises:
        DataError: as :func:`load_splits`; a built-in name is ``unknown-dataset`` here, since
            built-in sets come only as splits.
    """
    if source in DATASETS:
        raise fail(
            "unknown-dataset",
            f"{source!r} is a built-in data set, not a file",
            "built-in sets are scored by split: --split train|val|test",
        )
    check_source(source)
    data, levels = load_file(Path(source), _names())
    _check_shape(tuple(data.shape[1:]), None if shape is None else tuple(shape),
                 f"data in {Path(source).name}")  # fmt: skip
    return data, levels


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
    check_source(source)
    info = DATASETS.get(source)
    if info is not None:
        train, val, test = info.generate(seed)
        levels, where = info.discrete_levels, f"data set {source!r}"
    else:
        data, levels = load_file(Path(source), _names())
        if len(data) < MIN_EXAMPLES:
            msg = f"{source} has {len(data)} examples; an 80/10/10 split needs {MIN_EXAMPLES}"
            hint = "provide more examples (flowspec eval --data FILE scores a file of any size)"
            raise fail("data-too-small", msg, hint)
        train, val, test = carve(data, seed)
        where = f"data in {Path(source).name}"
    _check_shape(tuple(train.shape[1:]), None if shape is None else tuple(shape), where)
    return Splits(train=train, val=val, test=test, name=source, discrete_levels=levels)
