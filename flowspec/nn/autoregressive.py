"""Masked autoregressive (MAF) and inverse autoregressive (IAF) layers around one MADE.

Both directions share one map ``g``: ``v = g(u)`` with ``v_i = tau(u_i; theta_i(u_<i))``, where
``theta = MADE(u)``, ``<`` is the order and ``tau`` a row of the transform table (affine,
additive, spline). ``g`` takes ONE pass of the MADE; its inverse takes ``D`` passes: starting
from zeros, pass ``r`` recomputes every element from the current guess, and the element at
position ``r`` of the order is then exact (it depends only on earlier, already exact ones), so
after ``D`` passes the inverse is exact, not iterated to a tolerance.

- ``maf``: ``forward = g`` (data -> latent: density evaluation in one pass), ``inverse`` in D
  passes (sampling).
- ``iaf``: ``forward = g^-1`` (D passes), ``inverse = g`` (sampling, with densities, in one pass).

The Jacobian is triangular in the order, so ``logdet`` is the sum of the elementwise log-slopes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from flowspec.nn.base import Bijection, zeros_logdet
from flowspec.nn.emit import Emitted, emit_part, literal
from flowspec.nn.made import MADE
from flowspec.nn.transforms import Transform, build_transform

__all__ = ["Autoregressive", "build"]


class Autoregressive(Bijection):
    """An autoregressive bijection on ``(N, D)``: a MADE conditioner and an elementwise
    transform, ``direction`` ``"maf"`` (one-pass forward) or ``"iaf"`` (one-pass inverse).

    Attributes:
        order: the MADE's order; the Jacobian ``dy/dx`` is lower triangular after permuting both
            axes by it (``y[order[r]]`` depends on ``x[order[s]]`` only for ``s <= r``).

    Example:
        >>> from flowspec.nn.transforms import Spline
        >>> spline = Spline(bins=4, bound=3.0)
        >>> made = MADE((0, 1, 2), spline.n_params, [16], zero_init=True)
        >>> layer = Autoregressive(made, spline, "maf")
        >>> x = torch.randn(8, 3)
        >>> y, logdet = layer(x)
        >>> torch.allclose(y, x, atol=1e-6), logdet.shape, torch.allclose(layer.inverse(y), x)
        (True, torch.Size([8]), True)
    """

    def __init__(self, made: MADE, transform: Transform, direction: str = "maf") -> None:
        super().__init__()
        if direction not in ("maf", "iaf"):
            raise ValueError(f"unknown direction {direction!r}; use 'maf' or 'iaf'")
        if transform.n_params != made.num_params:
            raise ValueError(
                f"the transform takes {transform.n_params} parameters per element but the MADE "
                f"gives {made.num_params}"
            )
        self.made = made
        self.transform = transform
        self.direction = direction
        self.order = made.order
        self.takes_context = made.context is not None
        transform.add_parameters(self, (made.features,))
        # fixed[r]: the elements exact after pass r of the D-pass inverse (positions 0..r).
        positions = torch.tensor(made.degrees) - 1
        fixed = positions[None, :] <= torch.arange(made.features)[:, None]
        self.register_buffer("fixed", fixed, persistent=False)

    def _params(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, ...]:
        return self.made(u, context if self.takes_context else None).unbind(1)

    def _one(self, u: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``v = g(u)`` in one pass, with ``log|det dv/du|``."""
        v, logabsdet = self.transform.forward(self, u, self._params(u, context))
        return v, zeros_logdet(u) if logabsdet is None else logabsdet.sum(dim=1)

    def _solve(self, v: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``u = g^-1(v)`` in D passes, with ``log|det du/dv|``."""
        u = torch.zeros_like(v)
        for r in range(self.made.features - 1):
            u = torch.where(
                self.fixed[r], self.transform.inverse(self, v, self._params(u, context)), u
            )
        # The last pass: every element's parameters depend only on elements strictly earlier in
        # the order, exact by now, so these are the parameters at the final u.
        u, logabsdet = self.transform.inverse_and_logabsdet(self, v, self._params(u, context))
        return u, zeros_logdet(v) if logabsdet is None else logabsdet.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (N, D)`` (data side) -> ``(y, logdet)``, ``logdet = log|det dy/dx|``, shape (N,)."""
        return self._one(x, context) if self.direction == "maf" else self._solve(x, context)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        """``y (N, D)`` (latent side) -> ``x`` with ``forward(x)[0] == y``."""
        return self.inverse_and_logdet(y, context)[0]

    def inverse_and_logdet(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._solve(y, context) if self.direction == "maf" else self._one(y, context)

    def extra_repr(self) -> str:
        return f"direction={self.direction!r}, order={list(self.order)}"

    def emit(self) -> Emitted:
        made = emit_part(self.made, "the MADE conditioner")
        transform = emit_part(self.transform, "the autoregressive layer's transform")
        expr = f"Autoregressive({made.expr}, {transform.expr}, {literal(self.direction)})"
        return Emitted.of(expr, {"Autoregressive": SOURCE}, (made, transform))


SOURCE = '''
class Autoregressive(nn.Module):
    """An autoregressive layer on (N, D): v = g(u) with v_i = transform(u_i; params from
    MADE(u)) takes one pass of the MADE, its inverse D passes (pass r makes the element at
    position r of the order exact). "maf": forward = g; "iaf": forward = the D-pass inverse."""

    def __init__(self, made: nn.Module, transform, direction: str) -> None:
        super().__init__()
        self.made, self.transform, self.direction = made, transform, direction
        transform.add_parameters(self, (made.features,))
        positions = torch.tensor(made.degrees) - 1
        fixed = positions[None, :] <= torch.arange(made.features)[:, None]
        self.register_buffer("fixed", fixed, persistent=False)

    def _params(self, u: Tensor) -> tuple[Tensor, ...]:
        return self.made(u).unbind(1)

    def _one(self, u: Tensor) -> tuple[Tensor, Tensor]:
        v, logabsdet = self.transform.forward(self, u, self._params(u))
        return v, zeros_logdet(u) if logabsdet is None else logabsdet.sum(dim=1)

    def _solve(self, v: Tensor) -> tuple[Tensor, Tensor]:
        u = torch.zeros_like(v)
        for r in range(self.made.features - 1):
            u = torch.where(self.fixed[r], self.transform.inverse(self, v, self._params(u)), u)
        u, logabsdet = self.transform.inverse_and_logabsdet(self, v, self._params(u))
        return u, zeros_logdet(v) if logabsdet is None else logabsdet.sum(dim=1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._one(x) if self.direction == "maf" else self._solve(x)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        return (self._solve(y) if self.direction == "maf" else self._one(y))[0]
'''


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> Autoregressive:
    transform = build_transform(spec.transform)
    made = MADE(
        params["order"],
        transform.n_params,
        spec.net.hidden,
        context_features=params.get("context", 0),
        activation=spec.net.activation,
        zero_init=spec.net.zero_init,
    )
    return Autoregressive(made, transform, spec.direction)
