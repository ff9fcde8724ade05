"""Contexts of conditional flows in data: checked against the spec's ``context:``, numpy only.

A data set's context (``Splits.contexts``) comes from a built-in set's labels, the ``context``
array of an ``.npz`` file, or the ``context_columns`` of a table. Before a conditional flow uses
it, :func:`check_context` makes sure it fits the spec: class labels must be whole numbers in
``0 .. classes-1`` (stored as int64 ``(N,)``), vectors must be finite ``(N, K)`` (float32).
:func:`parse_context` reads the ``--context`` of ``flowspec sample`` the same way. Every problem
is a :class:`~flowspec.errors.DataError` with a ``context-*`` code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from flowspec.data.base import Splits, fail

__all__ = ["check_context", "check_splits_context", "parse_context", "take_columns"]


def check_context(context: np.ndarray, spec: Any, where: str) -> np.ndarray:
    """``context`` (one array, ``(N,)`` or ``(N, K)``) checked against the spec's context and
    typed: int64 labels ``(N,)`` or float32 vectors ``(N, K)``.

    Example:
        >>> from flowspec.spec.context import ClassContextSpec
        >>> check_context(np.array([[0.0], [2.0]]), ClassContextSpec(classes=3), "data")
        array([0, 2])
    """
    arr = np.asarray(context)
    if arr.dtype.kind not in "biuf":
        raise fail("context-shape", f"{where}: the context is not numeric ({arr.dtype})")
    classes = getattr(spec, "classes", None)
    if classes is not None:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise fail(
                "context-shape",
                f"{where}: class labels of shape {arr.shape}; the spec's context takes one "
                f"label per example, (N,)",
                "give one integer label per example",
            )
        whole = np.isfinite(arr) & (arr == np.round(arr)) if arr.dtype.kind == "f" else None
        bad = np.flatnonzero(~whole) if whole is not None else np.array([], dtype=int)
        if not bad.size:
            bad = np.flatnonzero((arr < 0) | (arr >= classes))
        if bad.size:
            raise fail(
                "context-range",
                f"{where}: {bad.size} label(s) are not whole numbers in 0..{classes - 1} "
                f"(first: {arr[bad[0]].item()!r} at example {bad[0]})",
                f"the spec's context has {classes} classes; fix the labels or 'classes:'",
            )
        return arr.astype(np.int64)
    width = spec.features
    if arr.ndim == 1 and width == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != width:
        raise fail(
            "context-shape",
            f"{where}: context of shape {arr.shape}; the spec's context is a vector of "
            f"{width} per example, (N, {width})",
            "change the spec's 'context: {shape: [K]}' or the data's context",
        )
    arr = arr.astype(np.float32)
    rows = int((~np.isfinite(arr)).any(axis=1).sum())
    if rows:
        raise fail("data-nonfinite", f"{where}: {rows} context row(s) hold NaN or Inf")
    return arr


def check_splits_context(splits: Splits, spec: Any) -> Splits:
    """``splits`` with their contexts checked against the spec's ``context:`` (None: nothing
    to check; an unconditional flow ignores any context the data has)."""
    if spec is None:
        return splits
    if splits.contexts is None:
        raise fail(
            "context-missing",
            f"the flow is conditional but data {splits.name!r} has no context",
            "built-in sets carry labels; give an .npz with arrays 'x' and 'context', or name "
            "the context columns of a table (--context-columns)",
        )
    where = f"data {splits.name!r}"
    contexts = tuple(check_context(c, spec, where) for c in splits.contexts)
    return dataclasses.replace(splits, contexts=contexts)  # type: ignore[arg-type]


def take_columns(
    data: np.ndarray, columns: Sequence[int], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split a table ``(N, D)`` into the examples (the other columns) and the context (these
    columns, 0-based, in the order given)."""
    if data.ndim != 2:
        raise fail(
            "context-shape", f"{where}: context columns need a table (N, D), not {data.shape}"
        )
    width = data.shape[1]
    bad = [c for c in columns if not 0 <= c < width]
    if bad or len(set(columns)) != len(columns) or len(columns) >= width:
        raise fail(
            "context-shape",
            f"{where}: context columns {list(columns)} do not fit a table of {width} columns",
            f"give distinct 0-based column numbers below {width}, leaving data columns",
        )
    rest = [c for c in range(width) if c not in set(columns)]
    return data[:, rest], data[:, list(columns)]


def parse_context(text: str, spec: Any) -> np.ndarray:
    """A context written on the command line: ``3`` (a class) or ``0.5,1.2`` (a vector), as a
    one-example array checked against the spec's context."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise fail(
            "context-shape",
            f"--context {text!r} is not a number or a comma-separated list of numbers",
        ) from None
    arr = np.array(values)
    if getattr(spec, "classes", None) is not None and len(values) != 1:
        raise fail(
            "context-shape",
            f"--context {text!r} holds {len(values)} values; the model takes one class label",
        )
    arr = arr if getattr(spec, "classes", None) is not None else arr[None, :]
    return check_context(arr, spec, f"--context {text}")
