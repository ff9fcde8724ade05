"""scikit-learn's bundled 8x8 digits (no download): 1797 images, integers 0..16 as uint8, with
the digit (0..9) of each as its label.

scikit-learn is an optional dependency (``pip install 'flowspec[digits]'``); asking for the
digits without it is a ``missing-extra`` error that names the extra.
"""

from __future__ import annotations

import numpy as np

from flowspec.data.base import DatasetInfo, SplitTriple, carve
from flowspec.errors import Diagnostic, FlowspecError

__all__ = ["DIGITS"]


def _digits_labelled(seed: int) -> tuple[SplitTriple, SplitTriple]:
    try:
        from sklearn.datasets import load_digits  # bundled with scikit-learn, no download
    except ImportError:
        raise FlowspecError(
            Diagnostic(
                "missing-extra",
                "the 'digits' data set needs scikit-learn, which is not installed",
                "data",
                hint="pip install 'flowspec[digits]' (or: pip install scikit-learn)",
            )
        ) from None
    digits = load_digits()
    images = digits.images.astype(np.uint8)[:, None, :, :]
    # carve shuffles with the seed alone, so images and labels stay aligned
    return carve(images, seed), carve(digits.target.astype(np.int64), seed)


def _digits_splits(seed: int) -> SplitTriple:
    return _digits_labelled(seed)[0]


DIGITS = DatasetInfo(
    _digits_splits,
    (1, 8, 8),
    17,
    "sklearn 8x8 digits, integers 0..16",
    labels=_digits_labelled,
    classes=10,
)
