"""What every data source produces: deterministic train/validation/test splits.

Conventions: every array has the example axis first, ``(N, *shape)``. Continuous data is float32;
discrete data (digits, integer ``.npy`` files) stays int64 with values ``0 .. discrete_levels - 1``.
Splits are deterministic for a given ``seed`` and never overlap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowspec.errors import DataError, Diagnostic

__all__ = ["MIN_EXAMPLES", "DatasetInfo", "SplitTriple", "Splits", "carve", "fail"]

SplitTriple = tuple[np.ndarray, np.ndarray, np.ndarray]
MIN_EXAMPLES = 10


@dataclass(frozen=True)
class Splits:
    """Train/validation/test arrays of one data set, each of shape ``(N_split, *shape)``."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    name: str
    discrete_levels: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-example shape, e.g. ``(2,)`` or ``(1, 8, 8)``."""
        return tuple(self.train.shape[1:])

    def digest(self) -> str:
        """SHA-256 of the three splits' dtypes, shapes and values and of ``discrete_levels``:
        equal digests mean the same examples in the same splits (a resumed run checks it)."""
        digest = hashlib.sha256(f"levels={self.discrete_levels}".encode())
        for array in (self.train, self.val, self.test):
            array = np.ascontiguousarray(array)
            digest.update(f"\0{array.dtype.str}\0{array.shape}\0".encode())
            digest.update(array.reshape(-1).view(np.uint8))
        return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in data set: ``generate(seed)`` returns ``(train, val, test)``."""

    generate: Callable[[int], SplitTriple]
    shape: tuple[int, ...]
    discrete_levels: int | None
    description: str


def fail(code: str, message: str, hint: str | None = None) -> DataError:
    """A located-at-``data`` :class:`DataError` with one diagnostic."""
    return DataError(Diagnostic(code=code, message=message, path="data", hint=hint))


def carve(data: np.ndarray, seed: int) -> SplitTriple:
    """Shuffle ``data`` with ``seed`` and cut it 80/10/10 (every split non-empty for N >= 10)."""
    n = len(data)
    shuffled = data[np.random.default_rng(seed).permutation(n)]
    n_train, n_val = int(0.8 * n), max(1, int(0.1 * n))
    return (shuffled[:n_train], shuffled[n_train : n_train + n_val], shuffled[n_train + n_val :])
