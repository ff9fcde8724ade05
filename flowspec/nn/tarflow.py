"""TarFlow's autoregressive affine block over token sequences (Zhai et al., ICML 2025).

On tokens ``x`` of shape ``(N, T, D)`` a causal ``TokenTransformer`` reads a sequence ``s`` of
``L`` tokens and outputs a shift ``b`` and a raw log-scale ``r`` per element (parameter 0 and 1
of its output) for the last ``L`` tokens of ``x``:

* ``start="shift"`` (TarFlow): ``s = x_0 .. x_{T-2}``, ``L = T - 1``; its output at position
  ``i - 1`` parameterises token ``i`` and token 0 passes unchanged. This is ml-tarflow's
  one-token output shift, without computing the output it discards.
* ``start="learned"`` (STARFlow's SOS token): ``s = [start, x_0 .. x_{T-2}]`` with a learned
  ``start`` token, ``L = T``: token 0 gets a learned affine map too.

Either way the parameters of token ``i`` depend on tokens ``< i`` (and the context) only. With
``clip`` the outputs are soft-clipped, ``c * tanh(out / c)`` (STARFlow's ``soft_clip``); the
log-scale is ``a = LOG_SCALES[log_scale](r)`` and

    forward (data -> latent):   z_i = (x_i - b_i) * exp(-a_i),     logdet = -sum(a)
    inverse (latent -> data):   x_i = z_i * exp(a_i) + b_i,         token by token

as in ``MetaBlock`` of apple/ml-tarflow, whose logdet is the same sum divided by ``T * D``. With
``reverse=True`` the block runs over the tokens in reversed order.

The inverse is sequential. ``inverse`` keeps a KV cache, so each token costs one incremental
transformer step; ``inverse_recompute`` reruns the full causal pass on the growing prefix at every
token (quadratically more work; the reference for the tests and ``benchmarks/kv_cache.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowspec.nn.attention import TokenTransformer
from flowspec.nn.base import Bijection
from flowspec.nn.emit import Emitted, literal
from flowspec.nn.transformer_source import TARFLOW_SOURCE

__all__ = ["INV_SOFTPLUS_1", "LOG_SCALES", "TarFlowBlock", "build", "log_softplus"]

INV_SOFTPLUS_1 = math.log(math.e - 1.0)  # softplus(INV_SOFTPLUS_1) == 1


def log_softplus(u: Tensor) -> Tensor:
    """``log(softplus(u))``, without underflowing to ``-inf`` for very negative ``u``.

    Example:
        >>> log_softplus(torch.tensor([-100.0, 0.0])).tolist()[0]
        -100.0
    """
    low = u < -30.0
    safe = torch.where(low, torch.zeros_like(u), u)
    return torch.where(low, u, torch.log(F.softplus(safe)))


# kind -> raw log-scale r -> log-scale a; both are 0 at r = 0 (a fresh block is the identity).
#   none:     a = r                                (ml-tarflow)
#   softplus: a = log(softplus(r + log(e - 1)))    (ml-starflow ``use_softplus``: the scale
#             exp(a) = softplus(r + 0.5413...) is positive, 1 at r = 0, linear for large r)
LOG_SCALES: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda r: r,
    "softplus": lambda r: log_softplus(r + INV_SOFTPLUS_1),
}


class TarFlowBlock(Bijection):
    """Affine autoregressive bijection over tokens with a causal-transformer conditioner.

    Arguments:
        tokens: sequence length ``T``.
        token_width: values per token ``D``.
        width, depth, heads, mlp_ratio: the transformer's size (see ``TokenTransformer``).
        log_scale: a key of ``LOG_SCALES``.
        clip: soft-clip bound ``c`` of the transformer outputs, or None.
        reverse: run the autoregression from the last token to the first.
        start: ``"shift"`` (TarFlow) or ``"learned"`` (STARFlow's start token).
        final_norm: a LayerNorm before the output projection (STARFlow's option).
        context: width of the context features it takes (0: none; see ``TokenTransformer``).

    Example:
        >>> block = TarFlowBlock(4, 3, width=16, heads=2, clip=4.0)
        >>> x = torch.randn(2, 4, 3)
        >>> z, logdet = block(x)  # a fresh block is the identity
        >>> bool(torch.equal(z, x)), bool(torch.all(logdet == 0))
        (True, True)
        >>> bool(torch.allclose(block.inverse(z), x))
        True
    """

    def __init__(
        self,
        tokens: int,
        token_width: int,
        *,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
        log_scale: str = "none",
        clip: float | None = None,
        reverse: bool = False,
        start: str = "shift",
        final_norm: bool = False,
        context: int = 0,
    ) -> None:
        super().__init__()
        if log_scale not in LOG_SCALES:
            raise ValueError(f"unknown log_scale {log_scale!r}; choose one of {sorted(LOG_SCALES)}")
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be positive, got {clip}")
        if start not in ("shift", "learned"):
            raise ValueError(f"unknown start {start!r}; choose 'shift' or 'learned'")
        self.tokens, self.token_width = tokens, token_width
        self.log_scale, self.clip, self.reverse = log_scale, clip, reverse
        self.learned_start = start == "learned"
        self.length = tokens if self.learned_start else tokens - 1  # positions the net reads
        if self.length < 1:
            raise ValueError("start='shift' needs at least 2 tokens (token 0 passes unchanged)")
        if self.learned_start:
            self.start = nn.Parameter(torch.randn(1, 1, token_width))
        self.net = TokenTransformer(
            self.length,
            token_width,
            params=2,
            width=width,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            causal=True,
            final_norm=final_norm,
            pos_std=0.01,
            context=context,
        )

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or tuple(x.shape[1:]) != (self.tokens, self.token_width):
            expected = f"(N, {self.tokens}, {self.token_width})"
            raise ValueError(f"TarFlowBlock expects tokens {expected}, got {tuple(x.shape)}")

    def _order(self, x: Tensor) -> Tensor:
        return x.flip(1) if self.reverse else x

    def _start(self, x: Tensor) -> Tensor:
        return self.start.to(x.dtype).expand(x.shape[0], 1, -1)

    def _shift_and_log_scale(self, out: Tensor) -> tuple[Tensor, Tensor]:
        if self.clip is not None:
            out = self.clip * torch.tanh(out / self.clip)
        return out[:, 0], LOG_SCALES[self.log_scale](out[:, 1])

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Data -> latent in one parallel pass.

        Arguments:
            x: tokens ``(N, T, D)``.
            context: features ``(N, context)``, if built with a context.

        Returns:
            ``z`` of shape ``(N, T, D)`` and ``logdet = log|det dz/dx|`` of shape ``(N,)``.
        """
        self._check(x)
        x = self._order(x)
        seq = x[:, :-1]
        if self.learned_start:
            seq = torch.cat([self._start(x), seq], dim=1)
        shift, log_scale = self._shift_and_log_scale(self.net(seq, context))
        fixed = self.tokens - self.length  # 1 token passes unchanged with start="shift"
        moved = (x[:, fixed:] - shift) * torch.exp(-log_scale)
        z = torch.cat([x[:, :fixed], moved], dim=1)
        return self._order(z), -log_scale.sum(dim=(1, 2))

    def _solve(self, z: Tensor, context: Tensor | None, step: Callable[..., Tensor]) -> Tensor:
        self._check(z)
        z = self._order(z)
        fixed = self.tokens - self.length
        xs = [z[:, i : i + 1] for i in range(fixed)]
        for j in range(self.length):
            token = self._start(z) if self.learned_start and j == 0 else xs[-1]
            shift, log_scale = self._shift_and_log_scale(step(token, xs, context))
            i = fixed + j
            xs.append(z[:, i : i + 1] * torch.exp(log_scale) + shift)
        return self._order(torch.cat(xs, dim=1))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Latent -> data, one KV-cached transformer step per token.

        Arguments:
            z: latents ``(N, T, D)``.
            context: as in ``forward``.

        Returns:
            ``x`` of shape ``(N, T, D)``.
        """
        cache = self.net.new_cache(z.shape[0], device=z.device, dtype=z.dtype)

        def step(token: Tensor, xs: list[Tensor], context: Tensor | None) -> Tensor:
            return self.net.step(token, cache, context)

        return self._solve(z, context, step)

    def inverse_recompute(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Latent -> data without a cache: a full causal pass over the prefix at every token."""
        inputs: list[Tensor] = []

        def step(token: Tensor, xs: list[Tensor], context: Tensor | None) -> Tensor:
            inputs.append(token)
            return self.net(torch.cat(inputs, dim=1), context)[:, :, -1:]

        return self._solve(z, context, step)

    def emit(self) -> Emitted:
        net = self.net.emit()
        args = [str(self.tokens), str(self.token_width), net.expr, literal(self.log_scale),
                literal(self.clip), literal(self.reverse), literal(self.learned_start)]  # fmt: skip
        return Emitted.of(
            f"TarFlowBlock({', '.join(args)})", {"TarFlowBlock": TARFLOW_SOURCE}, [net]
        )

    def extra_repr(self) -> str:
        start = "learned" if self.learned_start else "shift"
        return (
            f"log_scale={self.log_scale!r}, clip={self.clip}, reverse={self.reverse}, "
            f"start={start!r}"
        )


def build(spec: Any, in_shape: tuple[int, ...], params: Any) -> TarFlowBlock:
    """The ``tarflow`` layer kind on tokens of shape ``in_shape = (T, D)``."""
    tokens, width = in_shape
    return TarFlowBlock(
        tokens,
        width,
        width=spec.width,
        depth=spec.depth,
        heads=spec.heads,
        mlp_ratio=spec.mlp_ratio,
        log_scale=spec.log_scale,
        clip=spec.clip,
        reverse=params["reverse"],
        start=spec.start,
        final_norm=spec.final_norm,
        context=params.get("context", 0),
    )
