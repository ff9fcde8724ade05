"""The ``Bijection`` protocol every layer module implements, and small shared helpers.

``forward(x, context=None) -> (y, logdet)`` maps towards the latent (data -> z) and returns
``logdet = log|det dy/dx|`` per example, shape ``(N,)``; ``inverse(y, context=None) -> x`` undoes
it exactly; ``check_state()`` lists what is wrong with a loaded state. ``context`` is the
conditioning input of a conditional flow (None otherwise); layers that do not use it ignore it.
Ops with two outputs (``split``) return a tuple of tensors and take one in ``inverse``.

Each layer kind's module ``flowspec/nn/<name>.py`` has ``build(spec, in_shape, params)``: the
op's spec model, its per-example input shape and the params its shape rule resolved (a mask, a
permutation, a seed). Builders never see the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "Bijection",
    "Reduce",
    "broadcast_shape",
    "channel_dim",
    "reduced_moments",
    "spatial_size",
    "sum_except_batch",
    "zeros_logdet",
]

# Sums a tensor over every process of a distributed job (the identity on one process). Ops with
# batch statistics (actnorm's data-dependent init, batchnorm) use it when the trainer sets their
# ``reduce`` attribute, so that their statistics are those of the global batch.
Reduce = Callable[[Tensor], Tensor]


class Bijection(nn.Module):
    """Base class; subclasses implement ``forward`` and ``inverse``."""

    def forward(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def inverse(
        self, y: Tensor, context: Tensor | None = None
    ) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def check_state(self) -> list[str]:
        """Problems with a loaded state, as ``"<tensor>: <what is wrong>"`` (none by default;
        layers whose buffers must satisfy an invariant override it). Non-finite values are
        checked for every layer by :func:`flowspec.io.check_state`."""
        return []

    def inverse_and_logdet(self, y: Any, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x = inverse(y)`` and ``log|det dx/dy|`` per example, shape ``(N,)``."""
        x = self.inverse(y, context)
        _, logdet = self.forward(x, context)
        return x, -logdet


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``(N, ...) -> (N,)``."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


def zeros_logdet(x: Tensor) -> Tensor:
    """A zero log-determinant of the right batch size, device and dtype."""
    return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)


def broadcast_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Parameter shape of a per-feature/per-channel op: ``(1, D)``, ``(1, C, 1, 1)``, or
    ``(1, 1, D)`` for token sequences ``(T, D)``, whose channels are the token values."""
    if len(shape) == 2:
        return (1, 1, shape[1])
    return (1, shape[0], *([1] * (len(shape) - 1)))


def channel_dim(x: Tensor) -> int:
    """The dimension of a batch ``x`` that holds the channels: 1 for ``(N, D)`` and
    ``(N, C, H, W)``, 2 for token sequences ``(N, T, D)``, whose channels are the token values."""
    return 2 if x.dim() == 3 else 1


def spatial_size(shape: tuple[int, ...]) -> int:
    """How many positions share a per-channel parameter: H * W for images, T for token
    sequences ``(T, D)``, 1 for vectors."""
    if len(shape) == 2:
        return shape[0]
    n = 1
    for s in shape[1:]:
        n *= s
    return n


def reduced_moments(x: Tensor, reduce: Reduce) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and biased variance per feature/channel of ``x`` ``(N, C, ...)`` (or per token value
    of tokens ``(N, T, D)``) over the batch, the positions and every process, shaped for
    broadcasting, and the global count per channel.

    Two passes (the mean, then the centred squares) so that large offsets cost no precision;
    differentiable when ``reduce`` is (``torch.distributed.nn.functional.all_reduce``).

    Example:
        >>> mean, var, n = reduced_moments(torch.tensor([[1.0], [3.0]]), lambda t: t)
        >>> mean.item(), var.item(), n.item()
        (2.0, 1.0, 2.0)
    """
    channel = channel_dim(x)
    dims = [d for d in range(x.dim()) if d != channel]
    shape = broadcast_shape(tuple(x.shape[1:]))
    count = x.new_full((1,), x.numel() / max(x.shape[channel], 1))
    first = reduce(torch.cat([x.sum(dims).reshape(-1), count]))
    n = first[-1]
    mean = (first[:-1] / n).reshape(shape)
    var = (reduce(((x - mean) ** 2).sum(dims).reshape(-1)) / n).reshape(shape)
    return mean, var, n
