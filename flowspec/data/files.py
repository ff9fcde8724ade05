"""Users' data files and folders, read and validated; every problem is a located
:class:`~flowspec.errors.DataError`.

| source | examples | labels |
|---|---|---|
| ``.npy`` (memory-mapped, never unpickled) | ``(N, D)`` or ``(N, C, H, W)`` | - |
| ``.csv`` (numbers, an optional header row; numpy's C reader) | ``(N, D)`` | - |
| ``.npz`` with arrays ``x`` and (optional) ``context`` | as ``.npy`` | ``context`` |
| ``.npz``, ImageNet-32/64 style (:mod:`flowspec.data.npz`) | uint8 ``(N, C, H, W)`` | 1-based |
| ``.bin`` or a folder of CIFAR-10 binary batches (:mod:`flowspec.data.cifar`) | uint8 | 0..9 |
| a folder of PNG/JPEG images (:mod:`flowspec.data.images`) | uint8 | class folders |

Integer arrays keep the smallest integer type holding them (``discrete_levels = max + 1`` when
non-negative; 256 for 8-bit image formats); floats and every ``.csv`` become float32 and
continuous.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flowspec.data.base import MIN_EXAMPLES, Loaded, fail, smallest_integer_type
from flowspec.data.cifar import is_cifar_folder, load_cifar_file, load_cifar_folder
from flowspec.data.images import load_image_folder
from flowspec.data.npz import is_npz_folder, load_npz_file, load_npz_folder, npz_member

__all__ = ["LOADERS", "RECORD_LOADERS", "load_file", "load_folder"]


def _check_npy_header(path: Path, hint: str) -> None:
    """Refuse a ``.npy`` whose header claims more data than the file holds, before anything
    of the claimed size is allocated (a 100-byte file can claim 10^12 rows)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(fh)
            holds = path.stat().st_size - fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        msg = f"{path} is not a readable numeric .npy: {exc}"
        raise fail("data-unreadable", msg, hint) from None
    claims = math.prod(shape) * dtype.itemsize
    if claims > holds:
        msg = (
            f"{path} claims an array of shape {tuple(shape)} ({claims:,} bytes of {dtype}) but "
            f"holds {holds:,} bytes of data: it is truncated or its header was edited"
        )
        raise fail("data-unreadable", msg, hint)


