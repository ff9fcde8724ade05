"""scikit-learn's bundled 8x8 digits (no download): 1797 images, integers 0..16 as uint8.

scikit-learn is an optional dependency (``pip install 'flowspec[digits]'``); asking for the
digits without it is a ``missing-extra`` error that names the extra.
"""

from __future__ import annotations

import numpy as np

from flowspec.data.base import DatasetInfo, SplitTriple, carve
from flowspec.errors import Diagnostic, FlowspecError

__all__ = ["DIGITS"]


def _digits_splits(seed: int) -> SplitTriple:
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
    images = load_digits().images.astype(np.uint8)[:, None, :, :]
    return carve(images, seed)


DIGITS = DatasetInfo(_digits_splits, (1, 8, 8), 17, "sklearn 8x8 digits, integers 0..16")
