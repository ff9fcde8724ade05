"""The context of a conditional flow: checked, broadcast and turned into features, once per call.

A :class:`ContextEncoder` belongs to the :class:`~flowspec.nn.flow.Flow` (parameter names
``context.*``). It takes the user's context and returns the feature matrix ``(N, F)`` that every
conditioner and a conditional base read:

* vector contexts ``{shape: [K]}``: a float tensor ``(N, K)`` (one ``(K,)`` context is used for
  all N examples); with ``normalize`` it is standardised by the mean and standard deviation of the
  first batch seen, kept as buffers (saved with the weights; never re-estimated after loading);
* class contexts ``{classes: C}``: integer labels ``(N,)`` in ``0..C-1`` (one label, a Python int
  or a 0-d tensor, is used for all N), as rows of a learned ``embedding`` table or as one-hot
  vectors.

A bad context is a ``ValueError`` that says what was expected. Checking label values reads the
tensor, so it runs in eager mode only: under ``torch.compile`` the traced graph stays free of
that check (no graph break).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import Reduce, reduced_moments

__all__ = ["ContextEncoder"]

# torch >= 2.3 has torch.compiler.is_compiling; older releases only torch._dynamo's
_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


class ContextEncoder(nn.Module):
    """Checks and encodes the context described by a ``context:`` spec.

    Example:
        >>> from flowspec.spec.context import ClassContextSpec
        >>> encoder = ContextEncoder(ClassContextSpec(classes=3))
        >>> encoder.features_for(torch.tensor([0, 2]), 2).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        >>> encoder.features_for(1, 2).tolist()  # one label for every example
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    """

    reduce: Reduce | None = None  # set by the distributed trainer: statistics of every process

    def __init__(self, spec: Any, eps: float = 1e-6) -> None:
        super().__init__()
        self.classes: int | None = getattr(spec, "classes", None)
        self.features = spec.features
        self._description = spec.describe()
        self.embedding = (
            nn.Embedding(self.classes, spec.embedding)
            if self.classes is not None and spec.embedding
            else None
        )
        self.normalize = bool(getattr(spec, "normalize", False))
        self.eps = eps
        self.register_buffer("_ref", torch.zeros(()), persistent=False)
        if self.normalize:
            self.register_buffer("mean", torch.zeros(1, self.features))
            self.register_buffer("std", torch.ones(1, self.features))
            self.register_buffer("initialized", torch.tensor(False))
            self._initialized = False
            self.register_load_state_dict_post_hook(_sync_flag)

    def describe(self) -> str:
        """What this flow takes as context, for error messages."""
        return self._description

    def check(self, context: Any, n: int) -> Tensor:
        """``context`` as a tensor on the flow's device, broadcast to ``n`` examples, after
        checking its shape (and, in eager mode, class labels' range)."""
        device = self._ref.device
        if self.classes is not None:
            labels = torch.as_tensor(context, device=device)
            if labels.is_floating_point() or labels.dtype == torch.bool:
                raise ValueError(
                    f"class context of dtype {labels.dtype}; this flow takes {self.describe()}"
                )
            if labels.dim() > 1 or (labels.dim() == 1 and labels.shape[0] not in (1, n)):
                raise ValueError(
                    f"class context of shape {tuple(labels.shape)} for {n} examples; this flow "
                    f"takes {self.describe()}, or one label for all"
                )
            if not _compiling() and labels.numel():
                low, high = int(labels.min()), int(labels.max())
                if low < 0 or high >= self.classes:
                    bad = low if low < 0 else high
                    raise ValueError(
                        f"class label {bad} is out of range; this flow takes {self.describe()}"
                    )
            return labels.long().reshape(-1).expand(n)
        vector = torch.as_tensor(context, device=device)
        vector = vector.to(self._ref.dtype)
        if vector.dim() == 1:
            vector = vector[None]
        if vector.dim() != 2 or vector.shape[1] != self.features or vector.shape[0] not in (1, n):
            raise ValueError(
                f"context of shape {tuple(torch.as_tensor(context).shape)} for {n} examples; "
                f"this flow takes {self.describe()}, or one ({self.features},) context for all"
            )
        return vector.expand(n, -1)

    def forward(self, context: Tensor) -> Tensor:
        """Checked context (from :meth:`check`) -> features ``(N, F)`` in the flow's dtype."""
        if self.classes is not None:
            if self.embedding is not None:
                return self.embedding(context)
            hot = context[:, None] == torch.arange(self.classes, device=context.device)
            return hot.to(self._ref.dtype)
        if not self.normalize:
            return context
        if not self._initialized:
            self.initialize(context)
        return (context - self.mean) / self.std

    def features_for(self, context: Any, n: int) -> Tensor:
        """:meth:`check` then :meth:`forward`: the features of ``context`` for ``n`` examples."""
        return self(self.check(context, n))

    @torch.no_grad()
    def initialize(self, context: Tensor) -> None:
        """Set the normalisation from a batch (on a job of several processes, the batch of all
        of them): per-feature mean and standard deviation (only a centring for a single
        example, which has no spread)."""
        if self.reduce is not None:
            mean, var, count = reduced_moments(context, self.reduce)
            self.mean.copy_(mean)
            if count > 1:
                self.std.copy_(var.sqrt() + self.eps)
        else:
            self.mean.copy_(context.mean(dim=0, keepdim=True))
            if context.shape[0] > 1:
                self.std.copy_(context.std(dim=0, keepdim=True, unbiased=False) + self.eps)
        self.initialized.fill_(True)
        self._initialized = True


def _sync_flag(module: nn.Module, incompatible_keys: object) -> None:
    module._initialized = bool(module.initialized)
