"""The training batches: which examples each optimizer step uses, and reading them.

Each epoch is a permutation ``perm`` of the training split (drawn by the loop from its seeded
generator). Global batch ``b`` of the epoch holds ``perm[b * B : (b + 1) * B]`` with ``B`` the
spec's ``batch_size``; on a job of ``W`` processes, process ``r`` takes the contiguous
``B / W`` examples ``r`` of it, so the global batches are the same whatever the number of
processes (which is what lets a run resume with another process count).

Examples are read only when their batch is formed, in their stored type (uint8 images stay
uint8 until the flow casts them on its device): inline with ``workers: 0``, or by ``workers``
DataLoader processes that read (memory-mapped files) and decode (image folders) ahead of the
training step. A conditional flow's contexts (small, in memory) are taken from the same rows in
the main process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from flowspec.errors import DataError, Diagnostic, FlowspecError
from flowspec.training.evaluate import to_batch

__all__ = ["BatchPlan", "TrainBatches", "describe", "local_batch"]


@dataclass(frozen=True)
class BatchPlan:
    """Global batch size ``batch``, ``per_epoch`` batches an epoch, this process's place."""

    batch: int
    per_epoch: int
    rank: int = 0
    world: int = 1

    @property
    def local(self) -> int:
        return self.batch // self.world


def local_batch(perm: np.ndarray, plan: BatchPlan, b: int) -> np.ndarray:
    """The rows this process uses for global batch ``b`` of the epoch ordered by ``perm``."""
    start = b * plan.batch + plan.rank * plan.local
    return perm[start : start + plan.local]


class _Epoch(Sampler[np.ndarray]):
    """Yields this process's row indices for batches ``start .. per_epoch - 1`` of an epoch."""

    def __init__(self, plan: BatchPlan) -> None:
        self.plan = plan
        self.perm = np.zeros(0, dtype=np.int64)
        self.start = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for b in range(self.start, self.plan.per_epoch):
            yield local_batch(self.perm, self.plan, b)

    def __len__(self) -> int:
        return self.plan.per_epoch - self.start


@dataclass(frozen=True)
class _Failure:
    """A data error raised in a worker process, carried back to be raised in the main one."""

    diagnostics: tuple[Diagnostic, ...]


class _RowsDataset(Dataset[Any]):
    """Item ``index`` (an array of row numbers) is that batch, read in the worker, with the
    row numbers (so the main process can pair it with its contexts)."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor] | _Failure:
        try:
            rows = np.asarray(index)
            return to_batch(self.rows[rows]), torch.from_numpy(rows)
        except FlowspecError as exc:  # its class does not survive the trip back intact
            return _Failure(exc.diagnostics)

    def __len__(self) -> int:
        return len(self.rows)


class TrainBatches:
    """This process's batches of the training split ``rows``, epoch by epoch.

    Arguments:
        rows: the training split (an array or :class:`~flowspec.data.Rows`).
        plan: the batch sizes and this process's place.
        workers: DataLoader worker processes (0: read inline).
        pin: pin batches in page-locked memory (for a CUDA device).
        contexts: the rows' contexts (a conditional flow's), indexed like ``rows``, or None.
    """

    def __init__(
        self,
        rows: Any,
        plan: BatchPlan,
        workers: int = 0,
        pin: bool = False,
        contexts: Tensor | None = None,
    ) -> None:
        self.rows, self.plan, self.contexts = rows, plan, contexts
        self.sampler = _Epoch(plan)
        self.loader: DataLoader[Any] | None = None
        if workers > 0:
            self.loader = DataLoader(
                _RowsDataset(rows),
                batch_size=None,
                sampler=self.sampler,
                num_workers=workers,
                pin_memory=pin,
                persistent_workers=True,
                # its workers' seeds come from here, never from the global stream that draws
                # the dequantisation noise (so workers leave a run unchanged)
                generator=torch.Generator().manual_seed(0),
            )

    def epoch(self, perm: Tensor, start: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        """The batches ``start ..`` of the epoch ordered by ``perm`` (integers stay integers,
        floats arrive as float32), each with its contexts (None for an unconditional flow)."""
        self.sampler.perm, self.sampler.start = perm.numpy(), start
        if self.loader is None:
            for index in self.sampler:
                yield to_batch(self.rows[index]), self._context(index)
            return
        for item in self.loader:
            if isinstance(item, _Failure):
                raise DataError(list(item.diagnostics))
            batch, index = item
            yield batch, self._context(index)

    def _context(self, index: Any) -> Tensor | None:
        if self.contexts is None:
            return None
        return self.contexts[torch.as_tensor(np.asarray(index), dtype=torch.long)]

    def close(self) -> None:
        """Stop the worker processes."""
        if self.loader is not None:
            iterator = getattr(self.loader, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()
            self.loader = None


def describe(plan: BatchPlan) -> str:
    """``batch 64`` or ``batch 64 = 4 x 16`` for the progress line."""
    if plan.world == 1:
        return f"batch {plan.batch}"
    return f"batch {plan.batch} = {plan.world} processes x {plan.local}"
