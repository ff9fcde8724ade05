"""Factor-out: keep the first half of dim 1, emit the second half as a latent.

With the learned prior (Glow), a zero-initialised conv3x3 (images) or linear map (vectors) on the
kept half gives ``mean, log_std`` and the latent is ``(h - mean) * exp(-log_std)``, logdet
``-sum(log_std)``: the same model as a Gaussian prior N(mean, exp(log_std)^2) on ``h``, and
sampling at temperature T scales the standardised latent by T. The log-std is clamped to
``[-PRIOR_LOG_STD_BOUND, PRIOR_LOG_STD_BOUND]`` so that sampling cannot overflow.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.base import Bijection, sum_except_batch, zeros_logdet
from flowspec.nn.emit import Emitted
from flowspec.nn.nets import with_context

__all__ = ["PRIOR_LOG_STD_BOUND", "Split", "build"]

# The learned prior's log-std is clamped to [-7, 7] (std in [9e-4, 1100]) in both directions, so
# the inverse's exp(log_std) cannot compound with the couplings' scales into an overflow when
# sampling; inside the bounds the values are bit for bit those of the unbounded form.
PRIOR_LOG_STD_BOUND = 7.0


class Split(Bijection):
    """``(N, C, ...) -> ((N, C/2, ...) kept, (N, C/2, ...) latent)``; ``inverse`` takes the pair.

    The prior is a 3x3 conv (images) or a linear map (vectors) from the kept half to
    ``2 * C/2`` channels (mean, then log-std), zero-initialised so it starts as N(0, I). In a
    conditional flow it also reads the context features (as constant extra channels of the
    conv, or concatenated to the linear map's input)."""

    def __init__(self, shape: tuple[int, ...], learned_prior: bool, context: int = 0) -> None:
        super().__init__()
        self.half = shape[0] // 2
        self.takes_context = context > 0
        self.prior: nn.Module | None = None
        if learned_prior:
            prior = (
                nn.Conv2d(self.half + context, 2 * self.half, 3, padding=1)
                if len(shape) == 3
                else nn.Linear(self.half + context, 2 * self.half)
            )
            nn.init.zeros_(prior.weight)
            nn.init.zeros_(prior.bias)
            self.prior = prior

    def forward(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[tuple[Tensor, Tensor], Tensor]:
        kept, out = x[:, : self.half], x[:, self.half :]
        if self.prior is None:
            return (kept, out), zeros_logdet(x)
        mean, log_std = self.mean_log_std(kept, context)
        return (kept, (out - mean) * torch.exp(-log_std)), -sum_except_batch(log_std)

    def mean_log_std(self, kept: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The learned prior's mean and (bounded) log-std of the factored half given the kept
        half (and the context features, if the prior takes them)."""
        assert self.prior is not None
        inputs = with_context(kept, context if self.takes_context else None)
        mean, log_std = self.prior(inputs).chunk(2, dim=1)
        return mean, log_std.clamp(-PRIOR_LOG_STD_BOUND, PRIOR_LOG_STD_BOUND)

    def inverse(self, y: tuple[Tensor, Tensor], context: Tensor | None = None) -> Tensor:
        return self.inverse_and_logdet(y, context)[0]

    def inverse_and_logdet(
        self, y: tuple[Tensor, Tensor], context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        kept, z = y
        if self.prior is None:
            return torch.cat([kept, z], dim=1), zeros_logdet(kept)
        mean, log_std = self.mean_log_std(kept, context)
        x = torch.cat([kept, z * torch.exp(log_std) + mean], dim=1)
        return x, sum_except_batch(log_std)

    def emit(self) -> Emitted:
        image = isinstance(self.prior, nn.Conv2d)
        return Emitted(f"Split({self.half}, {self.prior is not None}, {image})", {"Split": SOURCE})


SOURCE = (
    '''
class Split(nn.Module):
    """Factor-out: (N, C, ...) -> kept (N, C/2, ...) and latent (N, C/2, ...). With a learned
    prior (Glow) a zero-initialised conv3x3 (images) or linear map (vectors) of the kept half
    gives mean and log-std (clamped to +-PRIOR_LOG_STD_BOUND, so sampling cannot overflow), and
    the latent is (h - mean) * exp(-log_std), logdet -sum(log_std)."""

    PRIOR_LOG_STD_BOUND = '''
    + repr(PRIOR_LOG_STD_BOUND)
    + """

    def __init__(self, half: int, learned_prior: bool, image: bool) -> None:
        super().__init__()
        self.half = half
        self.prior = None
        if learned_prior:
            self.prior = (
                nn.Conv2d(half, 2 * half, 3, padding=1) if image else nn.Linear(half, 2 * half)
            )

    def mean_log_std(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        return mean, log_std.clamp(-self.PRIOR_LOG_STD_BOUND, self.PRIOR_LOG_STD_BOUND)

    def forward(self, x: Tensor, context: Tensor | None = None):
        kept, out = x[:, : self.half], x[:, self.half :]
        if self.prior is None:
            return (kept, out), zeros_logdet(x)
        mean, log_std = self.mean_log_std(kept)
        return (kept, (out - mean) * torch.exp(-log_std)), -sum_except_batch(log_std)

    def inverse(self, y: tuple[Tensor, Tensor], context: Tensor | None = None) -> Tensor:
        kept, z = y
        if self.prior is not None:
            mean, log_std = self.mean_log_std(kept)
            z = z * torch.exp(log_std) + mean
        return torch.cat([kept, z], dim=1)
"""
)


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Split:
    return Split(in_shape, params.get("prior") == "learned", params.get("context", 0))
