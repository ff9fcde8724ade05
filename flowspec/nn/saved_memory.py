"""Measure the memory autograd keeps for backward: the bytes of every tensor saved while a
block runs, each storage counted once (views and repeated saves of one tensor are free).

Parameters and other tensors that exist anyway can be left out with ``exclude``, so what is
counted is the activation memory that a training step adds.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import torch
from torch import Tensor

__all__ = ["SavedTensorMeter"]


class SavedTensorMeter:
    """Context manager: ``nbytes`` is the size of the distinct storages saved for backward
    inside the block, less those of ``exclude``.

    The meter keeps a reference to each saved tensor while it is active, so a storage freed and
    reused during the block cannot be counted twice or missed.

    Arguments:
        exclude: tensors whose storages are not counted (e.g. ``model.parameters()``).

    Example:
        >>> w = torch.nn.Parameter(torch.ones(3, 3))
        >>> with SavedTensorMeter(exclude=[w]) as meter:
        ...     loss = (torch.ones(4, 3) @ w).exp().sum()
        >>> meter.nbytes  # the input of @ (4 x 3 float32) and the output of exp
        96
    """

    def __init__(self, exclude: Iterable[Tensor] = ()) -> None:
        self._excluded = {_key(t) for t in exclude}
        self._sizes: dict[tuple[str, int], int] = {}
        self._alive: list[Tensor] = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @property
    def nbytes(self) -> int:
        """Bytes of the distinct storages saved so far."""
        return sum(self._sizes.values())

    def _pack(self, t: Tensor) -> Tensor:
        key = _key(t)
        if key not in self._excluded and key not in self._sizes:
            self._sizes[key] = t.untyped_storage().nbytes()
            self._alive.append(t)
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._hooks.__exit__(kind, error, trace)
        self._alive.clear()


def _key(t: Tensor) -> tuple[str, int]:
    return str(t.device), t.untyped_storage().data_ptr()
