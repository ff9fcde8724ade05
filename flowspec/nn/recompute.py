"""State to put back around a recomputed forward pass: random-number generators and buffers.

A recompute (checkpointing, or invertible backprop) must draw the same random numbers as the
first run, and must not update running statistics a second time. These helpers save and
replay the generator state and restore modules' buffers after the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["RngState", "frozen_buffers", "replay_rng", "rng_state"]

RngState = tuple[Tensor, ...]
"""The CPU generator state, then the CUDA one of the tensor's device when it lives there."""


def rng_state(x: Tensor) -> RngState:
    """The generator state a computation on ``x`` starts from (CPU, plus ``x``'s GPU)."""
    if x.is_cuda:
        return torch.get_rng_state(), torch.cuda.get_rng_state(x.device)
    return (torch.get_rng_state(),)


@contextmanager
def replay_rng(state: RngState | None, device: torch.device) -> Iterator[None]:
    """Run the block with the generators set to ``state`` (nothing when None); afterwards
    they continue from where they were before the block, as if it had drawn nothing.

    Arguments:
        state: from :func:`rng_state`, or None to run the block unchanged.
        device: the device whose generator ``state[1]`` is (used when ``len(state) == 2``).

    Example:
        >>> state = rng_state(torch.zeros(1))
        >>> first = torch.rand(2)
        >>> with replay_rng(state, torch.device("cpu")):
        ...     again = torch.rand(2)
        >>> torch.equal(first, again)
        True
    """
    if state is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if len(state) > 1 else []):
        torch.set_rng_state(state[0])
        if len(state) > 1:
            torch.cuda.set_rng_state(state[1], device)
        yield


@contextmanager
def frozen_buffers(*modules: nn.Module) -> Iterator[None]:
    """Put the buffers of ``modules`` (running statistics) back as they were before the block.

    Kernels such as batch norm update running statistics without bumping version counters, so
    every buffer is restored. The copy goes through ``.data`` so that it does not bump them
    either: the values are the ones any saved graph recorded.

    Example:
        >>> bn = nn.BatchNorm1d(2)
        >>> with frozen_buffers(bn):
        ...     _ = bn(torch.randn(4, 2) + 5)
        >>> bn.running_mean, int(bn.num_batches_tracked)
        (tensor([0., 0.]), 0)
    """
    before = [(b, b.clone()) for m in modules for b in m.buffers()]
    try:
        yield
    finally:
        for b, value in before:
            b.data.copy_(value)
