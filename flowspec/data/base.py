"""What every data source produces: deterministic train/validation/test splits.

Conventions: every array has the example axis first, ``(N, *shape)``. Continuous data is float32;
discrete data (digits, integer files, images) keeps the smallest integer type that holds it
(``uint8`` for 8-bit images) with values ``0 .. discrete_levels - 1``: it becomes float only
batch by batch, inside the flow. Splits are deterministic for a given ``seed`` and never overlap.

A split is a numpy array, or for data too large to hold in memory (memory-mapped ``.npy`` files,
folders of images) a :class:`Rows`: the same rows, read from disk when indexed. A data set may
carry a context per example (``Splits.contexts``): integer class labels ``(N,)`` or float vectors
``(N, K)``, split with the examples; unconditional flows ignore it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from flowspec.errors import DataError, Diagnostic

__all__ = [
    "MIN_EXAMPLES",
    "Concatenated",
    "DatasetInfo",
    "Loaded",
    "MappedArray",
    "RowSource",
    "Rows",
    "SplitTriple",
    "Splits",
    "carve",
    "carve_index",
    "fail",
    "hash_rows",
    "smallest_integer_type",
]

SplitTriple = tuple[np.ndarray, np.ndarray, np.ndarray]
MIN_EXAMPLES = 10


class RowSource(Protocol):
    """Rows that are read on demand: ``read(index)`` returns the rows ``index`` (a sorted 1-D
    integer array) as one array ``(len(index), *shape[1:])``; ``fingerprint(digest)`` feeds a
    hash with what identifies the rows' values (their bytes, or for image files their names,
    sizes and modification times)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def read(self, index: np.ndarray) -> np.ndarray: ...

    def fingerprint(self, digest: Any) -> None: ...


