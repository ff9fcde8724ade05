"""Value checks of data against the flow that will model it, made before any training step.

A flow that starts with ``dequantize`` (``levels: L``) models integers ``0 .. L-1``: float data
would be dequantised as if it were integers (training runs, and the bits/dim it reports means
nothing), and integers at or above ``L`` leave ``[0, 1)`` after the layer's ``(x + u) / L`` (the
next ``logit`` then overflows at the first step). Both are data errors named up front, with the
range of values seen and the range expected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowspec.data.base import fail

__all__ = ["check_levels"]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def check_levels(arrays: Sequence[np.ndarray], levels: int | None, where: str) -> None:
    """Refuse data that a leading ``dequantize`` layer with ``levels`` cannot model.

    Arguments:
        arrays: the data (e.g. the train, validation and test splits), any shapes.
        levels: the ``levels`` of the flow's leading ``dequantize`` (None: nothing to check).
        where: what the data is, for the message (``data set 'digits'``, ``data in x.npy``).

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
    present = [np.asarray(a) for a in arrays if np.asarray(a).size]
    if not present:
        return
    low = min(float(a.min()) for a in present)
    high = max(float(a.max()) for a in present)
    expected = f"integers 0 .. {levels - 1}"
    fractional = any(a.dtype.kind == "f" and bool((a != np.floor(a)).any()) for a in present)
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