def _load_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` without ever unpickling; object/structured arrays are refused, and
    so is a header that claims more data than the file holds."""
    hint = "save a plain numeric array, e.g. numpy.save(path, x.astype(numpy.float32))"
    _check_npy_header(path, hint)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc)
        pickled = "pickle" in text or "Python objects" in text
        why = "it holds pickled Python objects, refused" if pickled else text
        msg = f"{path} is not a readable numeric .npy: {why}"
        raise fail("data-unreadable", msg, hint) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        found = getattr(arr, "dtype", type(arr).__name__)
        raise fail("data-unreadable", f"{path} does not hold a numeric array ({found})", hint)
    return arr


def _bad_field(fields: list[str]) -> int | None:
    """Index of the first field that is not a number, or None."""
    for col, field in enumerate(fields):
        try:
            float(field)
        except ValueError:
            return col
    return None


def _locate_csv_error(path: Path, text: str, skip: int) -> None:
    """Raise a DataError naming the first bad line after the ``skip`` header lines of a CSV
    that numpy refused (this slow scan runs only on that error path)."""
    hint = "a .csv must hold only numbers, with the same number of columns in every row"
    rows = enumerate(text.splitlines(), 1)
    lines = [(i, ln.split(",")) for i, ln in rows if i > skip and ln.strip()]
    for lineno, fields in lines:
        col = _bad_field(fields)
        if col is not None:
            where = f"{path}, line {lineno}, column {col + 1}"
            raise fail("data-unreadable", f"{where}: {fields[col].strip()!r} is not a number", hint)
        if len(fields) != len(lines[0][1]):
            msg = f"{path}, line {lineno}: {len(fields)} values, but the first row has "
            raise fail("data-unreadable", msg + str(len(lines[0][1])), hint)


def _header_lines(path: Path) -> int:
    """How many lines to skip: up to and including a first non-blank row that is not all
    numbers (a header), else none."""
    with open(path, encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if line.strip():
                return index + 1 if _bad_field(line.split(",")) is not None else 0
    return 0


def _load_csv(path: Path) -> np.ndarray:
    """Read a comma-separated numeric file with numpy's C reader; a first row that is not all
    numbers is a header. A row that is not numbers is reported with its line and column."""
    try:
        skip = _header_lines(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2, skiprows=skip,
                              encoding="utf-8", comments=None)  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise fail("data-unreadable", f"{path} is not readable text: {exc}") from None
    except ValueError as exc:
        _locate_csv_error(path, path.read_text(encoding="utf-8"), skip)
        raise fail("data-unreadable", f"{path} is not a numeric .csv: {exc}") from None
    return data


def _chunks(data: np.ndarray) -> list[slice]:
    """Row ranges of about 16 MB each, so a memory-mapped file is scanned without loading it."""
    row = max(1, data[:1].nbytes)
    step = max(1, (1 << 24) // row)
    return [slice(i, i + step) for i in range(0, len(data), step)]


def _typed(data: np.ndarray, path: Path) -> tuple[np.ndarray, int | None]:
    """Integers in the smallest type that holds them, anything else as float32 (a memory map
    that already has that type is kept as is); ``discrete_levels = max + 1`` for non-negative
    integers."""
    parts = _chunks(data)
    if data.dtype.kind in "biu":
        low = min(int(data[c].min()) for c in parts)
        high = max(int(data[c].max()) for c in parts)
        kind = smallest_integer_type(low, high)
        levels = high + 1 if low >= 0 else None
    else:
        kind, levels = np.dtype(np.float32), None
        bad = 0
        for c in parts:
            chunk = data[c].astype(np.float32, copy=False).reshape(len(data[c]), -1)
            bad += int((~np.isfinite(chunk)).any(axis=1).sum())
        if bad:
            msg = f"{bad} of {len(data)} rows in {path} contain NaN or Inf (as float32)"
            raise fail("data-nonfinite", msg, "drop or impute those rows")
    if data.dtype == kind:
        return data, levels
    typed = np.empty(data.shape, dtype=kind)
    for c in parts:
        typed[c] = data[c]
    return typed, levels


def _load_array(path: Path) -> Loaded:
    return _checked(LOADERS[path.suffix.lower()](path), path)


def _checked(data: np.ndarray, path: Path, context: np.ndarray | None = None) -> Loaded:
    """Examples of a supported rank, typed; ``context`` (one per example) kept as labels."""
    if data.ndim not in (2, 4):
        msg = f"data in {path} has array shape {data.shape}; expected (N, D) or (N, C, H, W)"
        raise fail("data-shape", msg, "reshape it, e.g. images to (N, 1, H, W)")
    if len(data) == 0:
        raise fail("data-too-small", f"{path} holds no examples", "provide some examples")
    data, levels = _typed(data, path)
    return Loaded(data, labels=context, levels=levels)


def _load_npz(path: Path, shape: tuple[int, ...] | None) -> Loaded:
    """An ``.npz`` of examples ``x`` and their ``context`` (a conditional flow's data), or an
    ImageNet-style one (members ``data`` and ``labels``)."""
    x = npz_member(path, "x")
    if x is None:
        if npz_member(path, "data") is None:
            raise fail(
                "data-unreadable",
                f"{path} has no member 'x' (examples, with an optional 'context') and no member "
                "'data' (ImageNet-style images)",
                "save with numpy.savez(path, x=examples, context=labels_or_vectors)",
            )
        return load_npz_file(path, shape)
    context = npz_member(path, "context")
    hint = "save with numpy.savez(path, x=examples, context=labels_or_vectors)"
    for name, arr in (("x", x), ("context", context)):
        if arr is not None and arr.dtype.kind not in "biuf":
            raise fail("data-unreadable", f"{path}: array {name!r} is not numeric", hint)
    if context is not None:
        context = np.asarray(context)
        if len(context) != len(x):
            msg = f"{path}: {len(context)} contexts for {len(x)} examples"
            raise fail("context-shape", msg, "give one context per example")
    return _checked(np.asarray(x), path, context)


def _enough(loaded: Loaded, path: Path, split: bool) -> Loaded:
    """Splitting needs MIN_EXAMPLES (or, beside a format's own test part, a train and a
    validation example); scoring a whole file needs one."""
    n = loaded.data.shape[0]
    if not split:
        needed = 1
    else:
        needed = MIN_EXAMPLES if loaded.test is None else 2
    if n < needed:
        hint = "provide more examples"
        if split:
            hint += " (flowspec eval --data FILE scores a file of any size whole)"
        what = "an 80/10/10 split" if loaded.test is None else "the train and validation splits"
        msg = f"{path} has {n} examples; {what} needs {needed}"
        raise fail("data-too-small", msg, hint)
    return loaded


LOADERS: dict[str, Callable[[Path], np.ndarray]] = {".npy": _load_npy, ".csv": _load_csv}
# Formats that carry their own structure (labels, a test part, 8-bit images).
RECORD_LOADERS: dict[str, Callable[[Path, tuple[int, ...] | None], Loaded]] = {
    ".npz": _load_npz,
    ".bin": lambda path, shape: load_cifar_file(path),
}


def load_folder(
    root: Path, shape: tuple[int, ...] | None, size: tuple[int, int] | None, crop: str
) -> Loaded:
    """A CIFAR-10 binary folder, a folder of ImageNet-style ``.npz`` batches, or a folder of
    PNG/JPEG images."""
    if is_cifar_folder(root):
        return load_cifar_folder(root)
    if is_npz_folder(root):
        return load_npz_folder(root, shape)
    return load_image_folder(root, shape, size, crop)


def load_file(
    path: Path,
    names: str,
    shape: tuple[int, ...] | None = None,
    size: tuple[int, int] | None = None,
    crop: str = "none",
    split: bool = True,
) -> Loaded:
    """Load, validate and type a user file or folder (``size`` and ``crop`` apply to folders
    of images); ``split=False`` accepts any number of examples (a file scored whole)."""
    if path.is_dir():
        return _enough(load_folder(path, shape, size, crop), path, split)
    if not path.is_file():
        hint = f"check the path (working directory {Path.cwd()}) or use one of: "
        raise fail("data-missing", f"data file {path} does not exist", hint + names)
    suffix = path.suffix.lower()
    if suffix in RECORD_LOADERS:
        return _enough(RECORD_LOADERS[suffix](path, shape), path, split)
    if suffix not in LOADERS:
        known = ", ".join([*LOADERS, *RECORD_LOADERS])
        msg = f"{path} has unsupported extension {path.suffix!r}"
        raise fail("data-format", msg, f"use {known}, or a folder of PNG/JPEG images")
    return _enough(_load_array(path), path, split)
