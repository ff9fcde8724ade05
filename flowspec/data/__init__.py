"""Data sets, numpy only: built-in toy sets, scikit-learn's digits, and users' files.

:func:`load_splits` is the entry point: a built-in name (see :data:`DATASETS`) or a path to a
``.npy`` / ``.csv`` / ``.npz`` / CIFAR-10 ``.bin`` file or a folder (CIFAR-10 binary batches,
ImageNet-style ``.npz`` batches, PNG/JPEG images), as deterministic, disjoint
train/validation/test :class:`Splits`. File-backed sets are shuffled once with the seed and
carved 80/10/10; a format that ships its own test part (CIFAR-10's ``test_batch.bin``) keeps it
as the test split and holds out a tenth of the rest for validation. :func:`load_examples` reads
every example of a file, unsplit (``flowspec eval --data FILE`` scores a held-out file whole);
:func:`check_levels` refuses data a ``dequantize`` layer cannot model. The contexts of
conditional flows travel with the examples: built-in sets' labels, a format's labels, an
``.npz``'s ``context`` array, or ``context_columns`` of a table; :mod:`flowspec.data.context`
checks them against a spec's ``context:``. Exact densities of the 2-D sets:
:mod:`flowspec.data.densities`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowspec.data.base import (
    DatasetInfo,
    Loaded,
    MappedArray,
    Rows,
    Splits,
    carve_index,
    fail,
)
from flowspec.data.checks import check_levels
from flowspec.data.context import check_context, check_splits_context, take_columns
from flowspec.data.densities import log_density
from flowspec.data.digits import DIGITS
from flowspec.data.files import load_file
from flowspec.data.toy import TOY_SETS, moons_log_density
from flowspec.errors import DataError, Diagnostic, Location

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "Rows",
    "Splits",
    "check_levels",
    "check_source",
    "is_builtin",
    "list_datasets",
    "load_examples",
    "load_examples_with_contexts",
    "load_splits",
    "log_density",
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


def _rows_of(data: np.ndarray | object, index: np.ndarray) -> np.ndarray | Rows:
    """Rows ``index`` of ``data``: copied from an array in memory, a lazy :class:`Rows` of a
    memory map or another row source."""
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return data[index]
    source = MappedArray(data) if isinstance(data, np.ndarray) else data
    return Rows(source, index)  # type: ignore[arg-type]


def split_loaded(loaded: Loaded, seed: int) -> tuple[list[np.ndarray | Rows], list | None]:
    """Train/val/test of what a reader returned, and their labels (None without labels)."""
    n = loaded.data.shape[0]
    if loaded.test is None:
        parts = list(carve_index(n, seed))
    else:  # the format's own test part: hold a tenth of the rest out for validation
        perm = np.random.default_rng(seed).permutation(n)
        n_val = max(1, int(0.1 * n))
        parts = [perm[n_val:], perm[:n_val]]
    splits = [_rows_of(loaded.data, index) for index in parts]
    labels = None if loaded.labels is None else [loaded.labels[index] for index in parts]
    if loaded.test is not None:
        test_n = loaded.test.shape[0]
        splits.append(_rows_of(loaded.test, np.arange(test_n)))
        if labels is not None:
            test_labels = loaded.test_labels
            labels.append(np.zeros(test_n, np.int64) if test_labels is None else test_labels)
    return splits, labels


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
    hint += _names() + "; or give a path to a data file or folder"
    diag = fail("unknown-dataset", f"unknown data set {source!r}", hint).diagnostics[0]
    raise DataError(Diagnostic(diag.code, diag.message, path, location, diag.hint))


def _check_shape(
    found: tuple[int, ...], shape: tuple[int, ...] | None, where: str, conditional: bool = False
) -> None:
    if shape is not None and found != tuple(shape):
        msg = f"{where} has examples of shape {found}, but the spec's input shape is {shape}"
        hint = "change the spec's input shape or use matching data"
        if math.prod(found) == math.prod(shape):
            hint = "the sizes agree: reshape the data or change the spec's input shape"
        elif conditional and len(found) == len(shape) == 1 and found[0] > shape[0]:
            hint = "a conditional flow: name the table's context columns (--context-columns)"
        raise fail("data-shape", msg, hint)


def _with_context_columns(loaded: Loaded, columns: Sequence[int], where: str) -> Loaded:
    """A table's examples without the context columns, and those columns as its context."""
    if not isinstance(loaded.data, np.ndarray) or loaded.test is not None:
        raise fail("context-shape", f"data in {where}: context columns need a table (N, D)")
    data, found = take_columns(np.asarray(loaded.data), columns, f"data in {where}")
    levels = loaded.levels
    if levels is not None and data.size:  # integer data: the levels of what remains
        levels = int(data.max()) + 1 if int(data.min()) >= 0 else None
    return Loaded(data, labels=found, levels=levels)


