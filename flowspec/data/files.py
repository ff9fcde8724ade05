"""Users' data files: ``.npy`` (never unpickled) and numeric ``.csv``, read and validated.

Integer ``.npy`` data stays int64 (``discrete_levels = max + 1`` when non-negative); floats and
every ``.csv`` become float32 and continuous. Every problem is a located :class:`DataError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flowspec.data.base import fail

__all__ = ["LOADERS", "load_file"]


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
    """Read a ``.npy`` without ever unpickling; object/structured arrays are refused, and so
    is a header that claims more data than the file holds."""
    hint = "save a plain numeric array, e.g. numpy.save(path, x.astype(numpy.float32))"
    _check_npy_header(path, hint)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        why = "it holds pickled Python objects, refused" if "pickle" in str(exc) else str(exc)
        msg = f"{path} is not a readable numeric .npy: {why}"
        raise fail("data-unreadable", msg, hint) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        found = getattr(arr, "dtype", type(arr).__name__)
        raise fail("data-unreadable", f"{path} does not hold a numeric array ({found})", hint)
    return arr.astype(np.int64) if arr.dtype.kind in "biu" else arr


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


LOADERS: dict[str, Callable[[Path], np.ndarray]] = {".npy": _load_npy, ".csv": _load_csv}


def load_file(path: Path, names: str) -> tuple[np.ndarray, int | None]:
    """Load, validate and type a user file; returns ``(data, discrete_levels)``."""
    if not path.is_file():
        hint = f"check the path (working directory {Path.cwd()}) or use one of: "
        raise fail("data-missing", f"data file {path} does not exist", hint + names)
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        msg, hint = f"{path} has unsupported extension {path.suffix!r}", "use .npy or .csv"
        raise fail("data-format", msg, hint)
    data = loader(path)
    if data.ndim not in (2, 4):
        msg = f"data in {path} has array shape {data.shape}; expected (N, D) or (N, C, H, W)"
        raise fail("data-shape", msg, "reshape it, e.g. images to (N, 1, H, W)")
    if len(data) == 0:
        raise fail("data-too-small", f"{path} holds no examples", "provide some examples")
    if data.dtype.kind == "i":
        return data, (int(data.max()) + 1 if data.min() >= 0 else None)
    data = data.astype(np.float32)
    bad = int((~np.isfinite(data.reshape(len(data), -1))).any(axis=1).sum())
    if bad:
        msg = f"{bad} of {len(data)} rows in {path} contain NaN or Inf (as float32)"
        raise fail("data-nonfinite", msg, "drop or impute those rows")
    return data, None
