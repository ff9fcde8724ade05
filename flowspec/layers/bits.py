"""Dependency rows for the mixing analysis: numpy arrays of bits, one row per element.

The mixing analysis (:mod:`flowspec.graph.mixing`) gives every element of a tensor a row of
``words`` unsigned 64-bit integers, C order over the per-example shape: an array ``(n, words)``.
Which input each bit stands for is the analysis' business (every input when the flow is small,
a sample of inputs and the digits of each input's index when it is large); a layer kind's
``mix`` rule only moves rows (permutations, squeezes, splits) and ORs them together
(couplings, 1x1 convolutions, learned priors), with these helpers. Every rule is vectorised, so
the analysis of a 3x256x256 Glow takes well under a second.

Example:
    >>> import numpy as np
    >>> rows = np.array([[1], [2], [4], [8]], dtype=np.uint64)    # 4 elements, 1 word
    >>> or_reduce(rows).tolist()
    [15]
    >>> window_or(rows, 2, 2, 0).ravel().tolist(), window_or(rows, 1, 4, 1).ravel().tolist()
    ([1, 2, 4, 8], [3, 7, 14, 12])
"""

from __future__ import annotations

import numpy as np

__all__ = ["or_reduce", "popcount", "window_or"]


def or_reduce(rows: np.ndarray, axis: int = 0) -> np.ndarray:
    """The OR of ``rows`` along ``axis`` (zeros when the axis is empty)."""
    return np.bitwise_or.reduce(rows, axis=axis)


def window_or(pixels: np.ndarray, height: int, width: int, radius: int | None) -> np.ndarray:
    """For each position of a ``height x width`` grid (rows ``(height * width, words)``, C
    order), the OR of the rows within Chebyshev distance ``radius`` (clipped at the borders, as
    zero padding is; ``None`` = every position). Separable, O(log radius) passes per axis."""
    if radius is None or radius >= max(height, width) - 1:
        return np.broadcast_to(or_reduce(pixels), pixels.shape).copy()
    grid = pixels.reshape(height, width, -1)
    grid = _slide(_slide(grid, radius, 0), radius, 1)
    return grid.reshape(pixels.shape)


def _slide(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """OR over ``[i - radius, i + radius]`` along ``axis`` (a sparse table of doubling spans)."""
    if radius == 0:
        return a
    a = np.moveaxis(a, axis, 0)
    n, length = a.shape[0], 2 * radius + 1
    table = np.zeros((n + 2 * radius, *a.shape[1:]), dtype=a.dtype)
    table[radius : radius + n] = a
    span = 1
    while 2 * span <= length:
        table = table[:-span] | table[span:]
        span *= 2
    out = table[:n] | table[length - span : length - span + n]
    return np.moveaxis(out, 0, axis)


def popcount(rows: np.ndarray) -> np.ndarray:
    """Bits set in each row of ``(n, words)`` uint64 rows, shape ``(n,)``."""
    as_bytes = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)