def hash_rows(array: np.ndarray, digest: Any, chunk_bytes: int = 1 << 24) -> None:
    """Feed ``digest`` with the bytes of ``array``'s rows, about 16 MB at a time (a memory map
    is read sequentially, never loaded whole)."""
    step = max(1, chunk_bytes // max(1, array[:1].nbytes))
    for start in range(0, len(array), step):
        digest.update(np.ascontiguousarray(array[start : start + step]).reshape(-1).view(np.uint8))


class Rows(np.lib.mixins.NDArrayOperatorsMixin):
    """Some rows of a :class:`RowSource`, in a given order, read only when indexed.

    It behaves like a read-only array of shape ``(len(index), *source.shape[1:])``: ``len``,
    ``shape``, ``dtype``, ``ndim``, indexing by an integer, a slice or an integer array (which
    returns a numpy array of those rows). Anything else (``numpy.asarray``, arithmetic,
    comparisons, ``.max()``, ...) reads every row first, as a memory-mapped array would.

    Example:
        >>> rows = Rows(MappedArray(np.arange(12).reshape(6, 2)), np.array([4, 0, 2]))
        >>> rows.shape, rows[1:].tolist()
        ((3, 2), [[0, 1], [4, 5]])
    """

    def __init__(self, source: RowSource, index: np.ndarray | None = None) -> None:
        self.source = source
        n = source.shape[0]
        self.index = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.source.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, key: slice | np.ndarray) -> Rows:
        """The rows ``key`` of these rows, still unread."""
        return Rows(self.source, self.index[key])

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._read(self.index[[key]])[0]
        return self._read(self.index[key])

    def _read(self, wanted: np.ndarray) -> np.ndarray:
        order = np.argsort(wanted, kind="stable")  # read in file order, return in asked order
        out = np.empty((len(wanted), *self.source.shape[1:]), dtype=self.source.dtype)
        out[order] = self.source.read(wanted[order])
        return out

    def fingerprint(self, digest: Any) -> None:
        """Feed ``digest`` with the rows' identity: the source's fingerprint and the index."""
        self.source.fingerprint(digest)
        digest.update(np.ascontiguousarray(self.index).view(np.uint8))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self._read(self.index)
        return data if dtype is None else data.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, Rows) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name: str) -> Any:  # array methods (.max(), .astype(), ...)
        if name.startswith("__") or name in ("source", "index"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def __repr__(self) -> str:
        return f"Rows(shape={self.shape}, dtype={self.dtype}, source={type(self.source).__name__})"


class MappedArray:
    """A :class:`RowSource` over an array that may live on disk (``numpy.memmap``)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.dtype = tuple(array.shape), array.dtype

    def read(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[index])

    def fingerprint(self, digest: Any) -> None:
        hash_rows(self.array, digest)

    def __getstate__(self) -> dict[str, Any]:
        """A memory map travels to DataLoader worker processes as its file name, not its data."""
        array = self.array
        whole = array.flags.c_contiguous or array.flags.f_contiguous  # not a strided view
        if isinstance(array, np.memmap) and array.filename is not None and whole:
            order = "C" if array.flags.c_contiguous else "F"
            where = (array.filename, array.offset, array.dtype.str, array.shape, order)
            return {"mapped": where}
        return {"array": array}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "mapped" in state:
            name, offset, dtype, shape, order = state["mapped"]
            array = np.memmap(name, np.dtype(dtype), "r", offset, tuple(shape), order)
        else:
            array = state["array"]
        self.__init__(array)  # type: ignore[misc]


class Concatenated:
    """A :class:`RowSource` that chains the rows of several sources (CIFAR-10's five training
    batches, ImageNet's ten)."""

    def __init__(self, sources: list[RowSource]) -> None:
        self.sources = sources
        self.starts = np.cumsum([0] + [s.shape[0] for s in sources])
        self.shape = (int(self.starts[-1]), *sources[0].shape[1:])
        self.dtype = sources[0].dtype

    def fingerprint(self, digest: Any) -> None:
        for source in self.sources:
            source.fingerprint(digest)

    def read(self, index: np.ndarray) -> np.ndarray:
        part = np.searchsorted(self.starts, index, side="right") - 1
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        for k in np.unique(part):
            chosen = part == k
            out[chosen] = self.sources[k].read(index[chosen] - self.starts[k])
        return out


@dataclass(frozen=True)
class Splits:
    """Train/validation/test arrays of one data set, each of shape ``(N_split, *shape)``.

    ``contexts`` holds a per-example context array for each split (class labels of an image
    folder with one subfolder per class, of CIFAR-10 or of an ImageNet ``.npz``), or None.
    """

    train: np.ndarray | Rows
    val: np.ndarray | Rows
    test: np.ndarray | Rows
    name: str
    discrete_levels: int | None
    contexts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    context_columns: tuple[int, ...] | None = None  # the table columns the contexts came from

    def context_of(self, split: str) -> np.ndarray | None:
        """The context of ``split`` (``train``, ``val`` or ``test``), or None."""
        if self.contexts is None:
            return None
        return self.contexts[("train", "val", "test").index(split)]

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-example shape, e.g. ``(2,)`` or ``(1, 8, 8)``."""
        return tuple(self.train.shape[1:])

    def digest(self, with_contexts: bool = False) -> str:
        """SHA-256 of the three splits' dtypes, shapes and values and of ``discrete_levels``
        (and of the contexts, for a conditional flow): equal digests mean the same examples in
        the same splits (a resumed run checks it)."""
        digest = hashlib.sha256(f"levels={self.discrete_levels}".encode())
        arrays: list[Any] = [self.train, self.val, self.test]
        if with_contexts and self.contexts is not None:
            arrays += list(self.contexts)
        for array in arrays:
            digest.update(f"\0{array.dtype.str}\0{array.shape}\0".encode())
            if isinstance(array, Rows):  # on disk: never loaded whole
                array.fingerprint(digest)
            else:
                digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        return digest.hexdigest()


@dataclass(frozen=True)
class Loaded:
    """What a file reader returns: the examples (in memory or a :class:`RowSource`), their
    labels if the format has any, and a test part when the format ships its own (CIFAR-10's
    ``test_batch.bin``), which is then used as the test split as is. ``levels`` is the number
    of discrete values when the format fixes it (8-bit images: 256)."""

    data: np.ndarray | RowSource
    labels: np.ndarray | None = None
    test: np.ndarray | RowSource | None = None
    test_labels: np.ndarray | None = None
    levels: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in data set: ``generate(seed)`` returns ``(train, val, test)``; a labelled one
    also has ``labels(seed)``, returning those splits and their labels (``0 .. classes-1``)."""

    generate: Callable[[int], SplitTriple]
    shape: tuple[int, ...]
    discrete_levels: int | None
    description: str
    labels: Callable[[int], tuple[SplitTriple, SplitTriple]] | None = None
    classes: int | None = None


def fail(code: str, message: str, hint: str | None = None) -> DataError:
    """A located-at-``data`` :class:`DataError` with one diagnostic."""
    return DataError(Diagnostic(code=code, message=message, path="data", hint=hint))


def carve_index(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of each split: a permutation of ``range(n)`` seeded by ``seed``, cut 80/10/10
    (every split non-empty for n >= 10)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(0.8 * n), max(1, int(0.1 * n))
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def carve(data: np.ndarray, seed: int) -> SplitTriple:
    """Shuffle ``data`` with ``seed`` and cut it 80/10/10 (every split non-empty for N >= 10)."""
    n = len(data)
    shuffled = data[np.random.default_rng(seed).permutation(n)]
    n_train, n_val = int(0.8 * n), max(1, int(0.1 * n))
    return (shuffled[:n_train], shuffled[n_train : n_train + n_val], shuffled[n_train + n_val :])


def smallest_integer_type(low: int, high: int) -> np.dtype[Any]:
    """The smallest numpy integer type holding every value in ``[low, high]`` (unsigned when
    ``low >= 0``).

    Example:
        >>> smallest_integer_type(0, 255), smallest_integer_type(-3, 300)
        (dtype('uint8'), dtype('int16'))
    """
    kinds = (np.uint8, np.uint16, np.uint32, np.uint64) if low >= 0 else ()
    for kind in (*kinds, np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return np.dtype(kind)
    return np.dtype(np.int64)
