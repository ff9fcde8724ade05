"""ImageNet-32/64-style ``.npz`` files (the downsampled ImageNet of Chrabaszcz et al. 2017),
read without pickle; stored (uncompressed) members are memory-mapped.

A file holds ``data``: uint8 images, either flat rows ``(N, C * H * W)`` with one plane per
channel (1024 red, then green, then blue bytes for 32x32) or ``(N, C, H, W)``; and optionally
``labels`` ``(N,)``, 1-based as in those files (1..1000), which become contexts ``0 .. K-1``.
Other members (``mean``) are ignored. A folder with ``train_data_batch_*.npz`` gives the
training pool (a tenth of it, chosen by the seed, is the validation split) and, when
``val_data.npz`` is there, the official validation images as the test split.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from flowspec.data.base import Concatenated, Loaded, MappedArray, RowSource, fail

__all__ = ["is_npz_folder", "load_npz_file", "load_npz_folder", "npz_member"]

_HINT = (
    "an ImageNet-style .npz holds 'data' (N, C*H*W) or (N, C, H, W) uint8 and optionally "
    "'labels' (N,) starting at 1, saved with numpy.savez"
)


def npz_member(path: Path, name: str) -> np.ndarray | None:
    """Member ``name`` of an ``.npz`` (None when absent), memory-mapped when it is stored
    uncompressed; object arrays are refused without being unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy") if f"{name}.npy" in archive.namelist() else None
            if info is None:
                return None
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(member)
                header = member.tell() if info.compress_type == zipfile.ZIP_STORED else None
                if dtype.hasobject:
                    msg = f"{path}: member '{name}' holds pickled Python objects, refused"
                    raise fail("data-unreadable", msg, _HINT)
            if header is None:  # compressed: read it whole
                with archive.open(info) as member:
                    return np.lib.format.read_array(member, allow_pickle=False)
        with path.open("rb") as raw:  # the member's bytes start after its local file header
            raw.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
        start = info.header_offset + 30 + int(name_len) + int(extra_len) + header
        order = "F" if fortran else "C"
        return np.memmap(path, dtype, "r", start, shape, order)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise fail("data-unreadable", f"{path} is not a readable .npz: {exc}", _HINT) from None


def _images(path: Path, shape: tuple[int, ...] | None) -> tuple[RowSource, np.ndarray | None]:
    data = npz_member(path, "data")
    if data is None:
        raise fail("data-unreadable", f"{path} has no member 'data'", _HINT)
    if data.dtype != np.uint8 or data.ndim not in (2, 4):
        msg = f"{path}: 'data' is {data.dtype} of shape {data.shape}; expected uint8 images"
        raise fail("data-unreadable", msg, _HINT)
    if data.ndim == 2:
        channels = shape[0] if shape is not None and len(shape) == 3 else 3
        side = math.isqrt(data.shape[1] // channels)
        if channels * side * side != data.shape[1]:
            msg = f"{path}: rows of {data.shape[1]} bytes are not {channels} square planes"
            raise fail("data-shape", msg, "store 'data' as (N, C, H, W)")
        data = data.reshape(len(data), channels, side, side)
    labels = npz_member(path, "labels")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(data) or labels.dtype.kind not in "iu" or labels.min() < 1:
            msg = (
                f"{path}: 'labels' must be {len(data)} integers starting at 1, got "
                f"{len(labels)} of type {labels.dtype}"
                + (f" with minimum {labels.min()}" if len(labels) else "")
            )
            raise fail("data-labels", msg, _HINT)
        labels = labels.astype(np.int64) - 1
    return MappedArray(data), labels


def load_npz_file(path: Path, shape: tuple[int, ...] | None = None) -> Loaded:
    """One ``.npz`` file, to be split 80/10/10."""
    data, labels = _images(path, shape)
    return Loaded(data, labels=labels, levels=256)


def is_npz_folder(root: Path) -> bool:
    """A folder holding ImageNet-style training batches."""
    return any(root.glob("train_data_batch_*.npz"))


def load_npz_folder(root: Path, shape: tuple[int, ...] | None = None) -> Loaded:
    """``train_data_batch_*.npz`` as the training pool, ``val_data.npz`` (if present) as the
    test split."""
    parts = [_images(p, shape) for p in sorted(root.glob("train_data_batch_*.npz"))]
    if (
        len({part[0].shape[1:] for part in parts}) > 1
        or len({part[1] is None for part in parts}) > 1
    ):
        raise fail("data-shape", f"the batches in {root} differ in image shape or labels", _HINT)
    pool = Concatenated([p[0] for p in parts])
    labels = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])  # type: ignore[misc]
    test_path = root / "val_data.npz"
    if not test_path.is_file():
        return Loaded(pool, labels=labels, levels=256)
    test, test_labels = _images(test_path, shape)
    return Loaded(pool, labels=labels, test=test, test_labels=test_labels, levels=256)
