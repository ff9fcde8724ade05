"""Base distributions over the flat latent ``z`` of shape ``(N, D)``, one table keyed like
:data:`flowspec.spec.bases.BASES`.

Each has ``log_prob(z, context=None) -> (N,)`` and ``sample(n, temperature, context=None) ->
(n, D)``. Temperature T scales the standard deviations (T = 1 is the model itself; Glow samples at
T < 1). ``context`` is the flow's context features ``(N, F)``: the conditional base reads it,
the others ignore it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.nn.emit import Emitted
from flowspec.nn.nets import ACTIVATIONS

__all__ = [
    "BASES",
    "ConditionalNormal",
    "DiagNormal",
    "GaussianMixture",
    "StandardNormal",
    "build_base",
]

LOG_2PI = math.log(2 * math.pi)


def _normal_log_prob(z: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    u = (z - loc) * torch.exp(-log_scale)
    return -0.5 * (u * u + LOG_2PI).sum(-1) - log_scale.sum(-1)


class StandardNormal(nn.Module):
    """N(0, I)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return -0.5 * (z * z + LOG_2PI).sum(-1)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        return temperature * torch.randn(
            n, self.dim, device=self._ref.device, dtype=self._ref.dtype
        )

    def emit(self) -> Emitted:
        return Emitted(f"StandardNormal({self.dim})", {"StandardNormal": STANDARD_SOURCE})


class DiagNormal(nn.Module):
    """N(loc, diag(exp(log_scale))^2) with learned ``loc`` and ``log_scale`` (init 0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return _normal_log_prob(z, self.loc, self.log_scale)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        eps = torch.randn(n, self.loc.shape[0], device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + temperature * torch.exp(self.log_scale) * eps

    def emit(self) -> Emitted:
        return Emitted(f"DiagNormal({self.loc.shape[0]})", {"DiagNormal": DIAG_SOURCE})


class GaussianMixture(nn.Module):
    """Mixture of K diagonal Gaussians (weights, means and log-scales learned)."""

    def __init__(self, dim: int, components: int, spread: float, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(spread * torch.randn(components, dim, generator=gen))
        self.log_scale = nn.Parameter(torch.zeros(components, dim))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        per = _normal_log_prob(z[:, None, :], self.loc, self.log_scale)  # (N, K)
        return torch.logsumexp(per + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        k = torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True)
        eps = torch.randn(n, self.loc.shape[1], device=self.loc.device, dtype=self.loc.dtype)
        return self.loc[k] + temperature * torch.exp(self.log_scale[k]) * eps

    def emit(self) -> Emitted:
        expr = f"GaussianMixture({self.loc.shape[1]}, {self.loc.shape[0]})"
        return Emitted(expr, {"GaussianMixture": MIXTURE_SOURCE})


NORMAL_LOG_PROB = """
LOG_2PI = math.log(2 * math.pi)


def normal_log_prob(z: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    u = (z - loc) * torch.exp(-log_scale)
    return -0.5 * (u * u + LOG_2PI).sum(-1) - log_scale.sum(-1)
"""

STANDARD_SOURCE = (
    NORMAL_LOG_PROB
    + '''

class StandardNormal(nn.Module):
    """The base N(0, I) over the flat latent (N, D); temperature T scales the std by T."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("_ref", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return -0.5 * (z * z + LOG_2PI).sum(-1)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        return temperature * torch.randn(
            n, self.dim, device=self._ref.device, dtype=self._ref.dtype
        )
'''
)

DIAG_SOURCE = (
    NORMAL_LOG_PROB
    + '''

class DiagNormal(nn.Module):
    """The base N(loc, diag(exp(log_scale))^2), learned loc and log_scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return normal_log_prob(z, self.loc, self.log_scale)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        eps = torch.randn(n, self.loc.shape[0], device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + temperature * torch.exp(self.log_scale) * eps
'''
)

MIXTURE_SOURCE = (
    NORMAL_LOG_PROB
    + '''

class GaussianMixture(nn.Module):
    """The base: a mixture of K diagonal Gaussians (weights, means and log-scales learned)."""

    def __init__(self, dim: int, components: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.zeros(components, dim))
        self.log_scale = nn.Parameter(torch.zeros(components, dim))

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        per = normal_log_prob(z[:, None, :], self.loc, self.log_scale)  # (N, K)
        return torch.logsumexp(per + torch.log_softmax(self.logits, 0), dim=1)

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        k = torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True)
        eps = torch.randn(n, self.loc.shape[1], device=self.loc.device, dtype=self.loc.dtype)
        return self.loc[k] + temperature * torch.exp(self.log_scale[k]) * eps
'''
)


class ConditionalNormal(nn.Module):
    """N(loc(c), diag(exp(log_scale(c)))^2) with ``loc`` and ``log_scale`` an MLP of the context
    features ``c`` ``(N, F)``; its last layer starts at zero, so the base starts as N(0, I)."""

    def __init__(self, dim: int, features: int, hidden: tuple[int, ...], activation: str) -> None:
        super().__init__()
        sizes = [features, *hidden, 2 * dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def parameters_of(self, context: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(loc, log_scale)``, each ``(N, D)``, for the context features ``(N, F)``."""
        if context is None:
            raise ValueError("the conditional_normal base needs the context")
        loc, log_scale = self.net(context.to(dtype)).chunk(2, dim=1)
        return loc, log_scale

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return _normal_log_prob(z, *self.parameters_of(context, z.dtype))

    def sample(self, n: int, temperature: float = 1.0, context: Tensor | None = None) -> Tensor:
        dtype = self.net[0].weight.dtype
        loc, log_scale = self.parameters_of(context, dtype)
        eps = torch.randn(n, self.dim, device=loc.device, dtype=dtype)
        return loc + temperature * torch.exp(log_scale) * eps


def _mixture(spec: Any, dim: int, seed: int, context: int) -> nn.Module:
    return GaussianMixture(dim, spec.components, spec.spread, seed)


def _conditional_normal(spec: Any, dim: int, seed: int, context: int) -> nn.Module:
    return ConditionalNormal(dim, context, tuple(spec.hidden), spec.activation)


BASES: dict[str, Callable[[Any, int, int, int], nn.Module]] = {
    "normal": lambda spec, dim, seed, context: StandardNormal(dim),
    "diag_normal": lambda spec, dim, seed, context: DiagNormal(dim),
    "mixture": _mixture,
    "conditional_normal": _conditional_normal,
}


def build_base(spec: Any, dim: int, seed: int = 0, context: int = 0) -> nn.Module:
    """The base distribution ``spec`` describes, over ``dim`` latent dimensions; ``context`` is
    the width of the flow's context features (a conditional base needs it)."""
    return BASES[spec.type](spec, dim, seed, context)
