"""scikit-learn's bundled 8x8 digits (no download): 1797 images, integers 0..16 as uint8."""

from __future__ import annotations

import numpy as np

from flowspec.data.base import DatasetInfo, SplitTriple, carve

__all__ = ["DIGITS"]


def _digits_splits(seed: int) -> SplitTriple:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    images = load_digits().images.astype(np.uint8)[:, None, :, :]
    return carve(images, seed)


DIGITS = DatasetInfo(_digits_splits, (1, 8, 8), 17, "sklearn 8x8 digits, integers 0..16")
