"""Value checks of data against the flow that will model it, made before any training step.

A flow that starts with ``dequantize`` (``levels: L``) models integers ``0 .. L-1``: float data
would be dequantised as if it were integers (training runs, and the bits/dim it reports means
nothing), and integers at or above ``L`` leave ``[0, 1)`` after the layer's ``(x + u) / L`` (the
next ``logit`` then overflows at the first step). Both are data errors named up front, with the
range of values seen and the range expected.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from flowspec.data.base import fail

__all__ = ["check_levels"]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _chunks(array: Any, chunk_bytes: int = 1 << 24) -> Iterator[np.ndarray]:
    """The rows of an array, a memory map or lazy :class:`~flowspec.data.base.Rows`, about
    16 MB at a time (data on disk is scanned, never loaded whole)."""
    row = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    step = max(1, chunk_bytes // row)
    for start in range(0, len(array), step):
        yield np.asarray(array[start : start + step])


def check_levels(
    arrays: Sequence[Any], levels: int | None, where: str, known: int | None = None
) -> None:
    """Refuse data that a leading ``dequantize`` layer with ``levels`` cannot model.

    Arguments:
        arrays: the data (e.g. the train, validation and test splits), any shapes: arrays,
            memory maps or lazy rows (scanned in chunks).
        levels: the ``levels`` of the flow's leading ``dequantize`` (None: nothing to check).
        where: what the data is, for the message (``data set 'digits'``, ``data in x.npy``).
        known: the data's own ``discrete_levels`` when its reader knows them (integers
            ``0 .. known-1``, e.g. 256 for 8-bit images); integer data within the layer's
            levels is then not scanned.

    Raises:
        DataError: ``data-not-integer`` (values with a fractional part) or ``data-levels``
            (integers outside ``0 .. levels-1``).

    Example:
        >>> check_levels([np.array([[0, 3], [16, 2]])], 17, "digits")
        >>> check_levels([np.array([[0.5, 3.0]])], 17, "x.npy")
        Traceback (most recent call last):
        ...
        flowspec.errors.DataError: data: error[data-not-integer]: x.npy holds non-integer values (0.5 .. 3); the spec's dequantize layer expects integers 0 .. 16
            hint: give the integer data (pixel levels 0 .. 16), or remove the dequantize layer to model continuous data
    """  # noqa: E501
    if levels is None:
        return
    present = [a for a in arrays if len(a) and int(np.prod(a.shape[1:], dtype=np.int64))]
    if not present:
        return
    integer = all(a.dtype.kind in "biu" for a in present)
    if integer and known is not None and known <= levels:
        return  # integers 0 .. known-1, as their reader found: nothing to scan
    low, high, fractional = float("inf"), float("-inf"), False
    for array in present:  # scanned for the exact range the message names
        for chunk in _chunks(array):
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
            fractional = fractional or (
                chunk.dtype.kind == "f" and bool((chunk != np.floor(chunk)).any())
            )
    expected = f"integers 0 .. {levels - 1}"
    if fractional:
        raise fail(
            "data-not-integer",
            f"{where} holds non-integer values ({_fmt(low)} .. {_fmt(high)}); the spec's "
            f"dequantize layer expects {expected}",
            f"give the integer data (pixel levels 0 .. {levels - 1}), or remove the dequantize "
            "layer to model continuous data",
        )
    if low < 0 or high > levels - 1:
        raise fail(
            "data-levels",
            f"{where} holds values {_fmt(low)} .. {_fmt(high)}, outside the {expected} that the "
            f"spec's dequantize layer (levels: {levels}) expects",
            f"set 'levels: {int(high) + 1}' on the dequantize layer"
            if low >= 0
            else "shift the data to start at 0",
        )