def load_examples(
    source: str,
    shape: tuple[int, ...] | None = None,
    size: tuple[int, int] | None = None,
    crop: str = "none",
) -> tuple[np.ndarray | Rows, int | None]:
    """Every example of the file or folder ``source``, unsplit, as ``(data, discrete_levels)``:
    a held-out file is scored whole. Any number of examples (one or more) is accepted; a
    format's own test part is scored with the rest.

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
    data, levels, _ = load_examples_with_contexts(source, shape, size, crop)
    return data, levels


def load_examples_with_contexts(
    source: str,
    shape: tuple[int, ...] | None = None,
    size: tuple[int, int] | None = None,
    crop: str = "none",
    context: Any = None,
    context_columns: Sequence[int] | None = None,
) -> tuple[np.ndarray | Rows, int | None, np.ndarray | None]:
    """:func:`load_examples` with the examples' contexts (None when the file has none),
    checked against a conditional spec's ``context`` when given."""
    if source in DATASETS:
        raise fail(
            "unknown-dataset",
            f"{source!r} is a built-in data set, not a file",
            "built-in sets are scored by split: --split train|val|test",
        )
    check_source(source)
    wanted = None if shape is None else tuple(shape)
    loaded = load_file(Path(source), _names(), wanted, size, crop, split=False)
    where = Path(source).name
    if context_columns:
        loaded = _with_context_columns(loaded, context_columns, where)
    data = _rows_of(loaded.data, np.arange(loaded.data.shape[0]))
    labels = loaded.labels
    if loaded.test is not None:
        test = _rows_of(loaded.test, np.arange(loaded.test.shape[0]))
        data = np.concatenate([np.asarray(data), np.asarray(test)])
        if labels is not None:
            extra = loaded.test_labels
            extra = np.zeros(len(test), np.int64) if extra is None else extra
            labels = np.concatenate([labels, extra])
    _check_shape(tuple(data.shape[1:]), wanted, f"data in {where}", context is not None)
    if context is not None:
        if labels is None:
            raise fail(
                "context-missing",
                f"the flow is conditional but data {source!r} has no context",
                "give an .npz with arrays 'x' and 'context', or name the context columns of a "
                "table (--context-columns)",
            )
        labels = check_context(labels, context, f"data {source!r}")
    return data, loaded.levels, labels


def load_splits(
    source: str,
    shape: tuple[int, ...] | None = None,
    *,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    crop: str = "none",
    context: Any = None,
    context_columns: Sequence[int] | None = None,
) -> Splits:
    """Load a built-in data set, a user file or a folder as deterministic train/val/test splits.

    Args:
        source: A built-in name (see :func:`list_datasets`), a path to a ``.npy`` of shape
            ``(N, D)`` / ``(N, C, H, W)``, a numeric ``.csv`` of shape ``(N, D)``, an
            ImageNet-style ``.npz``, a CIFAR-10 binary ``.bin``, or a folder (CIFAR-10 binary
            batches, ImageNet-style ``.npz`` batches, or PNG/JPEG images, one subfolder per
            class for labels). Integer data keeps the smallest integer type holding it
            (``discrete_levels = max + 1`` when non-negative, 256 for 8-bit images); floats and
            every ``.csv`` become float32 and continuous. ``.npy`` files and CIFAR-10 batches
            are memory-mapped and images decoded when read: such splits are lazy :class:`Rows`.
        shape: The per-example shape the flow expects, e.g. ``(2,)``; checked when given (and
            for images, its channel count picks grey or RGB).
        seed: Seed of the split streams (toy sets) or of the shuffle (file-backed sets).
        size: Resize images of a folder to ``(H, W)``.
        crop: ``"center"``: cut images of a folder to their largest centred region with the
            target's aspect ratio first.
        context: The spec's ``context:`` (a conditional flow): the data's context is checked
            against it; None leaves any context unchecked (unconditional flows ignore it).
        context_columns: Columns (0-based) of a table file (``.csv``, a 2-D ``.npy``) that hold
            the context rather than the examples.

    Returns:
        The :class:`Splits`; train/val/test are disjoint. ``contexts`` holds the labels of
        formats that have them.

    Raises:
        DataError: with code ``unknown-dataset``, ``data-missing``, ``data-format``,
            ``data-unreadable``, ``data-nonfinite``, ``data-too-small``, ``data-shape`` or
            ``data-labels``.
    """
    check_source(source)
    info, contexts = DATASETS.get(source), None
    if info is not None and context_columns:
        raise fail(
            "context-shape",
            f"context columns apply to table files, not to the built-in set {source!r}",
            "drop --context-columns: built-in sets carry their labels",
        )
    if info is not None:
        if info.labels is not None:
            (train, val, test), contexts = info.labels(seed)
        else:
            train, val, test = info.generate(seed)
        levels, where = info.discrete_levels, f"data set {source!r}"
    else:
        wanted = None if shape is None else tuple(shape)
        loaded = load_file(Path(source), _names(), wanted, size, crop)
        if context_columns:
            loaded = _with_context_columns(loaded, context_columns, Path(source).name)
        (train, val, test), labels = split_loaded(loaded, seed)
        contexts = None if labels is None else tuple(labels)
        levels, where = loaded.levels, f"data in {Path(source).name}"
    found, wanted = tuple(train.shape[1:]), None if shape is None else tuple(shape)
    _check_shape(found, wanted, where, context is not None)
    columns = tuple(context_columns) if context_columns else None
    splits = Splits(train, val, test, source, levels, contexts, columns)  # type: ignore[arg-type]
    return check_splits_context(splits, context)
