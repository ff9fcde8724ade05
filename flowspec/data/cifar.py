"""CIFAR-10 in its binary version (``cifar-10-batches-bin``): raw bytes, memory-mapped, no pickle.

Each file is a sequence of 3073-byte records: one label byte (0..9), then the 32x32 image as
1024 red, 1024 green and 1024 blue bytes in row-major order, i.e. an ``(3, 32, 32)`` uint8 array.
A folder with ``data_batch_1.bin .. data_batch_5.bin`` gives 50,000 training images (a tenth of
them, chosen by the seed, is the validation split) and, when ``test_batch.bin`` is there, the
official 10,000 test images as the test split. A single ``.bin`` file is split 80/10/10.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowspec.data.base import Concatenated, Loaded, fail, hash_rows

__all__ = ["CIFAR_RECORD", "CifarBatch", "is_cifar_folder", "load_cifar_file", "load_cifar_folder"]

CIFAR_SHAPE = (3, 32, 32)
CIFAR_RECORD = 1 + 3 * 32 * 32
CLASSES = 10
_HINT = (
    "CIFAR-10 binary batches hold 3073-byte records (1 label byte, 3072 pixel bytes); download "
    "the 'binary version' (cifar-10-binary.tar.gz), not the Python (pickle) one"
)


class CifarBatch:
    """A :class:`~flowspec.data.base.RowSource` over one memory-mapped batch file."""

    def __init__(self, path: Path) -> None:
        size = path.stat().st_size
        if size == 0 or size % CIFAR_RECORD:
            extra = " (3074-byte records are CIFAR-100's)" if size % 3074 == 0 and size else ""
            msg = f"{path} has {size} bytes, not a whole number of 3073-byte records{extra}"
            raise fail("data-unreadable", msg, _HINT)
        self.path = path
        self.shape = (size // CIFAR_RECORD, *CIFAR_SHAPE)
        self.dtype = np.dtype(np.uint8)
        self._records: np.ndarray | None = None

    @property
    def records(self) -> np.ndarray:
        if self._records is None:  # opened lazily, so a worker process maps the file itself
            self._records = np.memmap(self.path, np.uint8, "r").reshape(-1, CIFAR_RECORD)
        return self._records

    def labels(self) -> np.ndarray:
        labels = np.asarray(self.records[:, 0], dtype=np.int64)
        bad = np.flatnonzero(labels >= CLASSES)
        if len(bad):
            msg = (
                f"{self.path}, record {bad[0]} (byte {bad[0] * CIFAR_RECORD}): label "
                f"{labels[bad[0]]}, CIFAR-10 labels are 0..9"
            )
            raise fail("data-labels", msg, _HINT)
        return labels

    def read(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.records[index, 1:]).reshape(len(index), *CIFAR_SHAPE)

    def fingerprint(self, digest: Any) -> None:
        hash_rows(self.records, digest)

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "_records": None}


def is_cifar_folder(root: Path) -> bool:
    """A folder holding CIFAR-10 binary training batches."""
    return any(root.glob("data_batch_*.bin"))


def load_cifar_file(path: Path) -> Loaded:
    """One binary batch file: its images and labels, to be split 80/10/10."""
    batch = CifarBatch(path)
    return Loaded(batch, labels=batch.labels(), levels=256)


def load_cifar_folder(root: Path) -> Loaded:
    """``data_batch_*.bin`` as the training pool and ``test_batch.bin`` (if present) as the
    test split."""
    batches = [CifarBatch(p) for p in sorted(root.glob("data_batch_*.bin"))]
    pool = Concatenated(batches)  # type: ignore[arg-type]
    labels = np.concatenate([b.labels() for b in batches])
    test_path = root / "test_batch.bin"
    if not test_path.is_file():
        return Loaded(pool, labels=labels, levels=256)
    test = CifarBatch(test_path)
    return Loaded(pool, labels=labels, test=test, test_labels=test.labels(), levels=256)
